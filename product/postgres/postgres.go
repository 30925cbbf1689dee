// Package postgres is the PostgreSQL repository of the product service, with
// the schema migrations it owns embedded.
//
// Locking: a transaction that changes stock locks the product rows it needs
// first, in id order (FOR NO KEY UPDATE), and only then variant rows, in id
// order; transactions on a reservation lock its row before either. Every
// stock-changing path follows that order, so concurrent reservations,
// releases, the sweeper and admin adjustments queue behind each other but
// never deadlock. NO KEY UPDATE, not UPDATE: it leaves the key-share locks
// that foreign key checks take (a reservation item or ledger row pointing at
// the product) free.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/validate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schemaTable records the product service's migrations, apart from the
// events package's own table in the same database.
const schemaTable = "product_schema_version"

// Migrate brings the database to the current schema: the catalogue and
// inventory tables and the events outbox/inbox.
func Migrate(ctx context.Context, db *sqlx.DB) error {
	return events.MigrateService(ctx, db, migrationFiles, schemaTable)
}

// Repository implements product.Repository on PostgreSQL.
type Repository struct {
	db *sqlx.DB
}

var _ product.Repository = (*Repository)(nil)

// New returns a repository on db, whose schema Migrate has brought up to date.
func New(db *sqlx.DB) *Repository { return &Repository{db: db} }

// notFound maps the one error that means "no such row"; every other error is
// a failure and stays one.
func notFound(err error, missing error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return missing
	}
	return err
}

// constraintError maps the constraint violations a write can meet to
// domain errors.
func constraintError(err error) error {
	switch {
	case err == nil:
		return nil
	case sharedpg.IsUniqueViolation(err, "categories_slug_key"), sharedpg.IsUniqueViolation(err, "products_slug_key"):
		return product.ErrSlugTaken
	case sharedpg.IsUniqueViolation(err, "products_sku_key"), sharedpg.IsUniqueViolation(err, "product_variants_sku_key"):
		return product.ErrSKUTaken
	case sharedpg.IsForeignKeyViolation(err, "categories_parent_id_fkey"), sharedpg.IsForeignKeyViolation(err, "products_category_id_fkey"):
		return product.ErrUnknownCategory
	case sharedpg.IsCheckViolation(err, "categories_not_own_parent"):
		return product.ErrCategoryCycle
	case sharedpg.IsCheckViolation(err, "products_stock_quantity_max"), sharedpg.IsCheckViolation(err, "product_variants_stock_quantity_max"):
		return product.ErrStockLimit
	}
	return err
}

// nullable stores "" as NULL, the seed's "none".
func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullableOpt(o validate.Optional[string]) sql.NullString {
	if o.Value == nil {
		return sql.NullString{}
	}
	return nullable(*o.Value)
}

// jsonb marshals v for a JSONB column; nil stays NULL. A string, because
// lib/pq would send []byte as bytea.
func jsonb(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return string(b), nil
}

// setter builds the SET list of a partial update. Column names come from
// this package's code only; values are always parameters ($1 is the row id).
type setter struct {
	cols []string
	args []any
	err  error
}

func newSetter(ids ...any) *setter { return &setter{args: ids} }

func (s *setter) set(col string, v any) {
	s.args = append(s.args, v)
	s.cols = append(s.cols, fmt.Sprintf("%s = $%d", col, len(s.args)))
}

func (s *setter) setJSON(col string, v any) {
	j, err := jsonb(v)
	if err != nil {
		s.err = err
		return
	}
	s.set(col, j)
}

func (s *setter) clause() string {
	return strings.Join(append(s.cols, "updated_at = now()"), ", ")
}

// Categories.

type categoryRow struct {
	ID          string         `db:"id"`
	Name        string         `db:"name"`
	Slug        string         `db:"slug"`
	Description sql.NullString `db:"description"`
	ParentID    sql.NullString `db:"parent_id"`
	CreatedAt   time.Time      `db:"created_at"`
	UpdatedAt   time.Time      `db:"updated_at"`
}

const categoryColumns = `id, name, slug, description, parent_id, created_at, updated_at`

