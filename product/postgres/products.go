package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/validate"
)

type productRow struct {
	ID               string                 `db:"id"`
	CategoryID       sql.NullString         `db:"category_id"`
	Name             string                 `db:"name"`
	Slug             string                 `db:"slug"`
	Description      sql.NullString         `db:"description"`
	ShortDescription sql.NullString         `db:"short_description"`
	SKU              string                 `db:"sku"`
	Price            money.Amount           `db:"price"`
	ComparePrice     sql.Null[money.Amount] `db:"compare_price"`
	CostPrice        sql.Null[money.Amount] `db:"cost_price"`
	Currency         string                 `db:"currency"`
	StockQuantity    int                    `db:"stock_quantity"`
	MinStockQuantity int                    `db:"min_stock_quantity"`
	Weight           sql.NullString         `db:"weight"`
	Dimensions       []byte                 `db:"dimensions"`
	Images           []byte                 `db:"images"`
	IsActive         bool                   `db:"is_active"`
	IsFeatured       bool                   `db:"is_featured"`
	CreatedAt        time.Time              `db:"created_at"`
	UpdatedAt        time.Time              `db:"updated_at"`
}

var productColumnList = []string{"id", "category_id", "name", "slug", "description", "short_description", "sku",
	"price", "compare_price", "cost_price", "currency", "stock_quantity", "min_stock_quantity", "weight",
	"dimensions", "images", "is_active", "is_featured", "created_at", "updated_at"}

var (
	productColumns = strings.Join(productColumnList, ", ")
	// listColumns are productColumns of the alias p the list query uses.
	listColumns = "p." + strings.Join(productColumnList, ", p.")
)

