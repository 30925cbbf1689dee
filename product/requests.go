package product

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/validate"
)

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
	validate.IfPresent(p, "name", c.Name, false, checkName)
	validate.IfPresent(p, "slug", c.Slug, false, checkPatchSlug)
	validate.IfPresent(p, "description", c.Description, true, checkText)
	validate.IfPresent(p, "parent_id", c.ParentID, true, validate.Problems.UUID)
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
		if searchNegations(r.Q) > maxSearchNegations {
			p["q"] = "must not hold more than " + strconv.Itoa(maxSearchNegations) + " exclusions ('-') in a row"
		}
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
	Weight           *Weight                         `json:"weight,omitempty"`
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
		checkSalePrice(p, "price", *r.Price.Value)
	}
	validate.IfPresent(p, "compare_price", r.ComparePrice, true, checkPrice)
	validate.IfPresent(p, "cost_price", r.CostPrice, true, checkPrice)
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
	validate.IfPresent(p, "category_id", u.CategoryID, true, validate.Problems.UUID)
	validate.IfPresent(p, "name", u.Name, false, checkName)
	validate.IfPresent(p, "slug", u.Slug, false, checkPatchSlug)
	validate.IfPresent(p, "description", u.Description, true, checkText)
	validate.IfPresent(p, "short_description", u.ShortDescription, true, checkText)
	validate.IfPresent(p, "sku", u.SKU, false, checkSKU)
	validate.IfPresent(p, "price", u.Price, false, checkSalePrice)
	validate.IfPresent(p, "compare_price", u.ComparePrice, true, checkPrice)
	validate.IfPresent(p, "cost_price", u.CostPrice, true, checkPrice)
	validate.IfPresent(p, "min_stock_quantity", u.MinStockQuantity, false, checkQuantity)
	validate.IfPresent(p, "weight", u.Weight, true, checkWeight)
	validate.IfPresent(p, "dimensions", u.Dimensions, true, checkDimensions)
	validate.IfPresent(p, "images", u.Images, true, checkImages)
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
		checkSalePrice(p, "price", *r.Price.Value)
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
	validate.IfPresent(p, "sku", u.SKU, false, checkSKU)
	validate.IfPresent(p, "name", u.Name, false, checkName)
	validate.IfPresent(p, "price", u.Price, false, checkSalePrice)
	validate.IfPresent(p, "attributes", u.Attributes, false, checkAttributes)
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
		p.Line("items["+strconv.Itoa(i)+"]", l.ProductID, l.VariantID, l.Quantity, maxLineQuantity)
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

// Validation: the product service's own checks, on top of validate.Problems.

// maxSearchNegations is the longest run of exclusions ('-') a search may
// hold. websearch_to_tsquery keeps the operators waiting for their operands
// on a stack of 32, an OR and an AND besides the NOTs at most: a longer run
// fails the query with an internal error of PostgreSQL's (XX000), which
// would be a 500.
const maxSearchNegations = 30

// searchNegations is the longest run of '-' in q that websearch_to_tsquery
// reads as NOTs waiting for one operand: dashes outside words, with nothing
// between them that starts a word. It may count more than PostgreSQL does
// (dashes inside quotes, around characters it takes for a word, such as an
// emoji), never fewer: only letters, digits and ASCII punctuation that is
// no operator of the search syntax start a word here, and a dash inside a
// word ("t-shirt") is part of it.
func searchNegations(q string) int {
	most, run, inWord := 0, 0, false
	for _, c := range q {
		switch {
		case c == '-':
			if !inWord {
				run++
				most = max(most, run)
			}
		case unicode.IsLetter(c) || unicode.IsDigit(c) || (c > ' ' && c <= '~' && !strings.ContainsRune(`!&|()<"`, c)):
			inWord, run = true, 0
		default: // a space, an operator, a quote, or anything else
			inWord = false
		}
	}
	return most
}

// checkName, checkText and checkPatchSlug are the PATCH checks of a name, a
// description and a slug (never derived), for validate.IfPresent.
func checkName(p validate.Problems, field, v string)      { p.Text(field, v, maxNameLen, true) }
func checkText(p validate.Problems, field, v string)      { p.Text(field, v, maxTextLen, false) }
func checkPatchSlug(p validate.Problems, field, v string) { checkSlug(p, field, v, "", false) }

// checkSlug checks a slug. An empty one is derived from name (when derive;
// name's own check reports a missing name), so what it derives must pass.
func checkSlug(p validate.Problems, field, v, name string, derive bool) {
	v = strings.TrimSpace(v)
	if v == "" && derive {
		if strings.TrimSpace(name) == "" {
			return
		}
		switch v = Slugify(name); {
		case v == "":
			p[field] = "is required when the name has no latin letters or digits"
		case uuid.Validate(v) == nil:
			p[field] = "is required when the name looks like an id" // see below
		}
		return
	}
	switch {
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

// checkSalePrice checks the price a product or variant is sold at: above
// 0.00 too, as every order is paid by card and no card is charged nothing.
// A price of 0.00 used to be stored and then every checkout of it failed,
// blaming the card.
func checkSalePrice(p validate.Problems, field string, v money.Amount) {
	if v == 0 {
		p[field] = "must be greater than 0.00: every order is paid by card"
		return
	}
	checkPrice(p, field, v)
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

func checkWeight(p validate.Problems, field string, v Weight) {
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