func (r categoryRow) category() product.Category {
	c := product.Category{ID: r.ID, Name: r.Name, Slug: r.Slug, Description: r.Description.String,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.ParentID.Valid {
		c.ParentID = &r.ParentID.String
	}
	return c
}

func (r *Repository) Categories(ctx context.Context) ([]product.Category, error) {
	var rows []categoryRow
	if err := r.db.SelectContext(ctx, &rows, `SELECT `+categoryColumns+` FROM categories ORDER BY name, id`); err != nil {
		return nil, fmt.Errorf("list categories: %w", err)
	}
	out := make([]product.Category, len(rows))
	for i, row := range rows {
		out[i] = row.category()
	}
	return out, nil
}

const insertCategory = `
	INSERT INTO categories (id, name, slug, description, parent_id)
	VALUES ($1, $2, $3, $4, $5)
	RETURNING ` + categoryColumns

func (r *Repository) CreateCategory(ctx context.Context, c product.Category) (product.Category, error) {
	var row categoryRow
	err := r.db.GetContext(ctx, &row, insertCategory, c.ID, c.Name, c.Slug, nullable(c.Description), c.ParentID)
	if err != nil {
		return product.Category{}, constraintError(err)
	}
	return row.category(), nil
}

// categoryTreeLock serialises the transactions that move categories, so two
// concurrent moves cannot together build a cycle that each alone would not.
const categoryTreeLock = 7_465_309_201

func (r *Repository) UpdateCategory(ctx context.Context, id string, p product.CategoryPatch) (product.Category, error) {
	var row categoryRow
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		s := newSetter(id)
		if p.Name.Value != nil {
			s.set("name", *p.Name.Value)
		}
		if p.Slug.Value != nil {
			s.set("slug", *p.Slug.Value)
		}
		if p.Description.Set {
			s.set("description", nullableOpt(p.Description))
		}
		if p.ParentID.Set {
			s.set("parent_id", p.ParentID.Value)
			if p.ParentID.Value != nil {
				if err := checkNoCycle(ctx, tx, id, *p.ParentID.Value); err != nil {
					return err
				}
			}
		}
		err := tx.GetContext(ctx, &row, `UPDATE categories SET `+s.clause()+` WHERE id = $1 RETURNING `+categoryColumns, s.args...)
		return notFound(constraintError(err), product.ErrNotFound)
	})
	if err != nil {
		return product.Category{}, err
	}
	return row.category(), nil
}

// checkNoCycle fails with ErrCategoryCycle when parent is id or below it.
func checkNoCycle(ctx context.Context, tx *sqlx.Tx, id, parent string) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, categoryTreeLock); err != nil {
		return fmt.Errorf("lock category tree: %w", err)
	}
	var cycle bool
	err := tx.GetContext(ctx, &cycle, `
		WITH RECURSIVE ancestors AS (
			SELECT id, parent_id FROM categories WHERE id = $2
			UNION ALL
			SELECT c.id, c.parent_id FROM categories c JOIN ancestors a ON c.id = a.parent_id
		)
		SELECT EXISTS (SELECT 1 FROM ancestors WHERE id = $1)`, id, parent)
	if err != nil {
		return fmt.Errorf("check category cycle: %w", err)
	}
	if cycle {
		return product.ErrCategoryCycle
	}
	return nil
}

