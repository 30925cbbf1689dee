package product

import (
	"net/http"

	"github.com/mercato-dev/mercato/shared/endpointkit"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// Responses. Business errors travel in the embedded endpointkit.Failure
// (endpoint.Failer), so a client's circuit breaker never counts a 404 or an
// out-of-stock as a failure.

type categoriesResponse struct {
	Items []CategoryNode `json:"items"`
	endpointkit.Failure
}

type categoryResponse struct {
	Category Category `json:"category"`
	endpointkit.Failure
}

// createCategoryResponse is a categoryResponse answered with 201.
type createCategoryResponse struct{ categoryResponse }

func (r createCategoryResponse) StatusCode() int { return http.StatusCreated }

type noContentResponse struct {
	endpointkit.Failure
}

func (r noContentResponse) StatusCode() int { return http.StatusNoContent }

type productsResponse = endpointkit.PageResponse[Product]

type productResponse struct {
	Product Product `json:"product"`
	endpointkit.Failure
}

// createProductResponse is a productResponse answered with 201.
type createProductResponse struct{ productResponse }

func (r createProductResponse) StatusCode() int { return http.StatusCreated }
func (r createProductResponse) Headers() http.Header {
	return http.Header{"Location": {httpkit.APIPrefix + "/products/" + r.Product.ID}}
}

type variantResponse struct {
	Variant Variant `json:"variant"`
	endpointkit.Failure
}

// createVariantResponse is a variantResponse answered with 201.
type createVariantResponse struct{ variantResponse }

func (r createVariantResponse) StatusCode() int { return http.StatusCreated }

type reservationResponse struct {
	Reservation Reservation `json:"reservation"`
	Created     bool        `json:"-"` // 201 rather than 200
	endpointkit.Failure
}

func (r reservationResponse) StatusCode() int {
	if r.Created {
		return http.StatusCreated
	}
	return http.StatusOK
}
