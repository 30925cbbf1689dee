package endpointkit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/endpointkit"
)

type answer struct {
	Value string
	Err   error
}

func (a answer) Failed() error { return a.Err }

func TestCall(t *testing.T) {
	errBusiness := errors.New("out of stock")
	errTransport := errors.New("connection refused")
	tests := []struct {
		name      string
		resp      any
		err       error
		wantValue string
		wantErr   error
	}{
		{"success", answer{Value: "ok"}, nil, "ok", nil},
		{"business error in the response", answer{Value: "partial", Err: errBusiness}, nil, "partial", errBusiness},
		{"endpoint error wins", nil, errTransport, "", errTransport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := func(context.Context, any) (any, error) { return tc.resp, tc.err }
			got, err := endpointkit.Call[answer](context.Background(), e, struct{}{})
			if got.Value != tc.wantValue || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Call = %q, %v; want %q, %v", got.Value, err, tc.wantValue, tc.wantErr)
			}
		})
	}
}

type echoResponse struct {
	Caller string
	endpointkit.Failure
}

func TestServeCaller(t *testing.T) {
	errInvalid := errors.New("invalid")
	validate := func(req string) error {
		if req == "bad" {
			return errInvalid
		}
		return nil
	}
	e := endpointkit.ValidatedCaller(validate, func(_ context.Context, c auth.Identity, req string) (echoResponse, error) {
		return echoResponse{Caller: c.UserID + ":" + req}, nil
	})

	if _, err := e(context.Background(), "ok"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("without an identity: err = %v, want auth.ErrUnauthenticated", err)
	}
	ctx := auth.NewContext(context.Background(), auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	resp, err := e(ctx, "ok")
	if err != nil || resp.(echoResponse).Caller != "u1:ok" || resp.(echoResponse).Failed() != nil {
		t.Fatalf("served = %+v, %v; want caller u1:ok and no error", resp, err)
	}
	resp, err = e(ctx, "bad")
	if err != nil || !errors.Is(resp.(echoResponse).Failed(), errInvalid) || resp.(echoResponse).Caller != "" {
		t.Fatalf("invalid = %+v, %v; want only the validation error, as a business error", resp, err)
	}
}
