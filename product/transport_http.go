package product

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/validate"
)

// internalPrefix is where the routes for other services live, which the
// gateway never exposes (public routes live under httpkit.APIPrefix).
const internalPrefix = "/internal"

// errorMappings is the one table from domain errors to HTTP. The client uses
// it backwards, to turn an error body into the domain error again.
var errorMappings = []httpkit.ErrorMapping{
	{Err: ErrNotFound, Status: http.StatusNotFound, Code: "not_found"},
	{Err: ErrSlugTaken, Status: http.StatusConflict, Code: "slug_taken"},
	{Err: ErrSKUTaken, Status: http.StatusConflict, Code: "sku_taken"},
	{Err: ErrUnknownCategory, Status: http.StatusUnprocessableEntity, Code: "unknown_category"},
	{Err: ErrCategoryNotEmpty, Status: http.StatusConflict, Code: "category_not_empty"},
	{Err: ErrCategoryCycle, Status: http.StatusUnprocessableEntity, Code: "category_cycle"},
	{Err: ErrUnknownVariant, Status: http.StatusUnprocessableEntity, Code: "unknown_variant"},
	{Err: ErrStockLimit, Status: http.StatusUnprocessableEntity, Code: "stock_limit"},
	{Err: ErrUnknownProduct, Status: http.StatusUnprocessableEntity, Code: "unknown_product"},
	{Err: ErrOutOfStock, Status: http.StatusConflict, Code: "out_of_stock"},
	{Err: ErrReservationMismatch, Status: http.StatusConflict, Code: "reservation_mismatch"},
	{Err: ErrReservationReleased, Status: http.StatusConflict, Code: "reservation_released"},
}

// isBusinessError reports whether err is an expected answer (a domain error
// or a client mistake, answered with a 4xx) rather than a failure worth an
// error-level log line. The logging middleware asks it, so the service layer
// needs no HTTP of its own.
func isBusinessError(err error) bool { return httpkit.IsClientError(err, errorMappings...) }

// MakeHTTPHandler adds the product service's routes to r.
func MakeHTTPHandler(r *mux.Router, e Endpoints, logger log.Logger) {
	routes := httpkit.NewRoutes(r, "", logger, errorMappings, auth.HTTPToContext, markTokenSent)

	routes.Handle(http.MethodGet, httpkit.APIPrefix+"/categories", e.ListCategoriesEndpoint, httpkit.DecodeEmptyRequest[listCategoriesRequest])
	routes.Handle(http.MethodPost, httpkit.APIPrefix+"/categories", e.CreateCategoryEndpoint, httpkit.DecodeJSONRequest[createCategoryRequest])
	routes.Handle(http.MethodPatch, httpkit.APIPrefix+"/categories/{id}", e.UpdateCategoryEndpoint, httpkit.DecodeRequest(decodeUpdateCategoryRequest))
	routes.Handle(http.MethodDelete, httpkit.APIPrefix+"/categories/{id}", e.DeleteCategoryEndpoint, httpkit.DecodeIDRequest[idRequest])
	routes.Handle(http.MethodGet, httpkit.APIPrefix+"/products", e.ListProductsEndpoint, decodeListProductsRequest)
	routes.Handle(http.MethodPost, httpkit.APIPrefix+"/products", e.CreateProductEndpoint, httpkit.DecodeJSONRequest[createProductRequest])
	routes.Handle(http.MethodGet, httpkit.APIPrefix+"/products/{ref}", e.GetProductEndpoint, decodeGetProductRequest)
	routes.Handle(http.MethodPatch, httpkit.APIPrefix+"/products/{id}", e.UpdateProductEndpoint, httpkit.DecodeRequest(decodeUpdateProductRequest))
	routes.Handle(http.MethodDelete, httpkit.APIPrefix+"/products/{id}", e.DeactivateProductEndpoint, httpkit.DecodeIDRequest[idRequest])
	routes.Handle(http.MethodPost, httpkit.APIPrefix+"/products/{id}/variants", e.CreateVariantEndpoint, httpkit.DecodeRequest(decodeCreateVariantRequest))
	routes.Handle(http.MethodPatch, httpkit.APIPrefix+"/products/{id}/variants/{variant_id}", e.UpdateVariantEndpoint, httpkit.DecodeRequest(decodeUpdateVariantRequest))
	routes.Handle(http.MethodPost, httpkit.APIPrefix+"/products/{id}/stock", e.AdjustStockEndpoint, httpkit.DecodeRequest(decodeAdjustStockRequest))

	routes.Handle(http.MethodPost, internalPrefix+"/reservations", e.ReserveEndpoint, httpkit.DecodeJSONRequest[reserveRequest])
	routes.Handle(http.MethodGet, internalPrefix+"/reservations/{order_id}", e.GetReservationEndpoint, decodeOrderRequest)
	routes.Handle(http.MethodPost, internalPrefix+"/reservations/{order_id}/commit", e.CommitReservationEndpoint, decodeOrderRequest)
	routes.Handle(http.MethodPost, internalPrefix+"/reservations/{order_id}/release", e.ReleaseReservationEndpoint, decodeOrderRequest)
}

// markTokenSent records that the request carries a bearer token, for
// optionalAuthentication.
func markTokenSent(ctx context.Context, r *http.Request) context.Context {
	if auth.BearerToken(r.Header) != "" {
		return context.WithValue(ctx, tokenSentKey{}, true)
	}
	return ctx
}

// Server decoders.

func decodeOrderRequest(_ context.Context, r *http.Request) (any, error) {
	id, err := httpkit.PathUUID(r, "order_id")
	if err != nil {
		return nil, err
	}
	return orderRequest{OrderID: id}, nil
}

