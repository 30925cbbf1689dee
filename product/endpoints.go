package product

import (
	"context"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/mercato-dev/mercato/shared/auth"
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
	return func(ctx context.Context, _ any) (any, error) {
		tree, err := s.ListCategories(ctx)
		return categoriesResponse{Items: tree, Err: err}, nil
	}
}

// MakeCreateCategoryEndpoint returns the endpoint of Service.CreateCategory.
func MakeCreateCategoryEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(createCategoryRequest)
		if err := req.validate(); err != nil {
			return createCategoryResponse{categoryResponse{Err: err}}, nil
		}
		c, err := s.CreateCategory(ctx, CategoryInput(req))
		return createCategoryResponse{categoryResponse{Category: c, Err: err}}, nil
	}
}

// MakeUpdateCategoryEndpoint returns the endpoint of Service.UpdateCategory.
func MakeUpdateCategoryEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(updateCategoryRequest)
		if err := req.validate(); err != nil {
			return categoryResponse{Err: err}, nil
		}
		c, err := s.UpdateCategory(ctx, req.ID, req.CategoryPatch)
		return categoryResponse{Category: c, Err: err}, nil
	}
}

// MakeDeleteCategoryEndpoint returns the endpoint of Service.DeleteCategory.
func MakeDeleteCategoryEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		return noContentResponse{Err: s.DeleteCategory(ctx, request.(idRequest).ID)}, nil
	}
}

// MakeListProductsEndpoint returns the endpoint of Service.ListProducts.
func MakeListProductsEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(listProductsRequest)
		if err := req.validate(); err != nil {
			return productsResponse{Err: err}, nil
		}
		q := req.ProductQuery
		q.Admin = isAdmin(ctx)
		p, err := s.ListProducts(ctx, q)
		return productsResponse{ProductPage: p, Err: err}, nil
	}
}

// MakeGetProductEndpoint returns the endpoint of Service.GetProduct.
func MakeGetProductEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		p, err := s.GetProduct(ctx, request.(getProductRequest).Ref, isAdmin(ctx))
		return productResponse{Product: p, Err: err}, nil
	}
}

// MakeCreateProductEndpoint returns the endpoint of Service.CreateProduct.
func MakeCreateProductEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(createProductRequest)
		if err := req.validate(); err != nil {
			return createProductResponse{productResponse{Err: err}}, nil
		}
		p, err := s.CreateProduct(ctx, req.input())
		return createProductResponse{productResponse{Product: p, Err: err}}, nil
	}
}

// MakeUpdateProductEndpoint returns the endpoint of Service.UpdateProduct.
func MakeUpdateProductEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(updateProductRequest)
		if err := req.validate(); err != nil {
			return productResponse{Err: err}, nil
		}
		p, err := s.UpdateProduct(ctx, req.ID, req.ProductPatch)
		return productResponse{Product: p, Err: err}, nil
	}
}

// MakeDeactivateProductEndpoint returns the endpoint of Service.DeactivateProduct.
func MakeDeactivateProductEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		return noContentResponse{Err: s.DeactivateProduct(ctx, request.(idRequest).ID)}, nil
	}
}

// MakeCreateVariantEndpoint returns the endpoint of Service.CreateVariant.
func MakeCreateVariantEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(createVariantRequest)
		if err := req.validate(); err != nil {
			return createVariantResponse{variantResponse{Err: err}}, nil
		}
		v, err := s.CreateVariant(ctx, req.ProductID, req.input())
		return createVariantResponse{variantResponse{Variant: v, Err: err}}, nil
	}
}

// MakeUpdateVariantEndpoint returns the endpoint of Service.UpdateVariant.
func MakeUpdateVariantEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(updateVariantRequest)
		if err := req.validate(); err != nil {
			return variantResponse{Err: err}, nil
		}
		v, err := s.UpdateVariant(ctx, req.ProductID, req.VariantID, req.VariantPatch)
		return variantResponse{Variant: v, Err: err}, nil
	}
}

// MakeAdjustStockEndpoint returns the endpoint of Service.AdjustStock.
func MakeAdjustStockEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(adjustStockRequest)
		if err := req.validate(); err != nil {
			return productResponse{Err: err}, nil
		}
		a := StockAdjustment{Delta: req.Delta, Reason: req.Reason}
		if req.VariantID != nil {
			a.VariantID = *req.VariantID
		}
		p, err := s.AdjustStock(ctx, req.ProductID, a)
		return productResponse{Product: p, Err: err}, nil
	}
}

// MakeReserveEndpoint returns the endpoint of Service.Reserve.
func MakeReserveEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(reserveRequest)
		if err := req.validate(); err != nil {
			return reservationResponse{Err: err}, nil
		}
		r, created, err := s.Reserve(ctx, req.domain())
		return reservationResponse{Reservation: r, Created: created, Err: err}, nil
	}
}

// MakeCommitReservationEndpoint returns the endpoint of Service.CommitReservation.
func MakeCommitReservationEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		r, err := s.CommitReservation(ctx, request.(orderRequest).OrderID)
		return reservationResponse{Reservation: r, Err: err}, nil
	}
}

// MakeReleaseReservationEndpoint returns the endpoint of Service.ReleaseReservation.
func MakeReleaseReservationEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		r, err := s.ReleaseReservation(ctx, request.(orderRequest).OrderID)
		return reservationResponse{Reservation: r, Err: err}, nil
	}
}