func (r *Repository) DeleteCategory(ctx context.Context, id string) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM categories WHERE id = $1`, id)
	if sharedpg.IsForeignKeyViolation(err) {
		// RESTRICT: a product or a sub-category still points here.
		return product.ErrCategoryNotEmpty
	}
	if err != nil {
		return fmt.Errorf("delete category: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return product.ErrNotFound
	}
	return nil
}

func (r *Repository) CategoryTree(ctx context.Context, ref string) ([]string, error) {
	root := `slug = $1`
	if len(ref) == 36 && uuid.Validate(ref) == nil {
		root = `id = $1::uuid`
	}
	var ids []string
	err := r.db.SelectContext(ctx, &ids, `
		WITH RECURSIVE tree AS (
			SELECT id FROM categories WHERE `+root+`
			UNION ALL
			SELECT c.id FROM categories c JOIN tree t ON c.parent_id = t.id
		)
		SELECT id FROM tree`, ref)
	if err != nil {
		return nil, fmt.Errorf("category tree: %w", err)
	}
	if len(ids) == 0 {
		return nil, product.ErrUnknownCategory
	}
	return ids, nil
}

// Products.

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
		w := json.Number(r.Weight.String)
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
		return product.Product{}, notFound(err, product.ErrNotFound)
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
// (is_active, is_featured, the in-stock condition) appear verbatim.
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

// listSQL returns the count query and the page query of a product list,
// which share args.
func listSQL(f product.ProductFilter) (count, page string, args []any) {
	where, args, order := listQuery(f)
	n := len(args)
	args = append(args, f.PageSize, (f.Page-1)*f.PageSize)
	count = `SELECT count(*) FROM products p WHERE ` + where
	page = fmt.Sprintf(`SELECT %s FROM products p WHERE %s ORDER BY %s LIMIT $%d OFFSET $%d`,
		listColumns, where, order, n+1, n+2)
	return count, page, args
}

func (r *Repository) ListProducts(ctx context.Context, f product.ProductFilter) ([]product.Product, int, error) {
	count, page, args := listSQL(f)
	var total int
	if err := r.db.GetContext(ctx, &total, count, args[:len(args)-2]...); err != nil {
		return nil, 0, fmt.Errorf("count products: %w", err)
	}
	if total == 0 {
		return []product.Product{}, 0, nil
	}
	var rows []productRow
	if err := r.db.SelectContext(ctx, &rows, page, args...); err != nil {
		return nil, 0, fmt.Errorf("list products: %w", err)
	}
	items := make([]product.Product, len(rows))
	ids := make([]string, len(rows))
	for i, row := range rows {
		p, err := row.product()
		if err != nil {
			return nil, 0, err
		}
		items[i], ids[i] = p, p.ID
	}
	if len(ids) > 0 {
		variants, err := variantsOf(ctx, r.db, ids)
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
		p.ID, p.CategoryID, p.Name, p.Slug, nullable(p.Description), nullable(p.ShortDescription), p.SKU, p.Price,
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

// movement writes one row of the stock ledger.
func movement(ctx context.Context, tx *sqlx.Tx, productID string, variantID *string, delta int, reason, reference string) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO stock_movements (product_id, variant_id, delta, reason, reference)
		VALUES ($1, $2, $3, $4, $5)`, productID, variantID, delta, reason, reference)
	if err != nil {
		return fmt.Errorf("stock ledger: %w", err)
	}
	return nil
}

// refreshVariantStock recomputes products.variant_stock, the sum the
// in-stock filter reads, from the active variants' stock. Called in every
// transaction that changes a variant's stock or activity, after the change.
func refreshVariantStock(ctx context.Context, tx *sqlx.Tx, productIDs []string) error {
	_, err := tx.ExecContext(ctx, `
		UPDATE products p SET variant_stock = coalesce((
			SELECT sum(v.stock_quantity) FROM product_variants v WHERE v.product_id = p.id AND v.is_active), 0)
		WHERE p.id = ANY($1::uuid[])`, pq.Array(productIDs))
	if err != nil {
		return fmt.Errorf("refresh variant stock: %w", err)
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
		if p.Price.Value != nil {
			s.set("price", *p.Price.Value)
		}
		for col, f := range map[string]validate.Optional[money.Amount]{"compare_price": p.ComparePrice, "cost_price": p.CostPrice} {
			if f.Set {
				s.set(col, f.Value)
			}
		}
		if p.MinStockQuantity.Value != nil {
			s.set("min_stock_quantity", *p.MinStockQuantity.Value)
		}
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
		if p.IsActive.Value != nil {
			s.set("is_active", *p.IsActive.Value)
		}
		if p.IsFeatured.Value != nil {
			s.set("is_featured", *p.IsFeatured.Value)
		}
		if s.err != nil {
			return s.err
		}
		res, err := tx.ExecContext(ctx, `UPDATE products SET `+s.clause()+` WHERE id = $1`, s.args...)
		if err != nil {
			return constraintError(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return product.ErrNotFound
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
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return product.ErrNotFound
		}
		var p product.Product
		return r.updated(ctx, tx, id, &p)
	})
}

