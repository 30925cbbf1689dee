package product

import (
	"net/http"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	httptransport "github.com/go-kit/kit/transport/http"
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
	c := client{instancer: instancer, logger: logger, opts: opts, http: discovery.NewHTTPClient()}
	reservation := decodeResponse(func(err error) reservationResponse { return reservationResponse{Err: err} })
	return Endpoints{
		ListCategoriesEndpoint: c.endpoint(http.MethodGet, encodePath(fixed(apiPrefix+"/categories")),
			decodeResponse(func(err error) categoriesResponse { return categoriesResponse{Err: err} })),
		CreateCategoryEndpoint: c.endpoint(http.MethodPost, encodeJSON(fixed(apiPrefix+"/categories"), nil),
			decodeResponse(func(err error) createCategoryResponse { return createCategoryResponse{Err: err} })),
		UpdateCategoryEndpoint: c.endpoint(http.MethodPatch, encodeJSON(categoryPath, func(r any) any { return r.(updateCategoryRequest).CategoryPatch }),
			decodeResponse(func(err error) categoryResponse { return categoryResponse{Err: err} })),
		DeleteCategoryEndpoint: c.endpoint(http.MethodDelete, encodePath(categoryPath),
			decodeResponse(func(err error) noContentResponse { return noContentResponse{Err: err} })),
		ListProductsEndpoint: c.endpoint(http.MethodGet, encodeListProductsRequest,
			decodeResponse(func(err error) productsResponse { return productsResponse{Err: err} })),
		GetProductEndpoint: c.endpoint(http.MethodGet, encodePath(productPath),
			decodeResponse(func(err error) productResponse { return productResponse{Err: err} })),
		CreateProductEndpoint: c.endpoint(http.MethodPost, encodeJSON(fixed(apiPrefix+"/products"), nil),
			decodeResponse(func(err error) createProductResponse { return createProductResponse{Err: err} })),
		UpdateProductEndpoint: c.endpoint(http.MethodPatch, encodeJSON(productPath, func(r any) any { return r.(updateProductRequest).ProductPatch }),
			decodeResponse(func(err error) productResponse { return productResponse{Err: err} })),
		DeactivateProductEndpoint: c.endpoint(http.MethodDelete, encodePath(productPath),
			decodeResponse(func(err error) noContentResponse { return noContentResponse{Err: err} })),
		CreateVariantEndpoint: c.endpoint(http.MethodPost, encodeJSON(variantsPath, nil),
			decodeResponse(func(err error) createVariantResponse { return createVariantResponse{Err: err} })),
		UpdateVariantEndpoint: c.endpoint(http.MethodPatch, encodeJSON(variantsPath, func(r any) any { return r.(updateVariantRequest).VariantPatch }),
			decodeResponse(func(err error) variantResponse { return variantResponse{Err: err} })),
		AdjustStockEndpoint: c.endpoint(http.MethodPost, encodeJSON(stockPath, nil),
			decodeResponse(func(err error) productResponse { return productResponse{Err: err} })),
		ReserveEndpoint: c.idempotent(http.MethodPost, encodeJSON(fixed(internalPrefix+"/reservations"), nil),
			decodeResponse(func(err error) reservationResponse { return reservationResponse{Err: err} },
				func(r *reservationResponse, resp *http.Response) { r.Created = resp.StatusCode == http.StatusCreated })),
		CommitReservationEndpoint:  c.idempotent(http.MethodPost, encodePath(reservationPath("/commit")), reservation),
		ReleaseReservationEndpoint: c.idempotent(http.MethodPost, encodePath(reservationPath("/release")), reservation),
		GetReservationEndpoint:     c.endpoint(http.MethodGet, encodePath(reservationPath("")), reservation),
	}
}

type client struct {
	instancer sd.Instancer
	logger    log.Logger
	opts      discovery.Options
	http      *http.Client
}

// endpoint builds the load-balanced endpoint of one method. Reads may go to
// another instance after a timeout or a broken connection; writes are only
// retried where nothing was sent.
func (c client) endpoint(method string, enc httptransport.EncodeRequestFunc, dec httptransport.DecodeResponseFunc) endpoint.Endpoint {
	var idempotent func(any) bool
	if method == http.MethodGet {
		idempotent = discovery.Always
	}
	return c.build(method, enc, dec, idempotent)
}

// idempotent builds the endpoint of a write that is safe to repeat: the
// reservation calls, which answer a repeated reserve, commit or release for
// an order like the first, so they are retried like reads.
func (c client) idempotent(method string, enc httptransport.EncodeRequestFunc, dec httptransport.DecodeResponseFunc) endpoint.Endpoint {
	return c.build(method, enc, dec, discovery.Always)
}

func (c client) build(method string, enc httptransport.EncodeRequestFunc, dec httptransport.DecodeResponseFunc, idempotent func(any) bool) endpoint.Endpoint {
	return discovery.NewEndpoint(c.instancer, ServiceName, discovery.HTTPFactory(c.http, method, enc, dec, idempotent), c.logger, c.opts)
}
