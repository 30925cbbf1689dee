// Package product is the product service of Mercato: the catalogue
// (categories, products, variants), its listing with filters and full-text
// search, admin writes with a stock ledger, and the inventory reservations
// the order service takes stock with. The go-kit layers sit in their own
// files: service.go (this file: interface, domain types and errors, the
// implementation), endpoints.go, transport_http.go, client.go,
// middleware.go and cache.go (the read cache, itself a middleware); the
// PostgreSQL repository lives in package product/postgres.
package product

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/validate"
)

// ServiceName is the name the service registers in Consul under and puts in
// the source of its events.
const ServiceName = "product"

// Currency is the one currency the catalogue prices in.
const Currency = "USD"

// Service is what the product service does. Reads take admin explicitly: the
// admin view includes inactive products and variants and cost prices, the
// public one never does. The transport sets it from the verified token only.
type Service interface {
	ListCategories(ctx context.Context) ([]CategoryNode, error)
	CreateCategory(ctx context.Context, c CategoryInput) (Category, error)
	UpdateCategory(ctx context.Context, id string, p CategoryPatch) (Category, error)
	// DeleteCategory fails with ErrCategoryNotEmpty while the category has
	// sub-categories or products (active or not).
	DeleteCategory(ctx context.Context, id string) error

	ListProducts(ctx context.Context, q ProductQuery) (ProductPage, error)
	// GetProduct finds a product by id or slug.
	GetProduct(ctx context.Context, ref string, admin bool) (Product, error)
	CreateProduct(ctx context.Context, p ProductInput) (Product, error)
	UpdateProduct(ctx context.Context, id string, p ProductPatch) (Product, error)
	// DeactivateProduct is the catalogue's delete: the product disappears
	// for customers but stays for order history and the ledger.
	DeactivateProduct(ctx context.Context, id string) error
	CreateVariant(ctx context.Context, productID string, v VariantInput) (Variant, error)
	UpdateVariant(ctx context.Context, productID, variantID string, p VariantPatch) (Variant, error)
	// AdjustStock changes the available stock of a product or one of its
	// variants by a.Delta, writing a ledger row with a.Reason. It returns
	// the product in the admin view.
	AdjustStock(ctx context.Context, productID string, a StockAdjustment) (Product, error)

	// Reserve takes the stock of every line for the order, or none of it
	// (ErrOutOfStock, ErrUnknownProduct in a *LineError). It is idempotent by
	// order id: created is false when an earlier call with the same lines
	// made the reservation, which is then returned whatever its status;
	// other lines are ErrReservationMismatch.
	Reserve(ctx context.Context, r ReservationRequest) (res Reservation, created bool, err error)
	// CommitReservation marks the units sold. Committing again is a no-op;
	// a released or expired reservation is ErrReservationReleased.
	CommitReservation(ctx context.Context, orderID string) (Reservation, error)
	// ReleaseReservation gives the units back to stock, from a reserved or a
	// committed reservation. Releasing again is a no-op.
	ReleaseReservation(ctx context.Context, orderID string) (Reservation, error)
	GetReservation(ctx context.Context, orderID string) (Reservation, error)

	// ReleaseExpired releases reservations still reserved after their
	// expiry and reports how many. Safe to run in several instances at once.
	ReleaseExpired(ctx context.Context) (int, error)
	// SeedDemo loads the demo catalogue unless it was loaded before (by this
	// or another instance), reporting whether it did.
	SeedDemo(ctx context.Context) (bool, error)
}

// Category is a node of the category tree.
type Category struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Slug        string    `json:"slug"`
	Description string    `json:"description"`
	ParentID    *string   `json:"parent_id"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// CategoryNode is a category with its sub-categories, as GET /categories
// shows the tree.
type CategoryNode struct {
	Category
	Children []CategoryNode `json:"children"`
}

// CategoryInput is a new category. An empty Slug is derived from Name.
type CategoryInput struct {
	Name        string
	Slug        string
	Description string
	ParentID    *string
}

// CategoryPatch changes the fields that are Set; a nil ParentID makes the
// category a root.
type CategoryPatch struct {
	Name        validate.Optional[string] `json:"name,omitzero"`
	Slug        validate.Optional[string] `json:"slug,omitzero"`
	Description validate.Optional[string] `json:"description,omitzero"`
	ParentID    validate.Optional[string] `json:"parent_id,omitzero"`
}

// Dimensions of a product's package.
type Dimensions struct {
	Length float64 `json:"length"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	Unit   string  `json:"unit"`
}