// lockedProduct is the part of a product row a stock change needs, read
// under its row lock.
type lockedProduct struct {
	ID               string       `db:"id"`
	Name             string       `db:"name"`
	SKU              string       `db:"sku"`
	Price            money.Amount `db:"price"`
	Currency         string       `db:"currency"`
	StockQuantity    int          `db:"stock_quantity"`
	MinStockQuantity int          `db:"min_stock_quantity"`
	IsActive         bool         `db:"is_active"`
}

// lockProducts locks the products (in id order, the repository's lock
// order) and returns them by id; missing ones are absent.
func lockProducts(ctx context.Context, tx *sqlx.Tx, ids []string) (map[string]lockedProduct, error) {
	var rows []lockedProduct
	if err := tx.SelectContext(ctx, &rows, `
		SELECT id, name, sku, price, currency, stock_quantity, min_stock_quantity, is_active
		FROM products WHERE id = ANY($1::uuid[])
		ORDER BY id
		FOR NO KEY UPDATE`, pq.Array(ids)); err != nil {
		return nil, fmt.Errorf("lock products: %w", err)
	}
	out := make(map[string]lockedProduct, len(rows))
	for _, row := range rows {
		out[row.ID] = row
	}
	return out, nil
}

type lockedVariant struct {
	ID            string       `db:"id"`
	ProductID     string       `db:"product_id"`
	Name          string       `db:"name"`
	SKU           string       `db:"sku"`
	Price         money.Amount `db:"price"`
	StockQuantity int          `db:"stock_quantity"`
	IsActive      bool         `db:"is_active"`
}

// lockVariants locks the variants (in id order, after their products) and
// returns them by id; missing ones are absent.
func lockVariants(ctx context.Context, tx *sqlx.Tx, ids []string) (map[string]lockedVariant, error) {
	var rows []lockedVariant
	if err := tx.SelectContext(ctx, &rows, `
		SELECT id, product_id, name, sku, price, stock_quantity, is_active
		FROM product_variants WHERE id = ANY($1::uuid[])
		ORDER BY id
		FOR NO KEY UPDATE`, pq.Array(ids)); err != nil {
		return nil, fmt.Errorf("lock variants: %w", err)
	}
	out := make(map[string]lockedVariant, len(rows))
	for _, row := range rows {
		out[row.ID] = row
	}
	return out, nil
}

func (r *Repository) CreateVariant(ctx context.Context, v product.Variant) (product.Variant, error) {
	var out product.Variant
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		products, err := lockProducts(ctx, tx, []string{v.ProductID})
		if err != nil {
			return err
		}
		if _, ok := products[v.ProductID]; !ok {
			return product.ErrNotFound
		}
		if err := insertVariant(ctx, tx, v); err != nil {
			return err
		}
		if err := refreshVariantStock(ctx, tx, []string{v.ProductID}); err != nil {
			return err
		}
		var p product.Product
		if err := r.updated(ctx, tx, v.ProductID, &p); err != nil {
			return err
		}
		out, err = findVariant(p, v.ID)
		return err
	})
	return out, err
}

func findVariant(p product.Product, id string) (product.Variant, error) {
	for _, v := range p.Variants {
		if v.ID == id {
			return v, nil
		}
	}
	return product.Variant{}, product.ErrNotFound
}

