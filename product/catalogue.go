package product

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/validate"
)

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
	parent, err := parseCategoryRef(in.ParentID)
	if err != nil {
		return Category{}, err
	}
	c.ParentID = parent
	return s.repo.CreateCategory(ctx, c)
}

func (s *service) UpdateCategory(ctx context.Context, id string, p CategoryPatch) (Category, error) {
	id, ok := validate.ParseUUID(id)
	if !ok {
		return Category{}, ErrNotFound
	}
	trimOptional(&p.Name, &p.Slug, &p.Description)
	parent, err := parseCategoryRef(p.ParentID.Value)
	if err != nil {
		return Category{}, err
	}
	if parent != nil && *parent == id {
		return Category{}, ErrCategoryCycle
	}
	p.ParentID.Value = parent
	return s.repo.UpdateCategory(ctx, id, p)
}

// parseCategoryRef canonicalises an optional reference to a category (a
// category's parent, a product's category): nil stays nil, and an id that is
// no UUID names no category, so it is ErrUnknownCategory.
func parseCategoryRef(ref *string) (*string, error) {
	if ref == nil {
		return nil, nil
	}
	id, ok := validate.ParseUUID(*ref)
	if !ok {
		return nil, ErrUnknownCategory
	}
	return &id, nil
}

func (s *service) DeleteCategory(ctx context.Context, id string) error {
	id, ok := validate.ParseUUID(id)
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
	if id, ok := validate.ParseUUID(ref); ok {
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
	cat, err := parseCategoryRef(in.CategoryID)
	if err != nil {
		return Product{}, err
	}
	p.CategoryID = cat
	return s.repo.CreateProduct(ctx, p)
}

func (s *service) UpdateProduct(ctx context.Context, id string, p ProductPatch) (Product, error) {
	id, ok := validate.ParseUUID(id)
	if !ok {
		return Product{}, ErrNotFound
	}
	trimOptional(&p.Name, &p.Slug, &p.Description, &p.ShortDescription, &p.SKU)
	p.Dimensions.Value = withUnit(p.Dimensions.Value)
	cat, err := parseCategoryRef(p.CategoryID.Value)
	if err != nil {
		return Product{}, err
	}
	p.CategoryID.Value = cat
	return s.repo.UpdateProduct(ctx, id, p)
}

func (s *service) DeactivateProduct(ctx context.Context, id string) error {
	id, ok := validate.ParseUUID(id)
	if !ok {
		return ErrNotFound
	}
	return s.repo.DeactivateProduct(ctx, id)
}

func (s *service) CreateVariant(ctx context.Context, productID string, in VariantInput) (Variant, error) {
	productID, ok := validate.ParseUUID(productID)
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
	productID, ok1 := validate.ParseUUID(productID)
	variantID, ok2 := validate.ParseUUID(variantID)
	if !ok1 || !ok2 {
		return Variant{}, ErrNotFound
	}
	trimOptional(&p.SKU, &p.Name)
	return s.repo.UpdateVariant(ctx, productID, variantID, p)
}

func (s *service) AdjustStock(ctx context.Context, productID string, a StockAdjustment) (Product, error) {
	productID, ok := validate.ParseUUID(productID)
	if !ok {
		return Product{}, ErrNotFound
	}
	if a.VariantID != "" {
		v, ok := validate.ParseUUID(a.VariantID)
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
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
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
