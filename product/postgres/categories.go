package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/product"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

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
	return sharedpg.Convert(rows, categoryRow.category), nil
}

const insertCategory = `
	INSERT INTO categories (id, name, slug, description, parent_id)
	VALUES ($1, $2, $3, $4, $5)
	RETURNING ` + categoryColumns

func (r *Repository) CreateCategory(ctx context.Context, c product.Category) (product.Category, error) {
	var row categoryRow
	err := r.db.GetContext(ctx, &row, insertCategory, c.ID, c.Name, c.Slug, sharedpg.NullString(c.Description), c.ParentID)
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
		setOptional(s, "name", p.Name)
		setOptional(s, "slug", p.Slug)
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
		return sharedpg.NotFound(constraintError(err), product.ErrNotFound)
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
	return sharedpg.Affected(res, product.ErrNotFound)
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