// Product is a catalogue entry. StockQuantity is the available stock of the
// product sold as itself; each variant has its own.
type Product struct {
	ID               string        `json:"id"`
	CategoryID       *string       `json:"category_id"`
	Name             string        `json:"name"`
	Slug             string        `json:"slug"`
	Description      string        `json:"description"`
	ShortDescription string        `json:"short_description"`
	SKU              string        `json:"sku"`
	Price            money.Amount  `json:"price"`
	ComparePrice     *money.Amount `json:"compare_price"`
	// CostPrice is for admins only: the public view never carries it.
	CostPrice        *money.Amount `json:"cost_price,omitempty"`
	Currency         string        `json:"currency"`
	StockQuantity    int           `json:"stock_quantity"`
	MinStockQuantity int           `json:"min_stock_quantity"`
	// Weight is a decimal with up to two places (kg), kept as written.
	Weight     *json.Number `json:"weight"`
	Dimensions *Dimensions  `json:"dimensions"`
	Images     []string     `json:"images"`
	IsActive   bool         `json:"is_active"`
	IsFeatured bool         `json:"is_featured"`
	Variants   []Variant    `json:"variants"`
	CreatedAt  time.Time    `json:"created_at"`
	UpdatedAt  time.Time    `json:"updated_at"`
}

