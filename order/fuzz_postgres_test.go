package order_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// Routes fuzzed through the real service and PostgreSQL (fake upstreams):
// the list whose page overflowed into a negative OFFSET, and checkout.

func FuzzListOrdersWithPostgres(f *testing.F) {
	s := newStack(f)
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodGet, Path: "/api/v1/orders",
		Header: httpfuzz.Bearer(s.token(f, uuid.NewString(), auth.RoleCustomer))},
		httpfuzz.Input{Query: "status=pending&page=1"})
}

func FuzzPlaceOrderWithPostgres(f *testing.F) {
	s := newStack(f)
	body := `{"items":[{"product_id":"` + s.a + `","quantity":1}],"shipping_address":{"street":"1 Main St","city":"Springfield","state":"IL","zip_code":"62701","country":"US"},"payment":{"method":"card","card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvc":"123"}}}`
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodPost, Path: "/api/v1/orders",
		Header: httpfuzz.Bearer(s.token(f, uuid.NewString(), auth.RoleCustomer))},
		httpfuzz.Input{Body: body, Key: "fuzz-key"})
}