// MakeGetReservationEndpoint returns the endpoint of Service.GetReservation.
func MakeGetReservationEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		r, err := s.GetReservation(ctx, request.(orderRequest).OrderID)
		return reservationResponse{Reservation: r, Err: err}, nil
	}
}

// Service implementation, so Endpoints doubles as a client.

func (e Endpoints) ListCategories(ctx context.Context) ([]CategoryNode, error) {
	resp, err := e.ListCategoriesEndpoint(ctx, listCategoriesRequest{})
	if err != nil {
		return nil, err
	}
	out := resp.(categoriesResponse)
	return out.Items, out.Err
}

func (e Endpoints) CreateCategory(ctx context.Context, c CategoryInput) (Category, error) {
	resp, err := e.CreateCategoryEndpoint(ctx, createCategoryRequest(c))
	if err != nil {
		return Category{}, err
	}
	out := resp.(createCategoryResponse)
	return out.Category, out.Err
}

func (e Endpoints) UpdateCategory(ctx context.Context, id string, p CategoryPatch) (Category, error) {
	resp, err := e.UpdateCategoryEndpoint(ctx, updateCategoryRequest{ID: id, CategoryPatch: p})
	if err != nil {
		return Category{}, err
	}
	out := resp.(categoryResponse)
	return out.Category, out.Err
}

func (e Endpoints) DeleteCategory(ctx context.Context, id string) error {
	resp, err := e.DeleteCategoryEndpoint(ctx, idRequest{ID: id})
	if err != nil {
		return err
	}
	return resp.(noContentResponse).Err
}

func (e Endpoints) ListProducts(ctx context.Context, q ProductQuery) (ProductPage, error) {
	resp, err := e.ListProductsEndpoint(ctx, listProductsRequest{ProductQuery: q})
	if err != nil {
		return ProductPage{}, err
	}
	out := resp.(productsResponse)
	return out.ProductPage, out.Err
}

func (e Endpoints) GetProduct(ctx context.Context, ref string, _ bool) (Product, error) {
	resp, err := e.GetProductEndpoint(ctx, getProductRequest{Ref: ref})
	if err != nil {
		return Product{}, err
	}
	out := resp.(productResponse)
	return out.Product, out.Err
}

func (e Endpoints) CreateProduct(ctx context.Context, p ProductInput) (Product, error) {
	resp, err := e.CreateProductEndpoint(ctx, newCreateProductRequest(p))
	if err != nil {
		return Product{}, err
	}
	out := resp.(createProductResponse)
	return out.Product, out.Err
}

func (e Endpoints) UpdateProduct(ctx context.Context, id string, p ProductPatch) (Product, error) {
	resp, err := e.UpdateProductEndpoint(ctx, updateProductRequest{ID: id, ProductPatch: p})
	if err != nil {
		return Product{}, err
	}
	out := resp.(productResponse)
	return out.Product, out.Err
}

func (e Endpoints) DeactivateProduct(ctx context.Context, id string) error {
	resp, err := e.DeactivateProductEndpoint(ctx, idRequest{ID: id})
	if err != nil {
		return err
	}
	return resp.(noContentResponse).Err
}

func (e Endpoints) CreateVariant(ctx context.Context, productID string, v VariantInput) (Variant, error) {
	active := v.IsActive
	resp, err := e.CreateVariantEndpoint(ctx, createVariantRequest{ProductID: productID, SKU: v.SKU, Name: v.Name,
		Price: validate.Some(v.Price), StockQuantity: v.StockQuantity, Attributes: v.Attributes, IsActive: &active})
	if err != nil {
		return Variant{}, err
	}
	out := resp.(createVariantResponse)
	return out.Variant, out.Err
}

func (e Endpoints) UpdateVariant(ctx context.Context, productID, variantID string, p VariantPatch) (Variant, error) {
	resp, err := e.UpdateVariantEndpoint(ctx, updateVariantRequest{ProductID: productID, VariantID: variantID, VariantPatch: p})
	if err != nil {
		return Variant{}, err
	}
	out := resp.(variantResponse)
	return out.Variant, out.Err
}

func (e Endpoints) AdjustStock(ctx context.Context, productID string, a StockAdjustment) (Product, error) {
	req := adjustStockRequest{ProductID: productID, Delta: a.Delta, Reason: a.Reason}
	if a.VariantID != "" {
		req.VariantID = &a.VariantID
	}
	resp, err := e.AdjustStockEndpoint(ctx, req)
	if err != nil {
		return Product{}, err
	}
	out := resp.(productResponse)
	return out.Product, out.Err
}

func (e Endpoints) Reserve(ctx context.Context, r ReservationRequest) (Reservation, bool, error) {
	req := reserveRequest{OrderID: r.OrderID, Items: r.Items}
	if r.TTL != 0 {
		secs := int(r.TTL / time.Second)
		req.TTLSeconds = &secs
	}
	resp, err := e.ReserveEndpoint(ctx, req)
	if err != nil {
		return Reservation{}, false, err
	}
	out := resp.(reservationResponse)
	return out.Reservation, out.Created, out.Err
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
	resp, err := ep(ctx, orderRequest{OrderID: orderID})
	if err != nil {
		return Reservation{}, err
	}
	out := resp.(reservationResponse)
	return out.Reservation, out.Err
}