func decodeGetProductRequest(_ context.Context, r *http.Request) (any, error) {
	return getProductRequest{Ref: mux.Vars(r)["ref"]}, nil
}

func decodeUpdateCategoryRequest(r *http.Request, req *updateCategoryRequest) error {
	return httpkit.PathAndBody(r, "id", &req.ID, &req.CategoryPatch, httpkit.DecodeJSON)
}

func decodeUpdateProductRequest(r *http.Request, req *updateProductRequest) error {
	return httpkit.PathAndBody(r, "id", &req.ID, &req.ProductPatch, httpkit.DecodeJSON)
}

func decodeCreateVariantRequest(r *http.Request, req *createVariantRequest) error {
	return httpkit.PathAndBody(r, "id", &req.ProductID, req, httpkit.DecodeJSON)
}

func decodeUpdateVariantRequest(r *http.Request, req *updateVariantRequest) error {
	var err error
	if req.ProductID, err = httpkit.PathUUID(r, "id"); err != nil {
		return err
	}
	return httpkit.PathAndBody(r, "variant_id", &req.VariantID, &req.VariantPatch, httpkit.DecodeJSON)
}

func decodeAdjustStockRequest(r *http.Request, req *adjustStockRequest) error {
	return httpkit.PathAndBody(r, "id", &req.ProductID, req, httpkit.DecodeJSON)
}

// decodeListProductsRequest reads the list's query parameters, defaulting to
// the first page of 20. A parameter it does not know, one given twice or
// one that does not parse is a 422 naming it, so a typo in a filter is never
// silently a different (unfiltered) list; the endpoint checks the bounds.
func decodeListProductsRequest(_ context.Context, r *http.Request) (any, error) {
	req := listProductsRequest{ProductQuery: ProductQuery{Page: 1, PageSize: validate.DefaultPageSize}}
	bad := validate.Problems{}
	for name, values := range r.URL.Query() {
		if len(values) != 1 {
			bad[name] = "must be given once"
			continue
		}
		v := values[0]
		switch name {
		case "category":
			req.Category = v
		case "q":
			req.Q = v
		case "sort":
			req.Sort = v
		case "min_price", "max_price":
			a, err := money.Parse(v)
			if err != nil {
				bad[name] = `must be a decimal amount like "19.99"`
				continue
			}
			if name == "min_price" {
				req.MinPrice = &a
			} else {
				req.MaxPrice = &a
			}
		case "in_stock", "featured":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad[name] = "must be true or false"
				continue
			}
			if name == "in_stock" {
				req.InStock = b
			} else {
				req.Featured = b
			}
		case "page", "page_size":
			n, err := strconv.Atoi(v)
			if err != nil {
				bad[name] = "must be an integer"
				continue
			}
			if name == "page" {
				req.Page = n
			} else {
				req.PageSize = n
			}
		default:
			bad[name] = "unknown parameter; filters are category, q, min_price, max_price, in_stock, featured, sort, page, page_size"
		}
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	return req, nil
}

// Client encoders and decoders, used by NewClient.

// encodeJSON sends the request (or body(request), when body is given) as
// JSON to the path path(request) returns.
func encodeJSON(path func(request any) string, body func(request any) any) httptransport.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, request any) error {
		r.URL.Path = path(request)
		if body != nil {
			request = body(request)
		}
		return discovery.SetJSONBody(r, request)
	}
}

// encodePath sends a bodiless request to path(request).
func encodePath(path func(request any) string) httptransport.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, request any) error {
		r.URL.Path = path(request)
		return nil
	}
}

func fixed(path string) func(any) string { return func(any) string { return path } }

func reservationPath(suffix string) func(any) string {
	return func(request any) string {
		return internalPrefix + "/reservations/" + url.PathEscape(request.(orderRequest).OrderID) + suffix
	}
}

// decodeResponse decodes an instance's answer into T with
// discovery.DecodeResponse; each after completes a success from the response
// (201 or 200). It maps error bodies back itself, with domainError, to
// rebuild *LineErrors: with no mappings, discovery hands every 4xx over as an
// *httpkit.Error.
func decodeResponse[T any](fail func(error) T, after ...func(*T, *http.Response)) httptransport.DecodeResponseFunc {
	return discovery.DecodeResponse(ServiceName, nil, func(err error) T { return fail(domainError(err)) }, after...)
}

// domainError turns an error body (an *httpkit.Error from
// discovery.DecodeErrorBody) back into the domain error it was made from (a
// *LineError with its details for out_of_stock and unknown_product), or
// leaves it an *httpkit.Error that re-encodes as the same status and code
// (401/403 from auth, 422 validation, …) when it is not one of ours.
func domainError(err error) error {
	var e *httpkit.Error
	if !errors.As(err, &e) {
		return err
	}
	for _, m := range errorMappings {
		if m.Code != e.Code || m.Status != e.Status {
			continue
		}
		if m.Err == ErrOutOfStock || m.Err == ErrUnknownProduct {
			if le := lineError(m.Err, e.Details); le != nil {
				return le
			}
		}
		return m.Err
	}
	return e
}

// lineError rebuilds a *LineError from an error body's details, or nil when
// they do not name a product.
func lineError(err error, details map[string]any) *LineError {
	productID, _ := details["product_id"].(string)
	if uuid.Validate(productID) != nil {
		return nil
	}
	le := &LineError{Err: err, ProductID: productID}
	if v, ok := details["variant_id"].(string); ok {
		le.VariantID = &v
	}
	if n, ok := details["requested"].(float64); ok {
		le.Requested = int(n)
	}
	if n, ok := details["available"].(float64); ok {
		le.Available = int(n)
	}
	return le
}
