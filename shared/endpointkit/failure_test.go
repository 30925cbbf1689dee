package endpointkit_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/mercato-dev/mercato/shared/endpointkit"
)

type thing struct {
	Name string `json:"name"`
}

type thingResponse struct {
	Thing thing `json:"thing"`
	endpointkit.Failure
}

type thingRequest struct {
	Name string `json:"name"`
}

func (r thingRequest) validate() error {
	if r.Name == "" {
		return errInvalid
	}
	return nil
}

var (
	errInvalid  = errors.New("name is required")
	errNotFound = errors.New("not found")
)

func TestFailureStaysOutOfJSON(t *testing.T) {
	b, err := json.Marshal(thingResponse{Thing: thing{Name: "a"}, Failure: endpointkit.Failure{Err: errNotFound}})
	if err != nil || string(b) != `{"thing":{"name":"a"}}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
}

func TestFail(t *testing.T) {
	r := endpointkit.Fail[thingResponse](errNotFound)
	if r.Thing != (thing{}) || !errors.Is(r.Failed(), errNotFound) {
		t.Fatalf("Fail = %+v", r)
	}
}

func TestValidated(t *testing.T) {
	served := 0
	e := endpointkit.Validated(thingRequest.validate, func(_ context.Context, req thingRequest) (thingResponse, error) {
		served++
		if req.Name == "missing" {
			return thingResponse{Thing: thing(req)}, errNotFound
		}
		return thingResponse{Thing: thing(req)}, nil
	})
	tests := []struct {
		name     string
		req      thingRequest
		wantName string
		wantErr  error
		served   int
	}{
		{"success", thingRequest{Name: "a"}, "a", nil, 1},
		{"business error in the response", thingRequest{Name: "missing"}, "missing", errNotFound, 2},
		{"invalid request never served", thingRequest{}, "", errInvalid, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("endpoint error %v; business errors belong in the response", err)
			}
			r := resp.(thingResponse)
			if r.Thing.Name != tc.wantName || !errors.Is(r.Failed(), tc.wantErr) || (tc.wantErr == nil && r.Failed() != nil) || served != tc.served {
				t.Fatalf("got %+v (served %d); want %q, %v (served %d)", r, served, tc.wantName, tc.wantErr, tc.served)
			}
		})
	}
}