func (r productRow) product() (product.Product, error) {
	p := product.Product{
		ID: r.ID, Name: r.Name, Slug: r.Slug, Description: r.Description.String,
		ShortDescription: r.ShortDescription.String, SKU: r.SKU, Price: r.Price,
		Currency: r.Currency, StockQuantity: r.StockQuantity, MinStockQuantity: r.MinStockQuantity,
		IsActive: r.IsActive, IsFeatured: r.IsFeatured, Variants: []product.Variant{},
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.CategoryID.Valid {
		p.CategoryID = &r.CategoryID.String
	}
	if r.ComparePrice.Valid {
		p.ComparePrice = &r.ComparePrice.V
	}
	if r.CostPrice.Valid {
		p.CostPrice = &r.CostPrice.V
	}
	if r.Weight.Valid {
		w := product.Weight(r.Weight.String)
		p.Weight = &w
	}
	if r.Dimensions != nil {
		p.Dimensions = new(product.Dimensions)
		if err := json.Unmarshal(r.Dimensions, p.Dimensions); err != nil {
			return product.Product{}, fmt.Errorf("product %s dimensions: %w", r.ID, err)
		}
	}
	if err := json.Unmarshal(r.Images, &p.Images); err != nil {
		return product.Product{}, fmt.Errorf("product %s images: %w", r.ID, err)
	}
	return p, nil
}

type variantRow struct {
	ID            string       `db:"id"`
	ProductID     string       `db:"product_id"`
	SKU           string       `db:"sku"`
	Name          string       `db:"name"`
	Price         money.Amount `db:"price"`
	StockQuantity int          `db:"stock_quantity"`
	Attributes    []byte       `db:"attributes"`
	IsActive      bool         `db:"is_active"`
	CreatedAt     time.Time    `db:"created_at"`
	UpdatedAt     time.Time    `db:"updated_at"`
}

const variantColumns = `id, product_id, sku, name, price, stock_quantity, attributes, is_active, created_at, updated_at`

func (r variantRow) variant() (product.Variant, error) {
	v := product.Variant{ID: r.ID, ProductID: r.ProductID, SKU: r.SKU, Name: r.Name, Price: r.Price,
		Currency: product.Currency, StockQuantity: r.StockQuantity, IsActive: r.IsActive,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if err := json.Unmarshal(r.Attributes, &v.Attributes); err != nil {
		return product.Variant{}, fmt.Errorf("variant %s attributes: %w", r.ID, err)
	}
	return v, nil
}

func (r *Repository) ProductByID(ctx context.Context, id string) (product.Product, error) {
	return r.productWhere(ctx, r.db, `id = $1`, id)
}

func (r *Repository) ProductBySlug(ctx context.Context, slug string) (product.Product, error) {
	return r.productWhere(ctx, r.db, `slug = $1`, slug)
}

// productWhere reads the one product matching cond, with its variants.
func (r *Repository) productWhere(ctx context.Context, q sqlx.QueryerContext, cond string, arg any) (product.Product, error) {
	var row productRow
	if err := sqlx.GetContext(ctx, q, &row, `SELECT `+productColumns+` FROM products WHERE `+cond, arg); err != nil {
		return product.Product{}, sharedpg.NotFound(err, product.ErrNotFound)
	}
	p, err := row.product()
	if err != nil {
		return product.Product{}, err
	}
	variants, err := variantsOf(ctx, q, []string{p.ID})
	if err != nil {
		return product.Product{}, err
	}
	p.Variants = variants[p.ID]
	if p.Variants == nil {
		p.Variants = []product.Variant{}
	}
	return p, nil
}

// variantsOf returns the variants of the products, by product id, oldest first.
func variantsOf(ctx context.Context, q sqlx.QueryerContext, productIDs []string) (map[string][]product.Variant, error) {
	var rows []variantRow
	if err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT `+variantColumns+` FROM product_variants
		WHERE product_id = ANY($1::uuid[])
		ORDER BY product_id, created_at, id`, pq.Array(productIDs)); err != nil {
		return nil, fmt.Errorf("variants: %w", err)
	}
	out := make(map[string][]product.Variant, len(productIDs))
	for _, row := range rows {
		v, err := row.variant()
		if err != nil {
			return nil, err
		}
		out[v.ProductID] = append(out[v.ProductID], v)
	}
	return out, nil
}

// listQuery builds the WHERE clause, its arguments and the ORDER BY of a
// product list. Each filter is written the way its index (00001_catalogue.sql)
// is defined, so the planner can match it: the partial indexes' predicates
// (is_active, is_featured, the in-stock condition) appear verbatim. An
// admin's list has no is_active: its default sort and its category filter
// have indexes of every product (00002_admin_listing.sql).
func listQuery(f product.ProductFilter) (where string, args []any, order string) {
	var conds []string
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.Admin {
		conds = append(conds, "p.is_active")
	}
	if f.CategoryIDs != nil {
		conds = append(conds, "p.category_id = ANY("+arg(pq.Array(f.CategoryIDs))+"::uuid[])")
	}
	var tsquery string
	if f.Q != "" {
		tsquery = "websearch_to_tsquery('english', " + arg(f.Q) + ")"
		conds = append(conds, "p.search_vector @@ "+tsquery)
	}
	if f.MinPrice != nil {
		conds = append(conds, "p.price >= "+arg(*f.MinPrice))
	}
	if f.MaxPrice != nil {
		conds = append(conds, "p.price <= "+arg(*f.MaxPrice))
	}
	if f.InStock {
		conds = append(conds, "(p.stock_quantity > 0 OR p.variant_stock > 0)")
	}
	if f.Featured {
		conds = append(conds, "p.is_featured")
	}
	where = "TRUE"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	switch f.Sort {
	case product.SortPrice:
		order = "p.price, p.id"
	case product.SortPriceDesc:
		order = "p.price DESC, p.id DESC"
	case product.SortName:
		order = "p.name, p.id"
	case product.SortRelevance:
		if tsquery != "" {
			order = "ts_rank(p.search_vector, " + tsquery + ") DESC, p.id"
			break
		}
		fallthrough
	default:
		order = "p.created_at DESC, p.id DESC"
	}
	return where, args, order
}

// ExactTotalLimit is the largest list total counted exactly. Counting every
// match was most of a cold listing (6.5 of 7 ms on a 10,000-product
// department), so the count stops at ExactTotalLimit+1 rows; a larger total
// is the planner's estimate of the matching rows (EXPLAIN), never below
// ExactTotalLimit+1 nor below the rows the page itself proves exist.
const ExactTotalLimit = 1000

// listSQL returns the bounded count query, the estimate query and the page
// query of a product list, which share args (the page query's two last).
func listSQL(f product.ProductFilter) (count, estimate, page string, args []any) {
	where, args, order := listQuery(f)
	n := len(args)
	args = append(args, f.PageSize, (f.Page-1)*f.PageSize)
	// Ordered like an index, so the planner walks it and stops after the
	// limit: unordered, it picks a sequential scan, expecting matches to be
	// spread evenly, and the catalogue is clustered by category.
	countOrder := order
	switch {
	case f.CategoryIDs != nil:
		countOrder = "p.category_id, p.price, p.id" // products_category_price_idx
	case f.Sort == product.SortRelevance && f.Q != "":
		countOrder = "p.id" // ranking every match would cost more than counting it
	}
	count = fmt.Sprintf(`SELECT count(*) FROM (SELECT FROM products p WHERE %s ORDER BY %s LIMIT %d) matches`,
		where, countOrder, ExactTotalLimit+1)
	estimate = `EXPLAIN (FORMAT JSON) SELECT FROM products p WHERE ` + where
	page = fmt.Sprintf(`SELECT %s FROM products p WHERE %s ORDER BY %s LIMIT $%d OFFSET $%d`,
		listColumns, where, order, n+1, n+2)
	return count, estimate, page, args
}

// listTotal counts the matches of a product list exactly up to
// ExactTotalLimit and estimates a larger total (see ExactTotalLimit).
func listTotal(ctx context.Context, q sqlx.QueryerContext, count, estimate string, args []any) (int, error) {
	var total int
	if err := sqlx.GetContext(ctx, q, &total, count, args...); err != nil {
		return 0, fmt.Errorf("count products: %w", err)
	}
	if total <= ExactTotalLimit {
		return total, nil
	}
	var plan string
	if err := sqlx.GetContext(ctx, q, &plan, estimate, args...); err != nil {
		return 0, fmt.Errorf("estimate products: %w", err)
	}
	var explained []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		}
	}
	if err := json.Unmarshal([]byte(plan), &explained); err != nil || len(explained) != 1 {
		return 0, fmt.Errorf("estimate products: unreadable plan %q: %v", plan, err)
	}
	return max(total, int(explained[0].Plan.Rows)), nil
}

// ListProducts reads the total, the page and its variants in one snapshot
// (sharedpg.InSnapshot), so a write committed between them cannot give a
// page that contradicts its total.
func (r *Repository) ListProducts(ctx context.Context, f product.ProductFilter) ([]product.Product, int, error) {
	var (
		items []product.Product
		total int
	)
	err := sharedpg.InSnapshot(ctx, r.db, func(tx *sqlx.Tx) error {
		var err error
		items, total, err = listProducts(ctx, tx, f)
		return err
	})
	return items, total, err
}

func listProducts(ctx context.Context, tx *sqlx.Tx, f product.ProductFilter) ([]product.Product, int, error) {
	count, estimate, page, args := listSQL(f)
	total, err := listTotal(ctx, tx, count, estimate, args[:len(args)-2])
	if err != nil {
		return nil, 0, err
	}
	if total == 0 {
		return []product.Product{}, 0, nil
	}
	var rows []productRow
	if err := sqlx.SelectContext(ctx, tx, &rows, page, args...); err != nil {
		return nil, 0, fmt.Errorf("list products: %w", err)
	}
	items, err := sharedpg.TryConvert(rows, productRow.product)
	if err != nil {
		return nil, 0, err
	}
	if len(items) > 0 { // an estimate never denies a page that exists
		total = max(total, (f.Page-1)*f.PageSize+len(items))
	}
	ids := make([]string, len(items))
	for i, p := range items {
		ids[i] = p.ID
	}
	if len(ids) > 0 {
		variants, err := variantsOf(ctx, tx, ids)
		if err != nil {
			return nil, 0, err
		}
		for i := range items {
			if vs := variants[items[i].ID]; vs != nil {
				items[i].Variants = vs
			}
		}
	}
	return items, total, nil
}

func (r *Repository) CreateProduct(ctx context.Context, p product.Product) (product.Product, error) {
	var out product.Product
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		var err error
		out, err = r.insertProduct(ctx, tx, p)
		return err
	})
	return out, err
}

// insertProduct stores p with its variants and their initial stock (ledger
// rows "initial") and enqueues product.created.
func (r *Repository) insertProduct(ctx context.Context, tx *sqlx.Tx, p product.Product) (product.Product, error) {
	dims, err := jsonb(p.Dimensions)
	if err != nil {
		return product.Product{}, err
	}
	images, err := jsonb(p.Images)
	if err != nil {
		return product.Product{}, err
	}
	var weight sql.NullString
	if p.Weight != nil {
		weight = sql.NullString{String: p.Weight.String(), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO products (id, category_id, name, slug, description, short_description, sku, price,
			compare_price, cost_price, currency, stock_quantity, min_stock_quantity, weight, dimensions,
			images, is_active, is_featured)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		p.ID, p.CategoryID, p.Name, p.Slug, sharedpg.NullString(p.Description), sharedpg.NullString(p.ShortDescription), p.SKU, p.Price,
		p.ComparePrice, p.CostPrice, p.Currency, p.StockQuantity, p.MinStockQuantity, weight, dims,
		images, p.IsActive, p.IsFeatured)
	if err != nil {
		return product.Product{}, constraintError(err)
	}
	if p.StockQuantity > 0 {
		if err := movement(ctx, tx, p.ID, nil, p.StockQuantity, "initial", "created"); err != nil {
			return product.Product{}, err
		}
	}
	for _, v := range p.Variants {
		if err := insertVariant(ctx, tx, v); err != nil {
			return product.Product{}, err
		}
	}
	if len(p.Variants) > 0 {
		if err := refreshVariantStock(ctx, tx, []string{p.ID}); err != nil {
			return product.Product{}, err
		}
	}
	created, err := r.productWhere(ctx, tx, `id = $1`, p.ID)
	if err != nil {
		return product.Product{}, err
	}
	if err := enqueueProductEvent(ctx, tx, events.ProductCreated, created); err != nil {
		return product.Product{}, err
	}
	return created, nil
}

func enqueueProductEvent(ctx context.Context, tx *sqlx.Tx, typ string, p product.Product) error {
	evt, err := product.NewProductEvent(ctx, typ, p)
	if err != nil {
		return err
	}
	return events.Enqueue(ctx, tx, evt)
}

func insertVariant(ctx context.Context, tx *sqlx.Tx, v product.Variant) error {
	attrs, err := jsonb(v.Attributes)
	if err != nil {
		return err
	}
	if attrs == nil {
		attrs = "{}"
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO product_variants (id, product_id, sku, name, price, stock_quantity, attributes, is_active)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		v.ID, v.ProductID, v.SKU, v.Name, v.Price, v.StockQuantity, attrs, v.IsActive)
	if err != nil {
		return constraintError(err)
	}
	if v.StockQuantity > 0 {
		return movement(ctx, tx, v.ProductID, &v.ID, v.StockQuantity, "initial", "created")
	}
	return nil
}

func (r *Repository) UpdateProduct(ctx context.Context, id string, p product.ProductPatch) (product.Product, error) {
	var out product.Product
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		s := newSetter(id)
		if p.CategoryID.Set {
			s.set("category_id", p.CategoryID.Value)
		}
		for col, f := range map[string]validate.Optional[string]{"name": p.Name, "slug": p.Slug, "sku": p.SKU} {
			if f.Value != nil {
				s.set(col, *f.Value)
			}
		}
		for col, f := range map[string]validate.Optional[string]{"description": p.Description, "short_description": p.ShortDescription} {
			if f.Set {
				s.set(col, nullableOpt(f))
			}
		}
		setOptional(s, "price", p.Price)
		for col, f := range map[string]validate.Optional[money.Amount]{"compare_price": p.ComparePrice, "cost_price": p.CostPrice} {
			if f.Set {
				s.set(col, f.Value)
			}
		}
		setOptional(s, "min_stock_quantity", p.MinStockQuantity)
		if p.Weight.Set {
			var w sql.NullString
			if p.Weight.Value != nil {
				w = sql.NullString{String: p.Weight.Value.String(), Valid: true}
			}
			s.set("weight", w)
		}
		if p.Dimensions.Set {
			s.setJSON("dimensions", p.Dimensions.Value)
		}
		if p.Images.Set {
			images := []string{}
			if p.Images.Value != nil {
				images = *p.Images.Value
			}
			s.setJSON("images", images)
		}
		setOptional(s, "is_active", p.IsActive)
		setOptional(s, "is_featured", p.IsFeatured)
		if s.err != nil {
			return s.err
		}
		res, err := tx.ExecContext(ctx, `UPDATE products SET `+s.clause()+` WHERE id = $1`, s.args...)
		if err != nil {
			return constraintError(err)
		}
		if err := sharedpg.Affected(res, product.ErrNotFound); err != nil {
			return err
		}
		return r.updated(ctx, tx, id, &out)
	})
	return out, err
}

// updated reads the product back into out and enqueues product.updated.
func (r *Repository) updated(ctx context.Context, tx *sqlx.Tx, id string, out *product.Product) error {
	p, err := r.productWhere(ctx, tx, `id = $1`, id)
	if err != nil {
		return err
	}
	*out = p
	return enqueueProductEvent(ctx, tx, events.ProductUpdated, p)
}

func (r *Repository) DeactivateProduct(ctx context.Context, id string) error {
	return sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE products SET is_active = FALSE, updated_at = now() WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("deactivate product: %w", err)
		}
		if err := sharedpg.Affected(res, product.ErrNotFound); err != nil {
			return err
		}
		var p product.Product
		return r.updated(ctx, tx, id, &p)
	})
}
