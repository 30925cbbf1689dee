package product

import (
	"net/http"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/discovery"
)

// NewClient returns the product service as seen from another process (the
// order service reserves stock with it): every method is load-balanced over
// the instances instancer reports (one shared Consul instancer, from
// discovery.NewInstancer), with per-instance circuit breakers and safe
// retries (discovery.NewEndpoint). Business errors come back as the domain
// errors (ErrNotFound, ErrReservationReleased, …; out_of_stock and
// unknown_product as a *LineError with the line's details, matching
// errors.Is(err, ErrOutOfStock)) or *httpkit.Error, 5xx answers as
// *discovery.UpstreamError, no instance at all as discovery.ErrNoInstances.
//
// The caller's bearer token travels with every call: the user's (put in ctx
// by auth.HTTPToContext) or the service's own (auth.NewTokenContext with
// tokens.ServiceToken). The reservation routes want a service or admin token.
func NewClient(instancer sd.Instancer, logger log.Logger, opts discovery.Options) Service {
	// Reads may go to another instance after a timeout or a broken
	// connection; writes are only retried where nothing was sent, except
	// the reservation calls: a repeated reserve, commit or release for an
	// order is answered like the first, so they are retried like reads.
	c := discovery.NewClient(instancer, ServiceName, logger, opts, discovery.NewHTTPClient())
	reservation := decodeResponse(func(err error) reservationResponse { return reservationResponse{Err: err} })
	return Endpoints{
		ListCategoriesEndpoint: c.Endpoint(http.MethodGet, encodePath(fixed(apiPrefix+"/categories")),
			decodeResponse(func(err error) categoriesResponse { return categoriesResponse{Err: err} }), nil),
		CreateCategoryEndpoint: c.Endpoint(http.MethodPost, encodeJSON(fixed(apiPrefix+"/categories"), nil),
			decodeResponse(func(err error) createCategoryResponse { return createCategoryResponse{Err: err} }), nil),
		UpdateCategoryEndpoint: c.Endpoint(http.MethodPatch, encodeJSON(categoryPath, func(r any) any { return r.(updateCategoryRequest).CategoryPatch }),
			decodeResponse(func(err error) categoryResponse { return categoryResponse{Err: err} }), nil),
		DeleteCategoryEndpoint: c.Endpoint(http.MethodDelete, encodePath(categoryPath),
			decodeResponse(func(err error) noContentResponse { return noContentResponse{Err: err} }), nil),
		ListProductsEndpoint: c.Endpoint(http.MethodGet, encodeListProductsRequest,
			decodeResponse(func(err error) productsResponse { return productsResponse{Err: err} }), nil),
		GetProductEndpoint: c.Endpoint(http.MethodGet, encodePath(productPath),
			decodeResponse(func(err error) productResponse { return productResponse{Err: err} }), nil),
		CreateProductEndpoint: c.Endpoint(http.MethodPost, encodeJSON(fixed(apiPrefix+"/products"), nil),
			decodeResponse(func(err error) createProductResponse { return createProductResponse{Err: err} }), nil),
		UpdateProductEndpoint: c.Endpoint(http.MethodPatch, encodeJSON(productPath, func(r any) any { return r.(updateProductRequest).ProductPatch }),
			decodeResponse(func(err error) productResponse { return productResponse{Err: err} }), nil),
		DeactivateProductEndpoint: c.Endpoint(http.MethodDelete, encodePath(productPath),
			decodeResponse(func(err error) noContentResponse { return noContentResponse{Err: err} }), nil),
		CreateVariantEndpoint: c.Endpoint(http.MethodPost, encodeJSON(variantsPath, nil),
			decodeResponse(func(err error) createVariantResponse { return createVariantResponse{Err: err} }), nil),
		UpdateVariantEndpoint: c.Endpoint(http.MethodPatch, encodeJSON(variantsPath, func(r any) any { return r.(updateVariantRequest).VariantPatch }),
			decodeResponse(func(err error) variantResponse { return variantResponse{Err: err} }), nil),
		AdjustStockEndpoint: c.Endpoint(http.MethodPost, encodeJSON(stockPath, nil),
			decodeResponse(func(err error) productResponse { return productResponse{Err: err} }), nil),
		ReserveEndpoint: c.Endpoint(http.MethodPost, encodeJSON(fixed(internalPrefix+"/reservations"), nil),
			decodeResponse(func(err error) reservationResponse { return reservationResponse{Err: err} },
				func(r *reservationResponse, resp *http.Response) { r.Created = resp.StatusCode == http.StatusCreated }), nil),
		CommitReservationEndpoint:  c.Endpoint(http.MethodPost, encodePath(reservationPath("/commit")), reservation, discovery.Always),
		ReleaseReservationEndpoint: c.Endpoint(http.MethodPost, encodePath(reservationPath("/release")), reservation, discovery.Always),
		GetReservationEndpoint:     c.Endpoint(http.MethodGet, encodePath(reservationPath("")), reservation, nil),
	}
}
