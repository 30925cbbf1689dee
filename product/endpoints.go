package product

import (
	"context"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/endpointkit"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Endpoints collects one endpoint per Service method, the catalogue's and
// the inventory's. On the server they are built by MakeServerEndpoints
// around a Service; in a client (NewClient) the inventory's call a remote
// instance. Either way Endpoints is itself a Service.
//
// Called as a Service, the admin argument of GetProduct and
// ProductQuery.Admin are not passed on: the server decides the view from the
// verified bearer token, never from anything the caller says.
type Endpoints struct {
	ListCategoriesEndpoint     endpoint.Endpoint
	CreateCategoryEndpoint     endpoint.Endpoint
	UpdateCategoryEndpoint     endpoint.Endpoint
	DeleteCategoryEndpoint     endpoint.Endpoint
	ListProductsEndpoint       endpoint.Endpoint
	GetProductEndpoint         endpoint.Endpoint
	CreateProductEndpoint      endpoint.Endpoint
	UpdateProductEndpoint      endpoint.Endpoint
	DeactivateProductEndpoint  endpoint.Endpoint
	CreateVariantEndpoint      endpoint.Endpoint
	UpdateVariantEndpoint      endpoint.Endpoint
	AdjustStockEndpoint        endpoint.Endpoint
	ReserveEndpoint            endpoint.Endpoint
	CommitReservationEndpoint  endpoint.Endpoint
	ReleaseReservationEndpoint endpoint.Endpoint
	GetReservationEndpoint     endpoint.Endpoint
}

var _ Service = Endpoints{}

// MakeServerEndpoints returns the endpoints of s, with authentication and
// authorisation applied here and nowhere else: catalogue reads are public
// (a token, when sent, must be valid, and an admin's selects the admin
// view), catalogue writes are for admins, reservations for other services
// (and admins).
func MakeServerEndpoints(s Service, tokens *auth.Tokens) Endpoints {
	viewer := optionalAuthentication(tokens)
	admin := endpoint.Chain(auth.Authenticate(tokens), auth.RequireRole(auth.RoleAdmin))
	internal := endpoint.Chain(auth.Authenticate(tokens), auth.RequireRole(auth.RoleService, auth.RoleAdmin))
	return Endpoints{
		ListCategoriesEndpoint:     viewer(MakeListCategoriesEndpoint(s)),
		CreateCategoryEndpoint:     admin(MakeCreateCategoryEndpoint(s)),
		UpdateCategoryEndpoint:     admin(MakeUpdateCategoryEndpoint(s)),
		DeleteCategoryEndpoint:     admin(MakeDeleteCategoryEndpoint(s)),
		ListProductsEndpoint:       viewer(MakeListProductsEndpoint(s)),
		GetProductEndpoint:         viewer(MakeGetProductEndpoint(s)),
		CreateProductEndpoint:      admin(MakeCreateProductEndpoint(s)),
		UpdateProductEndpoint:      admin(MakeUpdateProductEndpoint(s)),
		DeactivateProductEndpoint:  admin(MakeDeactivateProductEndpoint(s)),
		CreateVariantEndpoint:      admin(MakeCreateVariantEndpoint(s)),
		UpdateVariantEndpoint:      admin(MakeUpdateVariantEndpoint(s)),
		AdjustStockEndpoint:        admin(MakeAdjustStockEndpoint(s)),
		ReserveEndpoint:            internal(MakeReserveEndpoint(s)),
		CommitReservationEndpoint:  internal(MakeCommitReservationEndpoint(s)),
		ReleaseReservationEndpoint: internal(MakeReleaseReservationEndpoint(s)),
		GetReservationEndpoint:     internal(MakeGetReservationEndpoint(s)),
	}
}

// tokenSentKey marks a request that came with a bearer token (set by the
// transport), so a public endpoint knows to verify it.
type tokenSentKey struct{}

// optionalAuthentication is auth.Authenticate for public routes: a request
// without a token is served anonymously, one with a token only if it
// verifies (the client believes it is signed in; a silent downgrade would
// hide an expired session).
func optionalAuthentication(tokens *auth.Tokens) endpoint.Middleware {
	authenticate := auth.Authenticate(tokens)
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		verified := authenticate(next)
		return func(ctx context.Context, request any) (any, error) {
			if sent, _ := ctx.Value(tokenSentKey{}).(bool); sent {
				return verified(ctx, request)
			}
			return next(ctx, request)
		}
	}
}

// isAdmin reports whether the verified caller is an admin.
func isAdmin(ctx context.Context) bool {
	id, ok := auth.FromContext(ctx)
	return ok && id.IsAdmin()
}

// MakeListCategoriesEndpoint returns the endpoint of Service.ListCategories.
func MakeListCategoriesEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Serve(func(ctx context.Context, _ listCategoriesRequest) (categoriesResponse, error) {
		tree, err := s.ListCategories(ctx)
		return categoriesResponse{Items: tree}, err
	})
}

