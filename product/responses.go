package product

import (
	"net/http"

	"github.com/mercato-dev/mercato/shared/httpkit"
)

// Responses. Business errors travel in Err (endpoint.Failer), so a client's
// circuit breaker never counts a 404 or an out-of-stock as a failure.

type categoriesResponse struct {
	Items []CategoryNode `json:"items"`
	Err   error          `json:"-"`
}

func (r categoriesResponse) Failed() error { return r.Err }

type categoryResponse struct {
	Category Category `json:"category"`
	Err      error    `json:"-"`
}

func (r categoryResponse) Failed() error { return r.Err }

// createCategoryResponse is a categoryResponse answered with 201.
type createCategoryResponse struct{ categoryResponse }

func (r createCategoryResponse) StatusCode() int { return http.StatusCreated }

type noContentResponse struct {
	Err error `json:"-"`
}

func (r noContentResponse) Failed() error   { return r.Err }
func (r noContentResponse) StatusCode() int { return http.StatusNoContent }

type productsResponse struct {
	ProductPage
	Err error `json:"-"`
}

func (r productsResponse) Failed() error { return r.Err }

type productResponse struct {
	Product Product `json:"product"`
	Err     error   `json:"-"`
}

func (r productResponse) Failed() error { return r.Err }

// createProductResponse is a productResponse answered with 201.
type createProductResponse struct{ productResponse }

func (r createProductResponse) StatusCode() int { return http.StatusCreated }
func (r createProductResponse) Headers() http.Header {
	return http.Header{"Location": {httpkit.APIPrefix + "/products/" + r.Product.ID}}
}

type variantResponse struct {
	Variant Variant `json:"variant"`
	Err     error   `json:"-"`
}

func (r variantResponse) Failed() error { return r.Err }

// createVariantResponse is a variantResponse answered with 201.
type createVariantResponse struct{ variantResponse }

func (r createVariantResponse) StatusCode() int { return http.StatusCreated }

type reservationResponse struct {
	Reservation Reservation `json:"reservation"`
	Created     bool        `json:"-"` // 201 rather than 200
	Err         error       `json:"-"`
}

func (r reservationResponse) Failed() error { return r.Err }
func (r reservationResponse) StatusCode() int {
	if r.Created {
		return http.StatusCreated
	}
	return http.StatusOK
}
