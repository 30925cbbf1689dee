package product

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-kit/kit/endpoint"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Endpoints collects one endpoint per Service method. On the server they are
// built by MakeServerEndpoints around a Service; in a client (NewClient) they
// call a remote instance. Either way Endpoints is itself a Service.
//
// As a client, the admin argument of GetProduct and ProductQuery.Admin are
// not sent: the server decides the view from the bearer token ctx carries
// (auth.ContextToHTTP forwards it), never from anything the caller says.
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
			return createCategoryResponse{Err: err}, nil
		}
		c, err := s.CreateCategory(ctx, CategoryInput(req))
		return createCategoryResponse{Category: c, Err: err}, nil
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
			return createProductResponse{Err: err}, nil
		}
		p, err := s.CreateProduct(ctx, req.input())
		return createProductResponse{Product: p, Err: err}, nil
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
			return createVariantResponse{Err: err}, nil
		}
		v, err := s.CreateVariant(ctx, req.ProductID, req.input())
		return createVariantResponse{Variant: v, Err: err}, nil
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

// Requests. Each validates itself; a failure is a 422 naming every bad field.

// Bounds of request fields, from the columns they are stored in.
const (
	maxNameLen        = 255
	maxSKULen         = 100
	maxTextLen        = 20000
	maxStock          = 1_000_000_000
	maxStockDelta     = 1_000_000
	maxImages         = 20
	maxURLLen         = 2048
	maxAttributes     = 20
	maxReserveLines   = 100
	maxLineQuantity   = 100_000
	maxQueryLen       = 200
	maxPage           = 10_000 // beyond, OFFSET would scan the whole catalogue for nothing useful
	maxDimension      = 100_000
	maxReasonLen      = 255
	maxAttributeKey   = 50
	maxAttributeValue = 255
)

type listCategoriesRequest struct{}

type createCategoryRequest struct {
	Name        string  `json:"name"`
	Slug        string  `json:"slug,omitempty"`
	Description string  `json:"description,omitempty"`
	ParentID    *string `json:"parent_id,omitempty"`
}

func (r createCategoryRequest) validate() error {
	p := validate.Problems{}
	p.Text("name", r.Name, maxNameLen, true)
	checkSlug(p, "slug", r.Slug, r.Name, true)
	p.Text("description", r.Description, maxTextLen, false)
	if r.ParentID != nil {
		p.UUID("parent_id", *r.ParentID)
	}
	return p.Err()
}

type updateCategoryRequest struct {
	ID string `json:"-"` // from the path
	CategoryPatch
}

func (r updateCategoryRequest) validate() error {
	p := validate.Problems{}
	c := r.CategoryPatch
	if !c.Name.Set && !c.Slug.Set && !c.Description.Set && !c.ParentID.Set {
		p["body"] = "nothing to update: give name, slug, description or parent_id"
	}
	if validate.Present(p, "name", c.Name, false) {
		p.Text("name", *c.Name.Value, maxNameLen, true)
	}
	if validate.Present(p, "slug", c.Slug, false) {
		checkSlug(p, "slug", *c.Slug.Value, "", false)
	}
	if validate.Present(p, "description", c.Description, true) {
		p.Text("description", *c.Description.Value, maxTextLen, false)
	}
	if validate.Present(p, "parent_id", c.ParentID, true) {
		p.UUID("parent_id", *c.ParentID.Value)
	}
	return p.Err()
}

// idRequest names a resource by the {id} of the path.
type idRequest struct {
	ID string
}

type listProductsRequest struct {
	ProductQuery
}

