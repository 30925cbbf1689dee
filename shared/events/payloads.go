package events

import "github.com/mercato-dev/mercato/shared/money"

// Event payloads: the Data of each event type, declared once here and used
// by the producer and by every consumer alike, so the two cannot drift.
//
// The JSON field names are the wire contract. Consumers ignore fields they
// do not know, so a field may be added; renaming or dropping one breaks
// every consumer that reads it. Ids are UUID strings; money is an
// integer number of cents in Go and a decimal string ("19.99") on the wire,
// always beside the currency it is in.

// UserPayload is the data of user.created and user.updated (source "user"):
// the contact data other services keep about a user, as it is after the
// change.
type UserPayload struct {
	UserID    string `json:"user_id"`
	Email     string `json:"email"` // normalised: trimmed, lower case
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Phone     string `json:"phone,omitempty"` // absent when the user gave none
	Role      string `json:"role,omitempty"`  // "customer" or "admin"
}

// ProductPayload is the data of product.created and product.updated (source
// "product"): the catalogue entry as it is after the change.
type ProductPayload struct {
	ProductID  string  `json:"product_id"`
	CategoryID *string `json:"category_id"` // null when the product is in no category
	SKU        string  `json:"sku"`
	Name       string  `json:"name"`
	Slug       string  `json:"slug"`
	// Price is the product's own price, in Currency; variants have theirs.
	Price    money.Amount `json:"price"`
	Currency string       `json:"currency"`
	// StockQuantity is the available stock of the product sold as itself
	// (not counting its variants').
	StockQuantity int  `json:"stock_quantity"`
	IsActive      bool `json:"is_active"` // false once deleted (deactivated)
}

// InventoryLowStockPayload is the data of inventory.low_stock (source
// "product"): the available stock of a product, or of one of its variants,
// fell to or below the product's minimum. It is sent once per fall, when
// the stock crosses the minimum, not for every sale below it.
type InventoryLowStockPayload struct {
	ProductID        string  `json:"product_id"`
	VariantID        *string `json:"variant_id"` // null when the product itself ran low
	SKU              string  `json:"sku"`        // the variant's SKU for a variant, else the product's
	StockQuantity    int     `json:"stock_quantity"`
	MinStockQuantity int     `json:"min_stock_quantity"`
}

// InventoryReleasedPayload is the data of inventory.released (source
// "product"): the stock reserved for an order was given back.
type InventoryReleasedPayload struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"` // ReleaseReasonReleased or ReleaseReasonExpired
}

// Reasons of inventory.released. The order service cancels a pending order
// whose reservation was released with ReleaseReasonExpired.
const (
	ReleaseReasonReleased = "released" // the order service asked (the order was cancelled)
	ReleaseReasonExpired  = "expired"  // nobody committed the reservation before it expired
)

// OrderCreatedPayload is the data of order.created (source "order"): a new
// pending order, priced from the catalogue.
type OrderCreatedPayload struct {
	OrderID     string `json:"order_id"`
	OrderNumber string `json:"order_number"` // what the customer sees, e.g. "MER-20261129-7K3F9Q"
	UserID      string `json:"user_id"`      // the customer
	// TotalAmount is what the customer pays (items, tax and shipping), in
	// Currency.
	TotalAmount money.Amount       `json:"total_amount"`
	Currency    string             `json:"currency"`
	Items       []OrderItemPayload `json:"items"` // in the customer's order; at least one
}

// OrderItemPayload is one line of an order in order.created.
type OrderItemPayload struct {
	ProductID string       `json:"product_id"`
	VariantID *string      `json:"variant_id"` // null for the product sold as itself
	Name      string       `json:"name"`       // the product's (and variant's) name at order time
	Quantity  int          `json:"quantity"`
	UnitPrice money.Amount `json:"unit_price"` // in the order's currency
}

// OrderUpdatedPayload is the data of order.updated (source "order"): an
// order's status changed. It is sent for every change, a cancellation
// included (which also sends order.cancelled).
type OrderUpdatedPayload struct {
	OrderID        string `json:"order_id"`
	OrderNumber    string `json:"order_number"`
	UserID         string `json:"user_id"`
	Status         string `json:"status"`          // the new status: confirmed, shipped, delivered, cancelled or refunded
	PreviousStatus string `json:"previous_status"` // the status it left
}

// OrderCancelledPayload is the data of order.cancelled (source "order"): the
// order is cancelled, so its stock goes back and a captured payment is
// refunded. It is sent again when a payment is captured after the order
// was cancelled, so that capture is refunded too.
type OrderCancelledPayload struct {
	OrderID string `json:"order_id"`
	UserID  string `json:"user_id"`
	Reason  string `json:"reason"` // why, in words, as recorded in the order's history
}

// PaymentProcessedPayload is the data of payment.processed (source
// "payment"): the processor captured an order's payment.
type PaymentProcessedPayload struct {
	PaymentID string       `json:"payment_id"`
	OrderID   string       `json:"order_id"`
	UserID    string       `json:"user_id"`
	Amount    money.Amount `json:"amount"` // captured, in Currency
	Currency  string       `json:"currency"`
}

// PaymentFailedPayload is the data of payment.failed (source "payment"):
// the processor declined or failed an order's charge.
type PaymentFailedPayload struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	UserID      string `json:"user_id"`
	FailureCode string `json:"failure_code"` // the processor's, e.g. "card_declined", "insufficient_funds"
}

// PaymentRefundedPayload is the data of payment.refunded (source "payment"):
// one refund, full or partial, of a captured payment was made.
type PaymentRefundedPayload struct {
	PaymentID      string       `json:"payment_id"`
	OrderID        string       `json:"order_id"`
	UserID         string       `json:"user_id"`
	Amount         money.Amount `json:"amount"`          // this refund
	RefundedAmount money.Amount `json:"refunded_amount"` // all refunds of the payment so far, this one included
	FullyRefunded  bool         `json:"fully_refunded"`  // RefundedAmount is the whole captured amount
	Currency       string       `json:"currency"`        // of both amounts: the payment's, which is the order's
}