// Variant is a sellable version of a product (a size, a colour) with its own
// SKU, price and stock.
type Variant struct {
	ID            string            `json:"id"`
	ProductID     string            `json:"product_id"`
	SKU           string            `json:"sku"`
	Name          string            `json:"name"`
	Price         money.Amount      `json:"price"`
	Currency      string            `json:"currency"`
	StockQuantity int               `json:"stock_quantity"`
	Attributes    map[string]string `json:"attributes"`
	IsActive      bool              `json:"is_active"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// ProductInput is a new product. StockQuantity is its initial stock, written
// to the ledger as such; an empty Slug is derived from Name.
type ProductInput struct {
	CategoryID       *string
	Name             string
	Slug             string
	Description      string
	ShortDescription string
	SKU              string
	Price            money.Amount
	ComparePrice     *money.Amount
	CostPrice        *money.Amount
	StockQuantity    int
	MinStockQuantity int
	Weight           *json.Number
	Dimensions       *Dimensions
	Images           []string
	IsActive         bool
	IsFeatured       bool
}

// ProductPatch changes the fields that are Set. Stock is not among them: it
// changes through AdjustStock, which keeps the ledger.
type ProductPatch struct {
	CategoryID       validate.Optional[string]       `json:"category_id,omitzero"`
	Name             validate.Optional[string]       `json:"name,omitzero"`
	Slug             validate.Optional[string]       `json:"slug,omitzero"`
	Description      validate.Optional[string]       `json:"description,omitzero"`
	ShortDescription validate.Optional[string]       `json:"short_description,omitzero"`
	SKU              validate.Optional[string]       `json:"sku,omitzero"`
	Price            validate.Optional[money.Amount] `json:"price,omitzero"`
	ComparePrice     validate.Optional[money.Amount] `json:"compare_price,omitzero"`
	CostPrice        validate.Optional[money.Amount] `json:"cost_price,omitzero"`
	MinStockQuantity validate.Optional[int]          `json:"min_stock_quantity,omitzero"`
	Weight           validate.Optional[json.Number]  `json:"weight,omitzero"`
	Dimensions       validate.Optional[Dimensions]   `json:"dimensions,omitzero"`
	Images           validate.Optional[[]string]     `json:"images,omitzero"`
	IsActive         validate.Optional[bool]         `json:"is_active,omitzero"`
	IsFeatured       validate.Optional[bool]         `json:"is_featured,omitzero"`
}

// VariantInput is a new variant; StockQuantity is its initial stock.
type VariantInput struct {
	SKU           string
	Name          string
	Price         money.Amount
	StockQuantity int
	Attributes    map[string]string
	IsActive      bool
}

// VariantPatch changes the fields that are Set.
type VariantPatch struct {
	SKU        validate.Optional[string]            `json:"sku,omitzero"`
	Name       validate.Optional[string]            `json:"name,omitzero"`
	Price      validate.Optional[money.Amount]      `json:"price,omitzero"`
	Attributes validate.Optional[map[string]string] `json:"attributes,omitzero"`
	IsActive   validate.Optional[bool]              `json:"is_active,omitzero"`
}

// StockAdjustment changes the stock of a product, or of its variant
// VariantID when that is set, by Delta, for Reason (kept in the ledger).
type StockAdjustment struct {
	VariantID string
	Delta     int
	Reason    string
}

// Sort orders of the product list.
const (
	SortPrice     = "price"
	SortPriceDesc = "-price"
	SortName      = "name"
	SortNewest    = "-created_at"
	// SortRelevance is the default when Q is given: best matches first.
	SortRelevance = "relevance"
)

// ProductQuery selects a page of products.
type ProductQuery struct {
	Category string // id or slug; includes its sub-categories
	Q        string // full-text search
	MinPrice *money.Amount
	MaxPrice *money.Amount
	InStock  bool // only products with stock of their own or in an active variant
	Featured bool // only featured products
	Sort     string
	Page     int
	PageSize int
	// Admin lists inactive products too, with cost prices.
	Admin bool
}

// ProductFilter is a ProductQuery with its category resolved to the ids of
// the category and its descendants: what the repository queries.
type ProductFilter struct {
	ProductQuery
	CategoryIDs []string // nil: no category filter
}

// ProductPage is one page of products.
type ProductPage struct {
	Items    []Product `json:"items"`
	Page     int       `json:"page"`
	PageSize int       `json:"page_size"`
	Total    int       `json:"total"`
}

// Reservation statuses and release reasons.
const (
	StatusReserved  = "reserved"
	StatusCommitted = "committed"
	StatusReleased  = "released"

	// The release reasons are also inventory.released's.
	ReasonReleased = events.ReleaseReasonReleased // the order service asked
	ReasonExpired  = events.ReleaseReasonExpired  // nobody committed it in time
)

// Reservation TTL bounds (ttl_seconds) and default.
const (
	DefaultReservationTTL = 15 * time.Minute
	MinReservationTTL     = 10 * time.Second
	MaxReservationTTL     = 24 * time.Hour
)

// ReservationLine is one line of a reservation request. A nil VariantID
// reserves the product itself.
type ReservationLine struct {
	ProductID string  `json:"product_id"`
	VariantID *string `json:"variant_id"`
	Quantity  int     `json:"quantity"`
}

// ReservationRequest asks for stock for an order. A zero TTL means
// DefaultReservationTTL.
type ReservationRequest struct {
	OrderID string
	Items   []ReservationLine
	TTL     time.Duration
}

// Reservation is the stock held for one order.
type Reservation struct {
	OrderID       string         `json:"order_id"`
	Status        string         `json:"status"`
	ReleaseReason string         `json:"release_reason,omitempty"`
	ExpiresAt     time.Time      `json:"expires_at"`
	Items         []ReservedItem `json:"items"`
}

// ReservedItem is a line of a reservation with what the order service
// records: the variant's SKU, name and price when VariantID is set, else the
// product's, as they were when the stock was reserved.
type ReservedItem struct {
	ProductID string       `json:"product_id"`
	VariantID *string      `json:"variant_id"`
	Quantity  int          `json:"quantity"`
	SKU       string       `json:"sku"`
	Name      string       `json:"name"`
	UnitPrice money.Amount `json:"unit_price"`
	Currency  string       `json:"currency"`
}

// Domain errors. The transport maps them to status codes with errors.Is.
var (
	ErrNotFound            = errors.New("not found")
	ErrSlugTaken           = errors.New("the slug is already in use")
	ErrSKUTaken            = errors.New("the SKU is already in use")
	ErrUnknownCategory     = errors.New("no such category")
	ErrCategoryNotEmpty    = errors.New("the category has sub-categories or products; move or delete them first")
	ErrCategoryCycle       = errors.New("a category cannot be moved below itself or one of its sub-categories")
	ErrUnknownVariant      = errors.New("the product has no such variant")
	ErrStockLimit          = errors.New("stock cannot exceed 1000000000 units")
	ErrUnknownProduct      = errors.New("unknown or inactive product or variant")
	ErrOutOfStock          = errors.New("not enough stock")
	ErrReservationMismatch = errors.New("the order already has a reservation with other items")
	ErrReservationReleased = errors.New("the reservation was released or has expired")
)

// LineError is ErrOutOfStock or ErrUnknownProduct for one line (or one stock
// adjustment): which product and variant, how many were asked for and, when
// out of stock, how many are available.
type LineError struct {
	Err       error
	ProductID string
	VariantID *string
	Requested int
	Available int
}

func (e *LineError) Error() string {
	item := "product " + e.ProductID
	if e.VariantID != nil {
		item += " variant " + *e.VariantID
	}
	if errors.Is(e.Err, ErrOutOfStock) {
		return fmt.Sprintf("%v: %s has %d available, %d requested", e.Err, item, e.Available, e.Requested)
	}
	return fmt.Sprintf("%v: %s", e.Err, item)
}

func (e *LineError) Unwrap() error { return e.Err }

// ErrorDetails is what the error body shows of e: which line failed and,
// when out of stock, how much there is.
func (e *LineError) ErrorDetails() map[string]any {
	d := map[string]any{"product_id": e.ProductID, "variant_id": e.VariantID}
	if errors.Is(e.Err, ErrOutOfStock) {
		d["requested"] = e.Requested
		d["available"] = e.Available
	}
	return d
}

// Events: the payloads are events.ProductPayload, events.InventoryLowStockPayload
// and events.InventoryReleasedPayload.

// NewProductEvent builds product.created or product.updated for p.
func NewProductEvent(ctx context.Context, typ string, p Product) (events.Envelope, error) {
	return events.New(ctx, ServiceName, typ, events.ProductPayload{
		ProductID: p.ID, CategoryID: p.CategoryID, SKU: p.SKU, Name: p.Name, Slug: p.Slug,
		Price: p.Price, Currency: p.Currency, StockQuantity: p.StockQuantity, IsActive: p.IsActive,
	})
}

// LowStock reports whether a stock change from before to after crosses the
// threshold min: it fires once per fall, not on every sale below it.
func LowStock(before, after, min int) bool { return before > min && after <= min }

// NewLowStockEvent builds inventory.low_stock: a product's (or a variant's)
// available stock fell to or below the product's min_stock_quantity.
func NewLowStockEvent(ctx context.Context, e events.InventoryLowStockPayload) (events.Envelope, error) {
	return events.New(ctx, ServiceName, events.InventoryLowStock, e)
}

// NewInventoryReleasedEvent builds inventory.released; the order service
// cancels the pending order when reason is ReasonExpired.
func NewInventoryReleasedEvent(ctx context.Context, orderID, reason string) (events.Envelope, error) {
	return events.New(ctx, ServiceName, events.InventoryReleased, events.InventoryReleasedPayload{OrderID: orderID, Reason: reason})
}

// Repository stores the catalogue and the reservations. Writes publish their
// events (product.created/updated, inventory.low_stock, inventory.released)
// through the outbox in the same transaction. Lookups of missing rows return
// ErrNotFound; ids passed in are canonical UUIDs.
type Repository interface {
	Categories(ctx context.Context) ([]Category, error)
	// CreateCategory fails with ErrSlugTaken, or ErrUnknownCategory for a
	// missing parent.
	CreateCategory(ctx context.Context, c Category) (Category, error)
	// UpdateCategory also fails with ErrCategoryCycle.
	UpdateCategory(ctx context.Context, id string, p CategoryPatch) (Category, error)
	DeleteCategory(ctx context.Context, id string) error
	// CategoryTree returns the id of the category with this id or slug and
	// of all its descendants, or ErrUnknownCategory.
	CategoryTree(ctx context.Context, ref string) ([]string, error)

	// ProductByID and ProductBySlug return every variant, active or not.
	ProductByID(ctx context.Context, id string) (Product, error)
	ProductBySlug(ctx context.Context, slug string) (Product, error)
	// ListProducts returns one page and the total; only active products
	// unless f.Admin.
	ListProducts(ctx context.Context, f ProductFilter) ([]Product, int, error)
	// CreateProduct fails with ErrSlugTaken, ErrSKUTaken or
	// ErrUnknownCategory. Initial stock goes to the ledger.
	CreateProduct(ctx context.Context, p Product) (Product, error)
	UpdateProduct(ctx context.Context, id string, p ProductPatch) (Product, error)
	DeactivateProduct(ctx context.Context, id string) error
	CreateVariant(ctx context.Context, v Variant) (Variant, error)
	UpdateVariant(ctx context.Context, productID, variantID string, p VariantPatch) (Variant, error)
	// AdjustStock fails with ErrNotFound (product), ErrUnknownVariant,
	// ErrStockLimit, or ErrOutOfStock in a *LineError.
	AdjustStock(ctx context.Context, productID string, a StockAdjustment) error

	// Reserve stores a reservation of lines (merged, sorted by product and
	// variant) taking their stock, or nothing. When the order already has a
	// reservation it changes nothing and returns that one with created false.
	Reserve(ctx context.Context, orderID string, lines []ReservationLine, expiresAt time.Time) (Reservation, bool, error)
	// CommitReservation commits a reserved reservation; one found expired at
	// now is released as expired instead, and ErrReservationReleased returned.
	CommitReservation(ctx context.Context, orderID string, now time.Time) (Reservation, error)
	ReleaseReservation(ctx context.Context, orderID string) (Reservation, error)
	Reservation(ctx context.Context, orderID string) (Reservation, error)
	// ReleaseNextExpired releases one reservation still reserved at now
	// that no other transaction holds, reporting whether there was one.
	ReleaseNextExpired(ctx context.Context, now time.Time) (bool, error)

	// SeedCatalogue stores categories and products (with variants) in one
	// transaction under the name seed, unless a seed of that name was stored
	// before; it reports whether it stored them.
	SeedCatalogue(ctx context.Context, seed string, categories []Category, products []Product) (bool, error)
}

// Options tune the service. Zero values take the defaults.
type Options struct {
	// Now is the clock reservations expire by; time.Now by default.
	Now func() time.Time
	// SweepBatch bounds the reservations one ReleaseExpired call releases
	// (1000), so one call cannot run for ever behind a flood.
	SweepBatch int
}

type service struct {
	repo       Repository
	now        func() time.Time
	sweepBatch int
}

// NewService returns the service backed by repo.
func NewService(repo Repository, opts Options) Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepBatch <= 0 {
		opts.SweepBatch = 1000
	}
	return &service{repo: repo, now: opts.Now, sweepBatch: opts.SweepBatch}
}

func (s *service) ListCategories(ctx context.Context) ([]CategoryNode, error) {
	flat, err := s.repo.Categories(ctx)
	if err != nil {
		return nil, err
	}
	return categoryTree(flat), nil
}

// categoryTree arranges categories (sorted by name) under their parents.
func categoryTree(flat []Category) []CategoryNode {
	children := map[string][]Category{} // parent id ("" for roots) → children
	for _, c := range flat {
		parent := ""
		if c.ParentID != nil {
			parent = *c.ParentID
		}
		children[parent] = append(children[parent], c)
	}
	var build func(parent string) []CategoryNode
	build = func(parent string) []CategoryNode {
		nodes := make([]CategoryNode, 0, len(children[parent]))
		for _, c := range children[parent] {
			nodes = append(nodes, CategoryNode{Category: c, Children: build(c.ID)})
		}
		return nodes
	}
	return build("")
}

func (s *service) CreateCategory(ctx context.Context, in CategoryInput) (Category, error) {
	c := Category{
		ID:          uuid.NewString(),
		Name:        strings.TrimSpace(in.Name),
		Slug:        strings.TrimSpace(in.Slug),
		Description: strings.TrimSpace(in.Description),
	}
	if c.Slug == "" {
		c.Slug = Slugify(c.Name)
	}
	if in.ParentID != nil {
		id, ok := parseID(*in.ParentID)
		if !ok {
			return Category{}, ErrUnknownCategory
		}
		c.ParentID = &id
	}
	return s.repo.CreateCategory(ctx, c)
}

func (s *service) UpdateCategory(ctx context.Context, id string, p CategoryPatch) (Category, error) {
	id, ok := parseID(id)
	if !ok {
		return Category{}, ErrNotFound
	}
	trimOptional(&p.Name, &p.Slug, &p.Description)
	if p.ParentID.Value != nil {
		parent, ok := parseID(*p.ParentID.Value)
		if !ok {
			return Category{}, ErrUnknownCategory
		}
		if parent == id {
			return Category{}, ErrCategoryCycle
		}
		p.ParentID.Value = &parent
	}
	return s.repo.UpdateCategory(ctx, id, p)
}

func (s *service) DeleteCategory(ctx context.Context, id string) error {
	id, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	return s.repo.DeleteCategory(ctx, id)
}

func (s *service) ListProducts(ctx context.Context, q ProductQuery) (ProductPage, error) {
	if q.Page < 1 || q.PageSize < 1 {
		return ProductPage{}, fmt.Errorf("product: page %d, size %d: both must be positive", q.Page, q.PageSize)
	}
	if q.Sort == "" {
		q.Sort = SortNewest
		if q.Q != "" {
			q.Sort = SortRelevance
		}
	}
	f := ProductFilter{ProductQuery: q}
	if q.Category != "" {
		ids, err := s.repo.CategoryTree(ctx, q.Category)
		if err != nil {
			return ProductPage{}, err
		}
		f.CategoryIDs = ids
	}
	items, total, err := s.repo.ListProducts(ctx, f)
	if err != nil {
		return ProductPage{}, err
	}
	if !q.Admin {
		for i := range items {
			items[i] = publicView(items[i])
		}
	}
	return ProductPage{Items: items, Page: q.Page, PageSize: q.PageSize, Total: total}, nil
}

func (s *service) GetProduct(ctx context.Context, ref string, admin bool) (Product, error) {
	var (
		p   Product
		err error
	)
	if id, ok := parseID(ref); ok {
		p, err = s.repo.ProductByID(ctx, id)
	} else if ValidSlug(ref) {
		p, err = s.repo.ProductBySlug(ctx, ref)
	} else {
		return Product{}, ErrNotFound
	}
	if err != nil {
		return Product{}, err
	}
	if admin {
		return p, nil
	}
	if !p.IsActive {
		return Product{}, ErrNotFound
	}
	return publicView(p), nil
}

// publicView is what a customer may see of p: no cost price, no inactive
// variants.
func publicView(p Product) Product {
	p.CostPrice = nil
	active := make([]Variant, 0, len(p.Variants))
	for _, v := range p.Variants {
		if v.IsActive {
			active = append(active, v)
		}
	}
	p.Variants = active
	return p
}

func (s *service) CreateProduct(ctx context.Context, in ProductInput) (Product, error) {
	p := Product{
		ID:               uuid.NewString(),
		Name:             strings.TrimSpace(in.Name),
		Slug:             strings.TrimSpace(in.Slug),
		Description:      strings.TrimSpace(in.Description),
		ShortDescription: strings.TrimSpace(in.ShortDescription),
		SKU:              strings.TrimSpace(in.SKU),
		Price:            in.Price,
		ComparePrice:     in.ComparePrice,
		CostPrice:        in.CostPrice,
		Currency:         Currency,
		StockQuantity:    in.StockQuantity,
		MinStockQuantity: in.MinStockQuantity,
		Weight:           in.Weight,
		Dimensions:       in.Dimensions,
		Images:           in.Images,
		IsActive:         in.IsActive,
		IsFeatured:       in.IsFeatured,
	}
	if p.Slug == "" {
		p.Slug = Slugify(p.Name)
	}
	p.Dimensions = withUnit(p.Dimensions)
	if p.Images == nil {
		p.Images = []string{}
	}
	if in.CategoryID != nil {
		id, ok := parseID(*in.CategoryID)
		if !ok {
			return Product{}, ErrUnknownCategory
		}
		p.CategoryID = &id
	}
	return s.repo.CreateProduct(ctx, p)
}

func (s *service) UpdateProduct(ctx context.Context, id string, p ProductPatch) (Product, error) {
	id, ok := parseID(id)
	if !ok {
		return Product{}, ErrNotFound
	}
	trimOptional(&p.Name, &p.Slug, &p.Description, &p.ShortDescription, &p.SKU)
	p.Dimensions.Value = withUnit(p.Dimensions.Value)
	if p.CategoryID.Value != nil {
		cat, ok := parseID(*p.CategoryID.Value)
		if !ok {
			return Product{}, ErrUnknownCategory
		}
		p.CategoryID.Value = &cat
	}
	return s.repo.UpdateProduct(ctx, id, p)
}

func (s *service) DeactivateProduct(ctx context.Context, id string) error {
	id, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	return s.repo.DeactivateProduct(ctx, id)
}

func (s *service) CreateVariant(ctx context.Context, productID string, in VariantInput) (Variant, error) {
	productID, ok := parseID(productID)
	if !ok {
		return Variant{}, ErrNotFound
	}
	v := Variant{
		ID:            uuid.NewString(),
		ProductID:     productID,
		SKU:           strings.TrimSpace(in.SKU),
		Name:          strings.TrimSpace(in.Name),
		Price:         in.Price,
		Currency:      Currency,
		StockQuantity: in.StockQuantity,
		Attributes:    in.Attributes,
		IsActive:      in.IsActive,
	}
	if v.Attributes == nil {
		v.Attributes = map[string]string{}
	}
	return s.repo.CreateVariant(ctx, v)
}

func (s *service) UpdateVariant(ctx context.Context, productID, variantID string, p VariantPatch) (Variant, error) {
	productID, ok1 := parseID(productID)
	variantID, ok2 := parseID(variantID)
	if !ok1 || !ok2 {
		return Variant{}, ErrNotFound
	}
	trimOptional(&p.SKU, &p.Name)
	return s.repo.UpdateVariant(ctx, productID, variantID, p)
}

func (s *service) AdjustStock(ctx context.Context, productID string, a StockAdjustment) (Product, error) {
	productID, ok := parseID(productID)
	if !ok {
		return Product{}, ErrNotFound
	}
	if a.VariantID != "" {
		v, ok := parseID(a.VariantID)
		if !ok {
			return Product{}, ErrUnknownVariant
		}
		a.VariantID = v
	}
	a.Reason = strings.TrimSpace(a.Reason)
	if err := s.repo.AdjustStock(ctx, productID, a); err != nil {
		return Product{}, err
	}
	return s.repo.ProductByID(ctx, productID)
}

func (s *service) Reserve(ctx context.Context, r ReservationRequest) (Reservation, bool, error) {
	orderID, ok := parseID(r.OrderID)
	if !ok {
		return Reservation{}, false, fmt.Errorf("product: order id %q is not a UUID", r.OrderID)
	}
	lines, err := MergeLines(r.Items)
	if err != nil {
		return Reservation{}, false, err
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = DefaultReservationTTL
	}
	if ttl < MinReservationTTL || ttl > MaxReservationTTL {
		return Reservation{}, false, fmt.Errorf("product: reservation ttl %s outside %s..%s", ttl, MinReservationTTL, MaxReservationTTL)
	}
	res, created, err := s.repo.Reserve(ctx, orderID, lines, s.now().Add(ttl).UTC().Truncate(time.Microsecond))
	if err != nil {
		return Reservation{}, false, err
	}
	if !created && !sameLines(res.Items, lines) {
		return Reservation{}, false, ErrReservationMismatch
	}
	return res, created, nil
}

// MergeLines returns lines with the ids in canonical form, lines of the same
// product and variant merged into one, sorted by product then variant (no
// variant first): the order stock is locked in, and the order reservation
// items are compared and shown in. An id that is no UUID names no product:
// ErrUnknownProduct.
func MergeLines(lines []ReservationLine) ([]ReservationLine, error) {
	type key struct{ product, variant string }
	merged := map[key]int{}
	for _, l := range lines {
		if l.Quantity <= 0 {
			return nil, fmt.Errorf("product: quantity %d of product %s must be positive", l.Quantity, l.ProductID)
		}
		p, ok := parseID(l.ProductID)
		if !ok {
			return nil, &LineError{Err: ErrUnknownProduct, ProductID: l.ProductID, VariantID: l.VariantID, Requested: l.Quantity}
		}
		k := key{product: p}
		if l.VariantID != nil {
			v, ok := parseID(*l.VariantID)
			if !ok {
				return nil, &LineError{Err: ErrUnknownProduct, ProductID: p, VariantID: l.VariantID, Requested: l.Quantity}
			}
			k.variant = v
		}
		merged[k] += l.Quantity
	}
	out := make([]ReservationLine, 0, len(merged))
	for k, q := range merged {
		l := ReservationLine{ProductID: k.product, Quantity: q}
		if k.variant != "" {
			v := k.variant
			l.VariantID = &v
		}
		out = append(out, l)
	}
	slices.SortFunc(out, compareLines)
	return out, nil
}

func compareLines(a, b ReservationLine) int {
	if c := strings.Compare(a.ProductID, b.ProductID); c != 0 {
		return c
	}
	return strings.Compare(deref(a.VariantID), deref(b.VariantID))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sameLines reports whether a reservation's items are exactly lines (both
// merged and sorted).
func sameLines(items []ReservedItem, lines []ReservationLine) bool {
	if len(items) != len(lines) {
		return false
	}
	for i, it := range items {
		l := lines[i]
		if it.ProductID != l.ProductID || deref(it.VariantID) != deref(l.VariantID) || it.Quantity != l.Quantity {
			return false
		}
	}
	return true
}

func (s *service) CommitReservation(ctx context.Context, orderID string) (Reservation, error) {
	orderID, ok := parseID(orderID)
	if !ok {
		return Reservation{}, ErrNotFound
	}
	return s.repo.CommitReservation(ctx, orderID, s.now())
}

func (s *service) ReleaseReservation(ctx context.Context, orderID string) (Reservation, error) {
	orderID, ok := parseID(orderID)
	if !ok {
		return Reservation{}, ErrNotFound
	}
	return s.repo.ReleaseReservation(ctx, orderID)
}

func (s *service) GetReservation(ctx context.Context, orderID string) (Reservation, error) {
	orderID, ok := parseID(orderID)
	if !ok {
		return Reservation{}, ErrNotFound
	}
	return s.repo.Reservation(ctx, orderID)
}

func (s *service) ReleaseExpired(ctx context.Context) (int, error) {
	now := s.now()
	for n := 0; n < s.sweepBatch; n++ {
		found, err := s.repo.ReleaseNextExpired(ctx, now)
		if err != nil || !found {
			return n, err
		}
	}
	return s.sweepBatch, nil
}

// Sweeper releases expired reservations every Interval. Every instance runs
// one: ReleaseExpired is safe with several at once, and the work goes on
// when an instance dies. Failures are logged by the logging middleware and
// retried at the next tick.
type Sweeper struct {
	Service  Service       // required: with its middlewares, so sweeps are logged
	Interval time.Duration // required: the time between sweeps
}

// Run sweeps until ctx is done, then returns nil. It returns an error only
// when Service or a positive Interval is missing.
func (s *Sweeper) Run(ctx context.Context) error {
	if s.Service == nil || s.Interval <= 0 {
		return errors.New("product: sweeper needs Service and a positive Interval")
	}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		_, _ = s.Service.ReleaseExpired(ctx)
	}
}

// demoSeed names the demo catalogue's load in the repository.
const demoSeed = "demo-catalogue-v1"

func (s *service) SeedDemo(ctx context.Context) (bool, error) {
	categories, products := DemoCatalogue()
	return s.repo.SeedCatalogue(ctx, demoSeed, categories, products)
}

// Slugify derives a slug from a name: lower-case ASCII letters and digits,
// with single dashes for everything else. It returns "" for a name without
// any, which validation then rejects.
func Slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	s := b.String()
	if len(s) > maxSlugLen {
		s = strings.TrimRight(s[:maxSlugLen], "-")
	}
	return s
}

const maxSlugLen = 255

// ValidSlug reports whether s is a slug as Slugify makes them: lower-case
// letters and digits in dash-separated words.
func ValidSlug(s string) bool {
	if s == "" || len(s) > maxSlugLen || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// withUnit returns d with the default unit, centimetres, when it has none.
func withUnit(d *Dimensions) *Dimensions {
	if d == nil || d.Unit != "" {
		return d
	}
	c := *d
	c.Unit = "cm"
	return &c
}

func trimOptional(fields ...*validate.Optional[string]) {
	for _, f := range fields {
		if f.Value != nil {
			v := strings.TrimSpace(*f.Value)
			f.Value = &v
		}
	}
}

// parseID returns id in canonical form, or false when it is no UUID: such an
// id names no row, and passing it on would only make PostgreSQL reject the
// query with an error that is not "not found".
func parseID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "", false
	}
	return u.String(), true
}