func (r listProductsRequest) validate() error {
	p := validate.Problems{}
	p.Page(r.Page, r.PageSize)
	if r.Page < 1 || r.Page > maxPage {
		p["page"] = "must be between 1 and " + strconv.Itoa(maxPage)
	}
	if r.Category != "" && !ValidSlug(r.Category) {
		if _, ok := validate.ParseUUID(r.Category); !ok {
			p["category"] = "must be a category id or slug"
		}
	}
	if r.Q != "" {
		p.Text("q", r.Q, maxQueryLen, true)
	}
	for _, f := range []struct {
		name string
		v    *money.Amount
	}{{"min_price", r.MinPrice}, {"max_price", r.MaxPrice}} {
		if f.v != nil && (*f.v < 0 || *f.v > validate.MaxAmount) {
			p[f.name] = "must be between 0.00 and 99999999.99"
		}
	}
	if r.MinPrice != nil && r.MaxPrice != nil && *r.MinPrice > *r.MaxPrice {
		p["max_price"] = "must not be below min_price"
	}
	switch r.Sort {
	case "", SortPrice, SortPriceDesc, SortName, SortNewest:
	case SortRelevance:
		if r.Q == "" {
			p["sort"] = "relevance needs q"
		}
	default:
		p["sort"] = "must be one of price, -price, name, -created_at (or relevance, with q)"
	}
	return p.Err()
}

type getProductRequest struct {
	Ref string // id or slug
}

type createProductRequest struct {
	CategoryID       *string                         `json:"category_id,omitempty"`
	Name             string                          `json:"name"`
	Slug             string                          `json:"slug,omitempty"`
	Description      string                          `json:"description,omitempty"`
	ShortDescription string                          `json:"short_description,omitempty"`
	SKU              string                          `json:"sku"`
	Price            validate.Optional[money.Amount] `json:"price,omitzero"`
	ComparePrice     validate.Optional[money.Amount] `json:"compare_price,omitzero"`
	CostPrice        validate.Optional[money.Amount] `json:"cost_price,omitzero"`
	StockQuantity    int                             `json:"stock_quantity,omitempty"`
	MinStockQuantity int                             `json:"min_stock_quantity,omitempty"`
	Weight           *json.Number                    `json:"weight,omitempty"`
	Dimensions       *Dimensions                     `json:"dimensions,omitempty"`
	Images           []string                        `json:"images,omitempty"`
	IsActive         *bool                           `json:"is_active,omitempty"` // default true
	IsFeatured       bool                            `json:"is_featured,omitempty"`
}

func newCreateProductRequest(p ProductInput) createProductRequest {
	active := p.IsActive
	r := createProductRequest{
		CategoryID: p.CategoryID, Name: p.Name, Slug: p.Slug, Description: p.Description,
		ShortDescription: p.ShortDescription, SKU: p.SKU, Price: validate.Some(p.Price),
		StockQuantity: p.StockQuantity, MinStockQuantity: p.MinStockQuantity, Weight: p.Weight,
		Dimensions: p.Dimensions, Images: p.Images, IsActive: &active, IsFeatured: p.IsFeatured,
	}
	if p.ComparePrice != nil {
		r.ComparePrice = validate.Some(*p.ComparePrice)
	}
	if p.CostPrice != nil {
		r.CostPrice = validate.Some(*p.CostPrice)
	}
	return r
}

func (r createProductRequest) validate() error {
	p := validate.Problems{}
	if r.CategoryID != nil {
		p.UUID("category_id", *r.CategoryID)
	}
	p.Text("name", r.Name, maxNameLen, true)
	checkSlug(p, "slug", r.Slug, r.Name, true)
	p.Text("description", r.Description, maxTextLen, false)
	p.Text("short_description", r.ShortDescription, maxTextLen, false)
	checkSKU(p, "sku", r.SKU)
	if validate.Required(p, "price", r.Price) {
		checkPrice(p, "price", *r.Price.Value)
	}
	if validate.Present(p, "compare_price", r.ComparePrice, true) {
		checkPrice(p, "compare_price", *r.ComparePrice.Value)
	}
	if validate.Present(p, "cost_price", r.CostPrice, true) {
		checkPrice(p, "cost_price", *r.CostPrice.Value)
	}
	checkQuantity(p, "stock_quantity", r.StockQuantity)
	checkQuantity(p, "min_stock_quantity", r.MinStockQuantity)
	if r.Weight != nil {
		checkWeight(p, "weight", *r.Weight)
	}
	if r.Dimensions != nil {
		checkDimensions(p, "dimensions", *r.Dimensions)
	}
	checkImages(p, "images", r.Images)
	return p.Err()
}