func (r *Repository) UpdateVariant(ctx context.Context, productID, variantID string, p product.VariantPatch) (product.Variant, error) {
	var out product.Variant
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		products, err := lockProducts(ctx, tx, []string{productID})
		if err != nil {
			return err
		}
		if _, ok := products[productID]; !ok {
			return product.ErrNotFound
		}
		s := newSetter(variantID, productID)
		if p.SKU.Value != nil {
			s.set("sku", *p.SKU.Value)
		}
		if p.Name.Value != nil {
			s.set("name", *p.Name.Value)
		}
		if p.Price.Value != nil {
			s.set("price", *p.Price.Value)
		}
		if p.Attributes.Value != nil {
			s.setJSON("attributes", *p.Attributes.Value)
		}
		if p.IsActive.Value != nil {
			s.set("is_active", *p.IsActive.Value)
		}
		if s.err != nil {
			return s.err
		}
		res, err := tx.ExecContext(ctx, `UPDATE product_variants SET `+s.clause()+` WHERE id = $1 AND product_id = $2`, s.args...)
		if err != nil {
			return constraintError(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return product.ErrNotFound
		}
		if err := refreshVariantStock(ctx, tx, []string{productID}); err != nil {
			return err
		}
		var prod product.Product
		if err := r.updated(ctx, tx, productID, &prod); err != nil {
			return err
		}
		out, err = findVariant(prod, variantID)
		return err
	})
	return out, err
}

func (r *Repository) AdjustStock(ctx context.Context, productID string, a product.StockAdjustment) error {
	return sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		products, err := lockProducts(ctx, tx, []string{productID})
		if err != nil {
			return err
		}
		prod, ok := products[productID]
		if !ok {
			return product.ErrNotFound
		}
		table, id, before, sku := "products", productID, prod.StockQuantity, prod.SKU
		var variantID *string
		if a.VariantID != "" {
			variants, err := lockVariants(ctx, tx, []string{a.VariantID})
			if err != nil {
				return err
			}
			v, ok := variants[a.VariantID]
			if !ok || v.ProductID != productID {
				return product.ErrUnknownVariant
			}
			table, id, before, sku, variantID = "product_variants", v.ID, v.StockQuantity, v.SKU, &v.ID
		}
		var after int
		err = tx.GetContext(ctx, &after, `
			UPDATE `+table+` SET stock_quantity = stock_quantity + $2, updated_at = now()
			WHERE id = $1 AND stock_quantity + $2 >= 0
			RETURNING stock_quantity`, id, a.Delta)
		if errors.Is(err, sql.ErrNoRows) {
			return &product.LineError{Err: product.ErrOutOfStock, ProductID: productID, VariantID: variantID,
				Requested: -a.Delta, Available: before}
		}
		if err != nil {
			return constraintError(err)
		}
		if err := movement(ctx, tx, productID, variantID, a.Delta, "adjust", a.Reason); err != nil {
			return err
		}
		if variantID != nil {
			if err := refreshVariantStock(ctx, tx, []string{productID}); err != nil {
				return err
			}
		}
		if product.LowStock(before, after, prod.MinStockQuantity) {
			if err := enqueueLowStock(ctx, tx, productID, variantID, sku, after, prod.MinStockQuantity); err != nil {
				return err
			}
		}
		var p product.Product
		return r.updated(ctx, tx, productID, &p)
	})
}

func enqueueLowStock(ctx context.Context, tx *sqlx.Tx, productID string, variantID *string, sku string, stock, min int) error {
	evt, err := product.NewLowStockEvent(ctx, events.InventoryLowStockPayload{ProductID: productID, VariantID: variantID,
		SKU: sku, StockQuantity: stock, MinStockQuantity: min})
	if err != nil {
		return err
	}
	return events.Enqueue(ctx, tx, evt)
}

// Reservations.

type reservationRow struct {
	OrderID       string         `db:"order_id"`
	Status        string         `db:"status"`
	ReleaseReason sql.NullString `db:"release_reason"`
	ExpiresAt     time.Time      `db:"expires_at"`
}

type itemRow struct {
	ProductID string         `db:"product_id"`
	VariantID sql.NullString `db:"variant_id"`
	Quantity  int            `db:"quantity"`
	SKU       string         `db:"sku"`
	Name      string         `db:"name"`
	UnitPrice money.Amount   `db:"unit_price"`
	Currency  string         `db:"currency"`
}

func (i itemRow) item() product.ReservedItem {
	out := product.ReservedItem{ProductID: i.ProductID, Quantity: i.Quantity, SKU: i.SKU, Name: i.Name,
		UnitPrice: i.UnitPrice, Currency: i.Currency}
	if i.VariantID.Valid {
		out.VariantID = &i.VariantID.String
	}
	return out
}

