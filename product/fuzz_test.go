package product

import (
	"net/http"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// Fuzz tests of every route's decoder and request checks (one target per
// route, so `make fuzz` fuzzes each): whatever arrives, the answer is a
// value or a 4xx JSON error, never a 5xx nor a panic. The endpoints are
// stubs that only validate (httpfuzz.Stubbed); fuzz_postgres_test.go sends
// the same inputs through the real service and PostgreSQL.

// checkRequest is what the endpoints check before calling the service.
func checkRequest(request any) error {
	switch r := request.(type) {
	case interface{ validate() error }:
		return r.validate()
	case interface{ validate(time.Time) error }:
		return r.validate(time.Now())
	}
	return nil
}

func fuzzRoute(f *testing.F, method, path string, seeds ...httpfuzz.Input) {
	h := httpfuzz.Stubbed(ServiceName, MakeHTTPHandler, checkRequest)
	httpfuzz.Fuzz(f, h, httpfuzz.Route{Method: method, Path: path}, seeds...)
}

func FuzzListCategoriesRequest(f *testing.F) { fuzzRoute(f, http.MethodGet, "/api/v1/categories") }

func FuzzCreateCategoryRequest(f *testing.F) { fuzzRoute(f, http.MethodPost, "/api/v1/categories") }

func FuzzUpdateCategoryRequest(f *testing.F) {
	fuzzRoute(f, http.MethodPatch, "/api/v1/categories/{id}")
}

func FuzzDeleteCategoryRequest(f *testing.F) {
	fuzzRoute(f, http.MethodDelete, "/api/v1/categories/{id}")
}

func FuzzListProductsRequest(f *testing.F) { fuzzRoute(f, http.MethodGet, "/api/v1/products") }

func FuzzCreateProductRequest(f *testing.F) { fuzzRoute(f, http.MethodPost, "/api/v1/products") }

func FuzzGetProductRequest(f *testing.F) { fuzzRoute(f, http.MethodGet, "/api/v1/products/{ref}") }

func FuzzUpdateProductRequest(f *testing.F) { fuzzRoute(f, http.MethodPatch, "/api/v1/products/{id}") }

func FuzzDeactivateProductRequest(f *testing.F) {
	fuzzRoute(f, http.MethodDelete, "/api/v1/products/{id}")
}

func FuzzCreateVariantRequest(f *testing.F) {
	fuzzRoute(f, http.MethodPost, "/api/v1/products/{id}/variants")
}

func FuzzUpdateVariantRequest(f *testing.F) {
	fuzzRoute(f, http.MethodPatch, "/api/v1/products/{id}/variants/{variant_id}")
}

func FuzzAdjustStockRequest(f *testing.F) {
	fuzzRoute(f, http.MethodPost, "/api/v1/products/{id}/stock")
}

func FuzzReserveRequest(f *testing.F) { fuzzRoute(f, http.MethodPost, internalPrefix+"/reservations") }

func FuzzGetReservationRequest(f *testing.F) {
	fuzzRoute(f, http.MethodGet, internalPrefix+"/reservations/{order_id}")
}

func FuzzCommitReservationRequest(f *testing.F) {
	fuzzRoute(f, http.MethodPost, internalPrefix+"/reservations/{order_id}/commit")
}

func FuzzReleaseReservationRequest(f *testing.F) {
	fuzzRoute(f, http.MethodPost, internalPrefix+"/reservations/{order_id}/release")
}
