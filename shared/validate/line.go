package validate

import "strconv"

// Line checks one line of an order or a reservation at field ("items[2]"):
// a product id, an optional variant id and a quantity from 1 to
// maxQuantity, each problem under field's own name (field+".quantity").
// Order and product check lines alike, so a checkout the order service
// accepts is never refused by the reservation for its shape.
func (p Problems) Line(field, productID string, variantID *string, quantity, maxQuantity int) {
	p.UUID(field+".product_id", productID)
	if variantID != nil {
		p.UUID(field+".variant_id", *variantID)
	}
	if quantity < 1 || quantity > maxQuantity {
		p[field+".quantity"] = "must be between 1 and " + strconv.Itoa(maxQuantity)
	}
}
