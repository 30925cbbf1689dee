package product

import (
	"context"

	"github.com/mercato-dev/mercato/shared/events"
)

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
