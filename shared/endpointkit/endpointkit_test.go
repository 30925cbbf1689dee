package endpointkit_test

import (
	"context"
	"errors"
	"testing"

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
