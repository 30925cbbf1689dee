package product

import (
	"net/http"
	"testing"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// One fuzz target per route of the product service (httpfuzz.Decoder says what
// each asserts); fuzz_postgres_test.go fuzzes some through PostgreSQL.

func fuzz(f *testing.F, method, path string) {
	httpfuzz.Decoder(f, ServiceName, MakeHTTPHandler, checkRequest, method, path)
}

// checkRequest is what the endpoints check before calling the service.
func checkRequest(request any) error {
	if r, ok := request.(interface{ validate() error }); ok {
		return r.validate()
	}
	return nil
}

func FuzzListCategoriesRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/categories") }

func FuzzCreateCategoryRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/categories") }

func FuzzUpdateCategoryRequest(f *testing.F) {
	fuzz(f, http.MethodPatch, "/api/v1/categories/{id}")
}

func FuzzDeleteCategoryRequest(f *testing.F) {
	fuzz(f, http.MethodDelete, "/api/v1/categories/{id}")
}

func FuzzListProductsRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/products") }

func FuzzCreateProductRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/products") }

func FuzzGetProductRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/products/{ref}") }

func FuzzUpdateProductRequest(f *testing.F) { fuzz(f, http.MethodPatch, "/api/v1/products/{id}") }

func FuzzDeactivateProductRequest(f *testing.F) {
	fuzz(f, http.MethodDelete, "/api/v1/products/{id}")
}

func FuzzCreateVariantRequest(f *testing.F) {
	fuzz(f, http.MethodPost, "/api/v1/products/{id}/variants")
}

func FuzzUpdateVariantRequest(f *testing.F) {
	fuzz(f, http.MethodPatch, "/api/v1/products/{id}/variants/{variant_id}")
}

func FuzzAdjustStockRequest(f *testing.F) {
	fuzz(f, http.MethodPost, "/api/v1/products/{id}/stock")
}

func FuzzReserveRequest(f *testing.F) { fuzz(f, http.MethodPost, internalPrefix+"/reservations") }

func FuzzGetReservationRequest(f *testing.F) {
	fuzz(f, http.MethodGet, internalPrefix+"/reservations/{order_id}")
}

func FuzzCommitReservationRequest(f *testing.F) {
	fuzz(f, http.MethodPost, internalPrefix+"/reservations/{order_id}/commit")
}

func FuzzReleaseReservationRequest(f *testing.F) {
	fuzz(f, http.MethodPost, internalPrefix+"/reservations/{order_id}/release")
}