// reservation reads a reservation with its items, in the order MergeLines
// sorts lines (uuid order is the order of their canonical text).
func reservation(ctx context.Context, q sqlx.QueryerContext, orderID string, lock bool) (product.Reservation, error) {
	query := `SELECT order_id, status, release_reason, expires_at FROM inventory_reservations WHERE order_id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	var row reservationRow
	if err := sqlx.GetContext(ctx, q, &row, query, orderID); err != nil {
		return product.Reservation{}, notFound(err, product.ErrNotFound)
	}
	var items []itemRow
	if err := sqlx.SelectContext(ctx, q, &items, `
		SELECT product_id, variant_id, quantity, sku, name, unit_price, currency
		FROM reservation_items WHERE order_id = $1
		ORDER BY product_id, variant_id NULLS FIRST`, orderID); err != nil {
		return product.Reservation{}, fmt.Errorf("reservation items: %w", err)
	}
	res := product.Reservation{OrderID: row.OrderID, Status: row.Status, ReleaseReason: row.ReleaseReason.String,
		ExpiresAt: row.ExpiresAt.UTC(), Items: make([]product.ReservedItem, len(items))}
	for i, it := range items {
		res.Items[i] = it.item()
	}
	return res, nil
}

func (r *Repository) Reservation(ctx context.Context, orderID string) (product.Reservation, error) {
	return reservation(ctx, r.db, orderID, false)
}

func (r *Repository) Reserve(ctx context.Context, orderID string, lines []product.ReservationLine, expiresAt time.Time) (product.Reservation, bool, error) {
	var (
		res     product.Reservation
		created bool
	)
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// The header first: a concurrent reserve of the same order waits
		// here for this transaction and then finds the reservation, instead
		// of taking the stock a second time.
		ins, err := tx.ExecContext(ctx, `
			INSERT INTO inventory_reservations (order_id, status, expires_at) VALUES ($1, 'reserved', $2)
			ON CONFLICT (order_id) DO NOTHING`, orderID, expiresAt)
		if err != nil {
			return fmt.Errorf("insert reservation: %w", err)
		}
		if n, err := ins.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			res, err = reservation(ctx, tx, orderID, false)
			return err
		}
		res, err = takeStock(ctx, tx, orderID, lines)
		if err != nil {
			return err
		}
		res.Status, res.ExpiresAt, created = product.StatusReserved, expiresAt, true
		return nil
	})
	if err != nil {
		return product.Reservation{}, false, err
	}
	return res, created, nil
}

// takeStock takes every line's quantity from stock for the order, writing
// the reservation items and ledger rows, or fails with a *LineError (and the
// caller's transaction rolls back everything).
func takeStock(ctx context.Context, tx *sqlx.Tx, orderID string, lines []product.ReservationLine) (product.Reservation, error) {
	var productIDs, variantIDs []string
	for _, l := range lines {
		productIDs = append(productIDs, l.ProductID)
		if l.VariantID != nil {
			variantIDs = append(variantIDs, *l.VariantID)
		}
	}
	products, err := lockProducts(ctx, tx, productIDs)
	if err != nil {
		return product.Reservation{}, err
	}
	variants, err := lockVariants(ctx, tx, variantIDs)
	if err != nil {
		return product.Reservation{}, err
	}
	// Every line names something sellable before any stock moves.
	for _, l := range lines {
		p, ok := products[l.ProductID]
		unknown := !ok || !p.IsActive
		if l.VariantID != nil {
			v, ok := variants[*l.VariantID]
			unknown = unknown || !ok || !v.IsActive || v.ProductID != l.ProductID
		}
		if unknown {
			return product.Reservation{}, &product.LineError{Err: product.ErrUnknownProduct,
				ProductID: l.ProductID, VariantID: l.VariantID, Requested: l.Quantity}
		}
	}

	res := product.Reservation{OrderID: orderID, Items: make([]product.ReservedItem, len(lines))}
	var withVariants []string
	for i, l := range lines {
		p := products[l.ProductID]
		item := product.ReservedItem{ProductID: l.ProductID, Quantity: l.Quantity, SKU: p.SKU, Name: p.Name,
			UnitPrice: p.Price, Currency: p.Currency}
		table, id, before := "products", l.ProductID, p.StockQuantity
		if l.VariantID != nil {
			v := variants[*l.VariantID]
			item.VariantID, item.SKU, item.Name, item.UnitPrice = l.VariantID, v.SKU, v.Name, v.Price
			table, id, before = "product_variants", v.ID, v.StockQuantity
			withVariants = append(withVariants, l.ProductID)
		}
		// The row is locked, so before is current; the condition is what
		// makes overselling impossible whatever else the code does.
		upd, err := tx.ExecContext(ctx, `
			UPDATE `+table+` SET stock_quantity = stock_quantity - $2, updated_at = now()
			WHERE id = $1 AND stock_quantity >= $2`, id, l.Quantity)
		if err != nil {
			return product.Reservation{}, fmt.Errorf("take stock: %w", err)
		}
		if n, err := upd.RowsAffected(); err != nil {
			return product.Reservation{}, err
		} else if n == 0 {
			return product.Reservation{}, &product.LineError{Err: product.ErrOutOfStock,
				ProductID: l.ProductID, VariantID: l.VariantID, Requested: l.Quantity, Available: before}
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO reservation_items (order_id, product_id, variant_id, quantity, sku, name, unit_price, currency)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			orderID, item.ProductID, item.VariantID, item.Quantity, item.SKU, item.Name, item.UnitPrice, item.Currency); err != nil {
			return product.Reservation{}, fmt.Errorf("insert reservation item: %w", err)
		}
		if err := movement(ctx, tx, l.ProductID, l.VariantID, -l.Quantity, "reserve", orderID); err != nil {
			return product.Reservation{}, err
		}
		if after := before - l.Quantity; product.LowStock(before, after, p.MinStockQuantity) {
			if err := enqueueLowStock(ctx, tx, l.ProductID, l.VariantID, item.SKU, after, p.MinStockQuantity); err != nil {
				return product.Reservation{}, err
			}
		}
		res.Items[i] = item
	}
	if len(withVariants) > 0 {
		if err := refreshVariantStock(ctx, tx, slices.Compact(withVariants)); err != nil {
			return product.Reservation{}, err
		}
	}
	return res, nil
}

func (r *Repository) CommitReservation(ctx context.Context, orderID string, now time.Time) (product.Reservation, error) {
	var (
		res     product.Reservation
		expired bool
	)
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		var err error
		res, err = reservation(ctx, tx, orderID, true)
		if err != nil {
			return err
		}
		switch {
		case res.Status == product.StatusCommitted:
			return nil
		case res.Status == product.StatusReleased:
			return product.ErrReservationReleased
		case !res.ExpiresAt.After(now):
			// Too late: the stock is no longer promised to this order. It is
			// released here, as the sweeper would, so the answer does not
			// depend on whether the sweeper got there first.
			expired = true
			res, err = giveBack(ctx, tx, res, product.ReasonExpired)
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE inventory_reservations SET status = 'committed', updated_at = now() WHERE order_id = $1`, orderID); err != nil {
			return fmt.Errorf("commit reservation: %w", err)
		}
		// Committing moves no available stock (the units left it when they
		// were reserved); the ledger records the sale with a zero delta.
		for _, it := range res.Items {
			if err := movement(ctx, tx, it.ProductID, it.VariantID, 0, "commit", orderID); err != nil {
				return err
			}
		}
		res.Status = product.StatusCommitted
		return nil
	})
	if err != nil {
		return product.Reservation{}, err
	}
	if expired {
		return res, product.ErrReservationReleased
	}
	return res, nil
}