// MakeCreateCategoryEndpoint returns the endpoint of Service.CreateCategory.
func MakeCreateCategoryEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(createCategoryRequest.validate, func(ctx context.Context, req createCategoryRequest) (createCategoryResponse, error) {
		c, err := s.CreateCategory(ctx, CategoryInput(req))
		return createCategoryResponse{categoryResponse{Category: c}}, err
	})
}

// MakeUpdateCategoryEndpoint returns the endpoint of Service.UpdateCategory.
func MakeUpdateCategoryEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(updateCategoryRequest.validate, func(ctx context.Context, req updateCategoryRequest) (categoryResponse, error) {
		c, err := s.UpdateCategory(ctx, req.ID, req.CategoryPatch)
		return categoryResponse{Category: c}, err
	})
}

// MakeDeleteCategoryEndpoint returns the endpoint of Service.DeleteCategory.
func MakeDeleteCategoryEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Serve(func(ctx context.Context, req idRequest) (noContentResponse, error) {
		return noContentResponse{}, s.DeleteCategory(ctx, req.ID)
	})
}

// MakeListProductsEndpoint returns the endpoint of Service.ListProducts.
func MakeListProductsEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(listProductsRequest.validate, func(ctx context.Context, req listProductsRequest) (productsResponse, error) {
		q := req.ProductQuery
		q.Admin = isAdmin(ctx)
		p, err := s.ListProducts(ctx, q)
		return productsResponse{Page: p}, err
	})
}

// MakeGetProductEndpoint returns the endpoint of Service.GetProduct.
func MakeGetProductEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Serve(func(ctx context.Context, req getProductRequest) (productResponse, error) {
		p, err := s.GetProduct(ctx, req.Ref, isAdmin(ctx))
		return productResponse{Product: p}, err
	})
}

// MakeCreateProductEndpoint returns the endpoint of Service.CreateProduct.
func MakeCreateProductEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(createProductRequest.validate, func(ctx context.Context, req createProductRequest) (createProductResponse, error) {
		p, err := s.CreateProduct(ctx, req.input())
		return createProductResponse{productResponse{Product: p}}, err
	})
}

// MakeUpdateProductEndpoint returns the endpoint of Service.UpdateProduct.
func MakeUpdateProductEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(updateProductRequest.validate, func(ctx context.Context, req updateProductRequest) (productResponse, error) {
		p, err := s.UpdateProduct(ctx, req.ID, req.ProductPatch)
		return productResponse{Product: p}, err
	})
}

// MakeDeactivateProductEndpoint returns the endpoint of Service.DeactivateProduct.
func MakeDeactivateProductEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Serve(func(ctx context.Context, req idRequest) (noContentResponse, error) {
		return noContentResponse{}, s.DeactivateProduct(ctx, req.ID)
	})
}

// MakeCreateVariantEndpoint returns the endpoint of Service.CreateVariant.
func MakeCreateVariantEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(createVariantRequest.validate, func(ctx context.Context, req createVariantRequest) (createVariantResponse, error) {
		v, err := s.CreateVariant(ctx, req.ProductID, req.input())
		return createVariantResponse{variantResponse{Variant: v}}, err
	})
}

// MakeUpdateVariantEndpoint returns the endpoint of Service.UpdateVariant.
func MakeUpdateVariantEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(updateVariantRequest.validate, func(ctx context.Context, req updateVariantRequest) (variantResponse, error) {
		v, err := s.UpdateVariant(ctx, req.ProductID, req.VariantID, req.VariantPatch)
		return variantResponse{Variant: v}, err
	})
}

// MakeAdjustStockEndpoint returns the endpoint of Service.AdjustStock.
func MakeAdjustStockEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(adjustStockRequest.validate, func(ctx context.Context, req adjustStockRequest) (productResponse, error) {
		a := StockAdjustment{Delta: req.Delta, Reason: req.Reason}
		if req.VariantID != nil {
			a.VariantID = *req.VariantID
		}
		p, err := s.AdjustStock(ctx, req.ProductID, a)
		return productResponse{Product: p}, err
	})
}

// MakeReserveEndpoint returns the endpoint of Service.Reserve.
func MakeReserveEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(reserveRequest.validate, func(ctx context.Context, req reserveRequest) (reservationResponse, error) {
		r, created, err := s.Reserve(ctx, req.domain())
		return reservationResponse{Reservation: r, Created: created}, err
	})
}

// MakeCommitReservationEndpoint returns the endpoint of Service.CommitReservation.
func MakeCommitReservationEndpoint(s Service) endpoint.Endpoint {
	return reservationEndpoint(s.CommitReservation)
}

// MakeReleaseReservationEndpoint returns the endpoint of Service.ReleaseReservation.
func MakeReleaseReservationEndpoint(s Service) endpoint.Endpoint {
	return reservationEndpoint(s.ReleaseReservation)
}

// MakeGetReservationEndpoint returns the endpoint of Service.GetReservation.
func MakeGetReservationEndpoint(s Service) endpoint.Endpoint {
	return reservationEndpoint(s.GetReservation)
}

// reservationEndpoint is the endpoint of a method acting on an order's
// reservation.
func reservationEndpoint(method func(ctx context.Context, orderID string) (Reservation, error)) endpoint.Endpoint {
	return endpointkit.Serve(func(ctx context.Context, req orderRequest) (reservationResponse, error) {
		r, err := method(ctx, req.OrderID)
		return reservationResponse{Reservation: r}, err
	})
}

