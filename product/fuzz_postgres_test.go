package product_test

import (
	"net/http"
	"testing"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// Routes fuzzed through the real service and PostgreSQL: the public list
// with its many query parameters, and an admin's write of free text.

func FuzzListProductsWithPostgres(f *testing.F) {
	s := newStack(f)
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodGet, Path: "/api/v1/products"},
		httpfuzz.Input{Query: "q=shoe&sort=relevance&min_price=1.00&in_stock=true"})
}

func FuzzCreateProductWithPostgres(f *testing.F) {
	s := newStack(f)
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodPost, Path: "/api/v1/products", Header: httpfuzz.Bearer(s.admin)},
		httpfuzz.Input{Body: `{"name":"Mug","sku":"MUG-1","price":"9.99","stock_quantity":3,"attributes":{"color":"red"}}`})
}