func (r createProductRequest) input() ProductInput {
	return ProductInput{
		CategoryID: r.CategoryID, Name: r.Name, Slug: r.Slug, Description: r.Description,
		ShortDescription: r.ShortDescription, SKU: r.SKU, Price: *r.Price.Value,
		ComparePrice: r.ComparePrice.Value, CostPrice: r.CostPrice.Value,
		StockQuantity: r.StockQuantity, MinStockQuantity: r.MinStockQuantity,
		Weight: r.Weight, Dimensions: r.Dimensions, Images: r.Images,
		IsActive: r.IsActive == nil || *r.IsActive, IsFeatured: r.IsFeatured,
	}
}

type updateProductRequest struct {
	ID string `json:"-"` // from the path
	ProductPatch
}

func (r updateProductRequest) validate() error {
	p := validate.Problems{}
	u := r.ProductPatch
	if !u.CategoryID.Set && !u.Name.Set && !u.Slug.Set && !u.Description.Set && !u.ShortDescription.Set &&
		!u.SKU.Set && !u.Price.Set && !u.ComparePrice.Set && !u.CostPrice.Set && !u.MinStockQuantity.Set &&
		!u.Weight.Set && !u.Dimensions.Set && !u.Images.Set && !u.IsActive.Set && !u.IsFeatured.Set {
		p["body"] = "nothing to update"
	}
	if validate.Present(p, "category_id", u.CategoryID, true) {
		p.UUID("category_id", *u.CategoryID.Value)
	}
	if validate.Present(p, "name", u.Name, false) {
		p.Text("name", *u.Name.Value, maxNameLen, true)
	}
	if validate.Present(p, "slug", u.Slug, false) {
		checkSlug(p, "slug", *u.Slug.Value, "", false)
	}
	if validate.Present(p, "description", u.Description, true) {
		p.Text("description", *u.Description.Value, maxTextLen, false)
	}
	if validate.Present(p, "short_description", u.ShortDescription, true) {
		p.Text("short_description", *u.ShortDescription.Value, maxTextLen, false)
	}
	if validate.Present(p, "sku", u.SKU, false) {
		checkSKU(p, "sku", *u.SKU.Value)
	}
	if validate.Present(p, "price", u.Price, false) {
		checkPrice(p, "price", *u.Price.Value)
	}
	if validate.Present(p, "compare_price", u.ComparePrice, true) {
		checkPrice(p, "compare_price", *u.ComparePrice.Value)
	}
	if validate.Present(p, "cost_price", u.CostPrice, true) {
		checkPrice(p, "cost_price", *u.CostPrice.Value)
	}
	if validate.Present(p, "min_stock_quantity", u.MinStockQuantity, false) {
		checkQuantity(p, "min_stock_quantity", *u.MinStockQuantity.Value)
	}
	if validate.Present(p, "weight", u.Weight, true) {
		checkWeight(p, "weight", *u.Weight.Value)
	}
	if validate.Present(p, "dimensions", u.Dimensions, true) {
		checkDimensions(p, "dimensions", *u.Dimensions.Value)
	}
	if validate.Present(p, "images", u.Images, true) {
		checkImages(p, "images", *u.Images.Value)
	}
	validate.Present(p, "is_active", u.IsActive, false)
	validate.Present(p, "is_featured", u.IsFeatured, false)
	return p.Err()
}

type createVariantRequest struct {
	ProductID     string                          `json:"-"` // from the path
	SKU           string                          `json:"sku"`
	Name          string                          `json:"name"`
	Price         validate.Optional[money.Amount] `json:"price,omitzero"`
	StockQuantity int                             `json:"stock_quantity,omitempty"`
	Attributes    map[string]string               `json:"attributes,omitempty"`
	IsActive      *bool                           `json:"is_active,omitempty"` // default true
}

