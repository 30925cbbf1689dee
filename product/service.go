// Package product is the product service of Mercato: the catalogue
// (categories, products, variants), its listing with filters and full-text
// search, admin writes with a stock ledger, and the inventory reservations
// the order service takes stock with. The go-kit layers sit in their own
// files: service.go (this file: the interfaces, domain types and errors, the
// constructor), catalogue.go and inventory.go (their implementation, the
// latter with the Sweeper), events.go, demo.go; endpoints.go, requests.go,
// responses.go, transport_http.go, client.go; middleware.go and cache.go
// (the read cache, itself a middleware). The PostgreSQL repository lives in
// package product/postgres.
package product

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/paging"
	"github.com/mercato-dev/mercato/shared/validate"
)

// ServiceName is the name the service registers in Consul under and puts in
// the source of its events.
const ServiceName = "product"

// Currency is the one currency the catalogue prices in.
const Currency = "USD"

// Service is what the product service serves: the catalogue on the public
// /api/v1 routes and the inventory on the /internal ones the order service
// calls. Endpoints implements it, on the server and as a client.
type Service interface {
	Catalogue
	Inventory
}

// Catalogue is the product catalogue: categories, products, variants and
// their stock. Reads take admin explicitly: the admin view includes inactive
// products and variants and cost prices, the public one never does. The
// transport sets it from the verified token only.
type Catalogue interface {
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
}

// Inventory is the stock the order service takes for its orders.
type Inventory interface {
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
}

// Housekeeping is what an instance does of itself rather than on request:
// no route serves it, so it is no part of Service (nor of Endpoints).
type Housekeeping interface {
	// ReleaseExpired releases reservations still reserved after their
	// expiry and reports how many. Safe to run in several instances at once.
	ReleaseExpired(ctx context.Context) (int, error)
	// SeedDemo loads the demo catalogue unless it was loaded before (by this
	// or another instance), reporting whether it did.
	SeedDemo(ctx context.Context) (bool, error)
	// CountLowStock counts what is sold low on stock now (see
	// Repository.CountLowStock), for the low-stock gauge.
	CountLowStock(ctx context.Context) (int, error)
}

// Backend is the service as one process runs it, as payment's Backend is:
// what it serves and its housekeeping. NewService builds it and the middlewares decorate all of it,
// so a sweep is logged, measured and invalidates the cache like any write;
// main hands the Service part to MakeServerEndpoints and the Housekeeping
// part to the Sweeper and the demo seed.
type Backend interface {
	Service
	Housekeeping
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

// Weight is a product's weight in kg, a decimal with up to two places kept
// as written. In JSON it is a number (API.md, docs/openapi.yaml) and only
// that: encoding/json fills a json.Number from a string that holds one too,
// so as a json.Number a quoted weight ("12") was taken where a quoted
// stock_quantity is refused.
type Weight json.Number

func (w Weight) String() string { return string(w) }

// MarshalJSON writes w as the number it is.
func (w Weight) MarshalJSON() ([]byte, error) { return json.Marshal(json.Number(w)) }

// UnmarshalJSON takes a JSON number as written. Anything else, a string
// holding a number included, is a value of the wrong type, reported as
// encoding/json reports one for any number field.
func (w *Weight) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		return &json.UnmarshalTypeError{Value: "string", Type: reflect.TypeFor[json.Number]()}
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*w = Weight(n)
	return nil
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
	Weight     *Weight     `json:"weight"`
	Dimensions *Dimensions `json:"dimensions"`
	Images     []string    `json:"images"`
	IsActive   bool        `json:"is_active"`
	IsFeatured bool        `json:"is_featured"`
	Variants   []Variant   `json:"variants"`
	CreatedAt  time.Time   `json:"created_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
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
	Weight           *Weight
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
	Weight           validate.Optional[Weight]       `json:"weight,omitzero"`
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
type ProductPage = paging.Page[Product]

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
	// reservation it returns that one with created false, changing nothing
	// unless it is still reserved but expired: then it is released as
	// expired first, as CommitReservation does. A new reservation expires
	// ttl from now by the database's clock, which every expiry is judged by
	// (the instances' clocks may disagree).
	Reserve(ctx context.Context, orderID string, lines []ReservationLine, ttl time.Duration) (Reservation, bool, error)
	// CommitReservation commits a reserved reservation; one found expired is
	// released as expired instead, and ErrReservationReleased returned.
	CommitReservation(ctx context.Context, orderID string) (Reservation, error)
	ReleaseReservation(ctx context.Context, orderID string) (Reservation, error)
	Reservation(ctx context.Context, orderID string) (Reservation, error)
	// ReleaseNextExpired releases one expired reservation still reserved
	// that no other transaction holds and whose order is not in skip. It
	// returns that order's id ("" when there was none), with the error when
	// the release failed.
	ReleaseNextExpired(ctx context.Context, skip []string) (string, error)
	// CountLowStock counts the active products without active variants
	// whose stock is at or below their min_stock_quantity, and the active
	// variants of active products whose stock is at or below their
	// product's: the threshold LowStock applies. A product with variants is
	// sold through them, so its own stock (usually none) is not counted.
	CountLowStock(ctx context.Context) (int, error)

	// SeedCatalogue stores categories and products (with variants) in one
	// transaction under the name seed, unless a seed of that name was stored
	// before; it reports whether it stored them.
	SeedCatalogue(ctx context.Context, seed string, categories []Category, products []Product) (bool, error)
}

// Options tune the service. Zero values take the defaults.
type Options struct {
	// SweepBatch bounds the reservations one ReleaseExpired call releases
	// (1000), so one call cannot run for ever behind a flood.
	SweepBatch int
}

type service struct {
	repo       Repository
	sweepBatch int
}

// NewService returns the service backed by repo.
func NewService(repo Repository, opts Options) Backend {
	if opts.SweepBatch <= 0 {
		opts.SweepBatch = 1000
	}
	return &service{repo: repo, sweepBatch: opts.SweepBatch}
}

func trimOptional(fields ...*validate.Optional[string]) {
	for _, f := range fields {
		if f.Value != nil {
			v := strings.TrimSpace(*f.Value)
			f.Value = &v
		}
	}
}
