package postgres

import (
	"context"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/product"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

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
		setOptional(s, "sku", p.SKU)
		setOptional(s, "name", p.Name)
		setOptional(s, "price", p.Price)
		if p.Attributes.Value != nil {
			s.setJSON("attributes", *p.Attributes.Value)
		}
		setOptional(s, "is_active", p.IsActive)
		if s.err != nil {
			return s.err
		}
		res, err := tx.ExecContext(ctx, `UPDATE product_variants SET `+s.clause()+` WHERE id = $1 AND product_id = $2`, s.args...)
		if err != nil {
			return constraintError(err)
		}
		if err := sharedpg.Affected(res, product.ErrNotFound); err != nil {
			return err
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