func (r *Repository) ReleaseReservation(ctx context.Context, orderID string) (product.Reservation, error) {
	var res product.Reservation
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		var err error
		res, err = reservation(ctx, tx, orderID, true)
		if err != nil || res.Status == product.StatusReleased {
			return err
		}
		res, err = giveBack(ctx, tx, res, product.ReasonReleased)
		return err
	})
	if err != nil {
		return product.Reservation{}, err
	}
	return res, nil
}

func (r *Repository) ReleaseNextExpired(ctx context.Context, now time.Time) (bool, error) {
	var found bool
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// SKIP LOCKED: another instance's sweeper (or a commit or release)
		// holding a reservation is left to it, not waited for.
		var orderID string
		err := tx.GetContext(ctx, &orderID, `
			SELECT order_id FROM inventory_reservations
			WHERE status = 'reserved' AND expires_at <= $1
			ORDER BY expires_at
			LIMIT 1
			FOR UPDATE SKIP LOCKED`, now)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find expired reservation: %w", err)
		}
		res, err := reservation(ctx, tx, orderID, false) // locked just now
		if err != nil {
			return err
		}
		found = true
		_, err = giveBack(ctx, tx, res, product.ReasonExpired)
		return err
	})
	return found, err
}

// giveBack returns a reserved or committed reservation's units to stock,
// with ledger rows ("release" or "expire"), marks it released for reason and
// enqueues inventory.released. The reservation row is locked by the caller.
func giveBack(ctx context.Context, tx *sqlx.Tx, res product.Reservation, reason string) (product.Reservation, error) {
	ledgerReason := "release"
	if reason == product.ReasonExpired {
		ledgerReason = "expire"
	}
	var productIDs, variantIDs, withVariants []string
	for _, it := range res.Items {
		productIDs = append(productIDs, it.ProductID)
		if it.VariantID != nil {
			variantIDs = append(variantIDs, *it.VariantID)
			withVariants = append(withVariants, it.ProductID)
		}
	}
	if _, err := lockProducts(ctx, tx, productIDs); err != nil {
		return product.Reservation{}, err
	}
	if _, err := lockVariants(ctx, tx, variantIDs); err != nil {
		return product.Reservation{}, err
	}
	for _, it := range res.Items {
		table, id := "products", it.ProductID
		if it.VariantID != nil {
			table, id = "product_variants", *it.VariantID
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE `+table+` SET stock_quantity = stock_quantity + $2, updated_at = now() WHERE id = $1`,
			id, it.Quantity); err != nil {
			return product.Reservation{}, fmt.Errorf("give stock back: %w", constraintError(err))
		}
		if err := movement(ctx, tx, it.ProductID, it.VariantID, it.Quantity, ledgerReason, res.OrderID); err != nil {
			return product.Reservation{}, err
		}
	}
	if len(withVariants) > 0 {
		if err := refreshVariantStock(ctx, tx, slices.Compact(withVariants)); err != nil {
			return product.Reservation{}, err
		}
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE inventory_reservations SET status = 'released', release_reason = $2, updated_at = now()
		WHERE order_id = $1`, res.OrderID, reason); err != nil {
		return product.Reservation{}, fmt.Errorf("release reservation: %w", err)
	}
	evt, err := product.NewInventoryReleasedEvent(ctx, res.OrderID, reason)
	if err != nil {
		return product.Reservation{}, err
	}
	if err := events.Enqueue(ctx, tx, evt); err != nil {
		return product.Reservation{}, err
	}
	res.Status, res.ReleaseReason = product.StatusReleased, reason
	return res, nil
}

// Seeds.

func (r *Repository) SeedCatalogue(ctx context.Context, seed string, categories []product.Category, products []product.Product) (bool, error) {
	var seeded bool
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// The marker row is the arbiter between instances starting together:
		// the second waits on the first's uncommitted insert, then finds it.
		res, err := tx.ExecContext(ctx, `INSERT INTO data_seeds (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, seed)
		if err != nil {
			return fmt.Errorf("seed marker: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		for _, c := range categories { // parents come first
			if _, err := tx.ExecContext(ctx, insertCategory, c.ID, c.Name, c.Slug, nullable(c.Description), c.ParentID); err != nil {
				return fmt.Errorf("seed category %s: %w", c.Slug, constraintError(err))
			}
		}
		for _, p := range products {
			if _, err := r.insertProduct(ctx, tx, p); err != nil {
				return fmt.Errorf("seed product %s: %w", p.Slug, err)
			}
		}
		seeded = true
		return nil
	})
	return seeded, err
}