func (r createVariantRequest) validate() error {
	p := validate.Problems{}
	checkSKU(p, "sku", r.SKU)
	p.Text("name", r.Name, maxNameLen, true)
	if validate.Required(p, "price", r.Price) {
		checkPrice(p, "price", *r.Price.Value)
	}
	checkQuantity(p, "stock_quantity", r.StockQuantity)
	checkAttributes(p, "attributes", r.Attributes)
	return p.Err()
}

func (r createVariantRequest) input() VariantInput {
	return VariantInput{SKU: r.SKU, Name: r.Name, Price: *r.Price.Value, StockQuantity: r.StockQuantity,
		Attributes: r.Attributes, IsActive: r.IsActive == nil || *r.IsActive}
}

type updateVariantRequest struct {
	ProductID string `json:"-"` // from the path
	VariantID string `json:"-"` // from the path
	VariantPatch
}

func (r updateVariantRequest) validate() error {
	p := validate.Problems{}
	u := r.VariantPatch
	if !u.SKU.Set && !u.Name.Set && !u.Price.Set && !u.Attributes.Set && !u.IsActive.Set {
		p["body"] = "nothing to update: give sku, name, price, attributes or is_active"
	}
	if validate.Present(p, "sku", u.SKU, false) {
		checkSKU(p, "sku", *u.SKU.Value)
	}
	if validate.Present(p, "name", u.Name, false) {
		p.Text("name", *u.Name.Value, maxNameLen, true)
	}
	if validate.Present(p, "price", u.Price, false) {
		checkPrice(p, "price", *u.Price.Value)
	}
	if validate.Present(p, "attributes", u.Attributes, false) {
		checkAttributes(p, "attributes", *u.Attributes.Value)
	}
	validate.Present(p, "is_active", u.IsActive, false)
	return p.Err()
}

type adjustStockRequest struct {
	ProductID string  `json:"-"` // from the path
	VariantID *string `json:"variant_id,omitempty"`
	Delta     int     `json:"delta"`
	Reason    string  `json:"reason"`
}

func (r adjustStockRequest) validate() error {
	p := validate.Problems{}
	if r.VariantID != nil {
		p.UUID("variant_id", *r.VariantID)
	}
	if r.Delta == 0 || r.Delta < -maxStockDelta || r.Delta > maxStockDelta {
		p["delta"] = "must be a non-zero whole number between -1000000 and 1000000"
	}
	p.Text("reason", r.Reason, maxReasonLen, true)
	return p.Err()
}

type reserveRequest struct {
	OrderID    string            `json:"order_id"`
	Items      []ReservationLine `json:"items"`
	TTLSeconds *int              `json:"ttl_seconds,omitempty"`
}

func (r reserveRequest) validate() error {
	p := validate.Problems{}
	p.UUID("order_id", r.OrderID)
	if len(r.Items) == 0 || len(r.Items) > maxReserveLines {
		p["items"] = "must hold 1 to " + strconv.Itoa(maxReserveLines) + " lines"
	}
	for i, l := range r.Items {
		if i >= maxReserveLines {
			break
		}
		field := "items[" + strconv.Itoa(i) + "]."
		p.UUID(field+"product_id", l.ProductID)
		if l.VariantID != nil {
			p.UUID(field+"variant_id", *l.VariantID)
		}
		if l.Quantity < 1 || l.Quantity > maxLineQuantity {
			p[field+"quantity"] = "must be between 1 and " + strconv.Itoa(maxLineQuantity)
		}
	}
	if r.TTLSeconds != nil {
		min, max := int(MinReservationTTL/time.Second), int(MaxReservationTTL/time.Second)
		if *r.TTLSeconds < min || *r.TTLSeconds > max {
			p["ttl_seconds"] = fmt.Sprintf("must be between %d and %d", min, max)
		}
	}
	return p.Err()
}

func (r reserveRequest) domain() ReservationRequest {
	out := ReservationRequest{OrderID: r.OrderID, Items: r.Items}
	if r.TTLSeconds != nil {
		out.TTL = time.Duration(*r.TTLSeconds) * time.Second
	}
	return out
}

// orderRequest names a reservation by the {order_id} of the path.
type orderRequest struct {
	OrderID string
}

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