// Service implementation, so Endpoints doubles as a client.

func (e Endpoints) ListCategories(ctx context.Context) ([]CategoryNode, error) {
	out, err := endpointkit.Call[categoriesResponse](ctx, e.ListCategoriesEndpoint, listCategoriesRequest{})
	return out.Items, err
}

func (e Endpoints) CreateCategory(ctx context.Context, c CategoryInput) (Category, error) {
	out, err := endpointkit.Call[createCategoryResponse](ctx, e.CreateCategoryEndpoint, createCategoryRequest(c))
	return out.Category, err
}

func (e Endpoints) UpdateCategory(ctx context.Context, id string, p CategoryPatch) (Category, error) {
	out, err := endpointkit.Call[categoryResponse](ctx, e.UpdateCategoryEndpoint, updateCategoryRequest{ID: id, CategoryPatch: p})
	return out.Category, err
}

func (e Endpoints) DeleteCategory(ctx context.Context, id string) error {
	_, err := endpointkit.Call[noContentResponse](ctx, e.DeleteCategoryEndpoint, idRequest{ID: id})
	return err
}

func (e Endpoints) ListProducts(ctx context.Context, q ProductQuery) (ProductPage, error) {
	out, err := endpointkit.Call[productsResponse](ctx, e.ListProductsEndpoint, listProductsRequest{ProductQuery: q})
	return out.Page, err
}

func (e Endpoints) GetProduct(ctx context.Context, ref string, _ bool) (Product, error) {
	out, err := endpointkit.Call[productResponse](ctx, e.GetProductEndpoint, getProductRequest{Ref: ref})
	return out.Product, err
}

func (e Endpoints) CreateProduct(ctx context.Context, p ProductInput) (Product, error) {
	out, err := endpointkit.Call[createProductResponse](ctx, e.CreateProductEndpoint, newCreateProductRequest(p))
	return out.Product, err
}

func (e Endpoints) UpdateProduct(ctx context.Context, id string, p ProductPatch) (Product, error) {
	out, err := endpointkit.Call[productResponse](ctx, e.UpdateProductEndpoint, updateProductRequest{ID: id, ProductPatch: p})
	return out.Product, err
}

func (e Endpoints) DeactivateProduct(ctx context.Context, id string) error {
	_, err := endpointkit.Call[noContentResponse](ctx, e.DeactivateProductEndpoint, idRequest{ID: id})
	return err
}

func (e Endpoints) CreateVariant(ctx context.Context, productID string, v VariantInput) (Variant, error) {
	active := v.IsActive
	out, err := endpointkit.Call[createVariantResponse](ctx, e.CreateVariantEndpoint, createVariantRequest{ProductID: productID, SKU: v.SKU, Name: v.Name,
		Price: validate.Some(v.Price), StockQuantity: v.StockQuantity, Attributes: v.Attributes, IsActive: &active})
	return out.Variant, err
}

func (e Endpoints) UpdateVariant(ctx context.Context, productID, variantID string, p VariantPatch) (Variant, error) {
	out, err := endpointkit.Call[variantResponse](ctx, e.UpdateVariantEndpoint, updateVariantRequest{ProductID: productID, VariantID: variantID, VariantPatch: p})
	return out.Variant, err
}

func (e Endpoints) AdjustStock(ctx context.Context, productID string, a StockAdjustment) (Product, error) {
	req := adjustStockRequest{ProductID: productID, Delta: a.Delta, Reason: a.Reason}
	if a.VariantID != "" {
		req.VariantID = &a.VariantID
	}
	out, err := endpointkit.Call[productResponse](ctx, e.AdjustStockEndpoint, req)
	return out.Product, err
}

func (e Endpoints) Reserve(ctx context.Context, r ReservationRequest) (Reservation, bool, error) {
	req := reserveRequest{OrderID: r.OrderID, Items: r.Items}
	if r.TTL != 0 {
		secs := int(r.TTL / time.Second)
		req.TTLSeconds = &secs
	}
	out, err := endpointkit.Call[reservationResponse](ctx, e.ReserveEndpoint, req)
	return out.Reservation, out.Created, err
}

func (e Endpoints) CommitReservation(ctx context.Context, orderID string) (Reservation, error) {
	return e.reservationCall(ctx, e.CommitReservationEndpoint, orderID)
}

func (e Endpoints) ReleaseReservation(ctx context.Context, orderID string) (Reservation, error) {
	return e.reservationCall(ctx, e.ReleaseReservationEndpoint, orderID)
}

func (e Endpoints) GetReservation(ctx context.Context, orderID string) (Reservation, error) {
	return e.reservationCall(ctx, e.GetReservationEndpoint, orderID)
}

func (e Endpoints) reservationCall(ctx context.Context, ep endpoint.Endpoint, orderID string) (Reservation, error) {
	out, err := endpointkit.Call[reservationResponse](ctx, ep, orderRequest{OrderID: orderID})
	return out.Reservation, err
}