type createCategoryResponse struct {
	Category Category `json:"category"`
	Err      error    `json:"-"`
}

func (r createCategoryResponse) Failed() error   { return r.Err }
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

type createProductResponse struct {
	Product Product `json:"product"`
	Err     error   `json:"-"`
}

func (r createProductResponse) Failed() error   { return r.Err }
func (r createProductResponse) StatusCode() int { return http.StatusCreated }
func (r createProductResponse) Headers() http.Header {
	return http.Header{"Location": {apiPrefix + "/products/" + r.Product.ID}}
}

type variantResponse struct {
	Variant Variant `json:"variant"`
	Err     error   `json:"-"`
}

func (r variantResponse) Failed() error { return r.Err }

type createVariantResponse struct {
	Variant Variant `json:"variant"`
	Err     error   `json:"-"`
}

func (r createVariantResponse) Failed() error   { return r.Err }
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

// Validation: the product service's own checks, on top of validate.Problems.

// checkSlug checks an explicit slug. An empty one is derived from name (when
// derive; name's own check reports a missing name), so it must yield one.
func checkSlug(p validate.Problems, field, v, name string, derive bool) {
	v = strings.TrimSpace(v)
	switch {
	case v == "" && derive:
		if strings.TrimSpace(name) != "" && Slugify(name) == "" {
			p[field] = "is required when the name has no latin letters or digits"
		}
	case !ValidSlug(v):
		p[field] = "must be lower-case letters and digits in words separated by single dashes, at most 255 characters"
	case uuid.Validate(v) == nil:
		p[field] = "must not look like an id" // GET /products/{id or slug} could not tell them apart
	}
}

var skuPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func checkSKU(p validate.Problems, field, v string) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		p[field] = "is required"
	case len(v) > maxSKULen || !skuPattern.MatchString(v):
		p[field] = "must be at most 100 letters, digits, dots, dashes and underscores"
	}
}

func checkPrice(p validate.Problems, field string, v money.Amount) {
	if v < 0 || v > validate.MaxAmount {
		p[field] = "must be between 0.00 and 99999999.99"
	}
}

func checkQuantity(p validate.Problems, field string, v int) {
	if v < 0 || v > maxStock {
		p[field] = "must be a whole number between 0 and 1000000000"
	}
}

var weightPattern = regexp.MustCompile(`^[0-9]{1,6}(\.[0-9]{1,2})?$`)

func checkWeight(p validate.Problems, field string, v json.Number) {
	if !weightPattern.MatchString(string(v)) {
		p[field] = "must be a number from 0 to 999999.99 with at most two decimal places"
	}
}

func checkDimensions(p validate.Problems, field string, d Dimensions) {
	for name, v := range map[string]float64{"length": d.Length, "width": d.Width, "height": d.Height} {
		if v < 0 || v > maxDimension || math.IsNaN(v) {
			p[field+"."+name] = "must be between 0 and 100000"
		}
	}
	switch d.Unit {
	case "", "mm", "cm", "m", "in":
	default:
		p[field+".unit"] = "must be mm, cm, m or in"
	}
}

func checkImages(p validate.Problems, field string, urls []string) {
	if len(urls) > maxImages {
		p[field] = "must hold at most " + strconv.Itoa(maxImages) + " URLs"
		return
	}
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || len(raw) > maxURLLen || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p[field+"["+strconv.Itoa(i)+"]"] = "must be an absolute http(s) URL of at most 2048 characters"
		}
	}
}

func checkAttributes(p validate.Problems, field string, attrs map[string]string) {
	if len(attrs) > maxAttributes {
		p[field] = "must hold at most " + strconv.Itoa(maxAttributes) + " attributes"
		return
	}
	for k, v := range attrs {
		if k == "" || utf8.RuneCountInString(k) > maxAttributeKey || !utf8.ValidString(k) || strings.ContainsRune(k, 0) {
			p[field] = "names must be 1 to 50 characters"
			continue
		}
		p.Text(field+"."+k, v, maxAttributeValue, true)
	}
}
