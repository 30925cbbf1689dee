package dashboards

// Business is what the platform sells: orders, revenue, payments, refunds,
// stock and notifications. Rates are per minute; money is in major units
// (the counters hold integer cents).
func Business() Dashboard {
	return Dashboard{
		UID:         "mercato-business",
		Title:       "Mercato / Business",
		Description: "Orders, revenue, payments, refunds, stock and notifications, per minute.",
		Rows: []Row{
			{Title: "Orders", Panels: []Panel{
				{
					Title:       "Orders placed and confirmed per minute",
					Description: "Placed: checkouts that succeeded (order_checkouts_total{result=\"success\"}). Confirmed: orders whose payment the webhook confirmed. Confirmed trails placed by the webhook's round trip; a gap that stays open is payments not confirming.",
					Kind:        TimeSeries, Unit: "opm", Width: 12,
					Queries: []Query{
						{Expr: `sum(rate(order_checkouts_total{result="success"}[$__rate_interval])) * 60`, Legend: "placed"},
						{Expr: `sum(rate(order_transitions_total{status="confirmed"}[$__rate_interval])) * 60`, Legend: "confirmed"},
					},
				},
				{
					Title:       "Checkouts by result",
					Description: "Checkouts per minute by result: success, a business error code (out_of_stock, payment_rejected, ...) or error (something failed).",
					Kind:        TimeSeries, Unit: "opm", Width: 6,
					Queries: []Query{{Expr: `sum by (result) (rate(order_checkouts_total[$__rate_interval])) * 60`, Legend: "{{result}}"}},
				},
				{
					Title:       "Checkout success ratio",
					Description: "Share of checkouts over the time range that placed an order.",
					Kind:        Stat, Unit: "percentunit", Width: 6,
					Thresholds: []Step{{Color: "red"}, {Value: 0.8, Color: "orange"}, {Value: 0.95, Color: "green"}},
					Queries:    []Query{{Expr: `sum(increase(order_checkouts_total{result="success"}[$__range])) / sum(increase(order_checkouts_total[$__range]))`, Legend: "success", Instant: true}},
				},
				{
					Title:       "Revenue per minute",
					Description: "Total of the orders confirmed per minute, by currency, in major units (order_revenue_cents_total / 100).",
					Kind:        TimeSeries, Unit: "none", Width: 12,
					Queries: []Query{{Expr: `sum by (currency) (rate(order_revenue_cents_total[$__rate_interval])) * 60 / 100`, Legend: "{{currency}}"}},
				},
				{
					Title:       "Revenue over the range",
					Description: "Total of the orders confirmed over the time range, by currency, in major units.",
					Kind:        Stat, Unit: "none", Width: 6,
					Queries: []Query{{Expr: `sum by (currency) (increase(order_revenue_cents_total[$__range])) / 100`, Legend: "{{currency}}", Instant: true}},
				},
				{
					Title:       "Order status changes per minute",
					Description: "Orders entering each status per minute: confirmed, cancelled (a failed payment or a customer), shipped, delivered, refunded.",
					Kind:        TimeSeries, Unit: "opm", Width: 6,
					Queries: []Query{{Expr: `sum by (status) (rate(order_transitions_total[$__rate_interval])) * 60`, Legend: "{{status}}"}},
				},
			}},
			{Title: "Payments and refunds", Panels: []Panel{
				{
					Title:       "Payments by status",
					Description: "Payments per minute entering each status (pending, completed, failed, refunded, partially_refunded).",
					Kind:        TimeSeries, Unit: "opm",
					Queries: []Query{{Expr: `sum by (status) (rate(payments_total[$__rate_interval])) * 60`, Legend: "{{status}}"}},
				},
				{
					Title:       "Payment failures by code",
					Description: "Failed charges per minute by decline code (card_declined, insufficient_funds, ...; unknown when the processor gave none). A jump in one code is the processor or a card range; in all of them, the integration.",
					Kind:        TimeSeries, Unit: "opm",
					Queries: []Query{{Expr: `sum by (code) (rate(payment_failures_total[$__rate_interval])) * 60`, Legend: "{{code}}"}},
				},
				{
					Title:       "Refunds",
					Description: "Refunds made per minute, and the amount refunded per minute in major units.",
					Kind:        TimeSeries, Unit: "none",
					Queries: []Query{
						{Expr: `sum(rate(refunds_total[$__rate_interval])) * 60`, Legend: "refunds per minute"},
						{Expr: `sum(rate(refunded_amount_cents_total[$__rate_interval])) * 60 / 100`, Legend: "amount per minute"},
					},
				},
			}},
			{Title: "Stock and notifications", Panels: []Panel{
				{
					Title:       "Reservations released",
					Description: "Stock reservations released per minute: released (an order cancelled or its payment failed) and expired (the sweeper took back a reservation nobody committed in time; many means checkouts dying half-way).",
					Kind:        TimeSeries, Unit: "opm",
					Queries: []Query{{Expr: `sum by (reason) (rate(reservation_releases_total[$__rate_interval])) * 60`, Legend: "{{reason}}"}},
				},
				{
					Title:       "Low-stock products",
					Description: "Active products and variants at or below their own minimum stock (min_stock_quantity), as the product service counts them periodically (never on a scrape); every product instance reports the same count.",
					Kind:        Stat, Unit: "short", Width: 4,
					Thresholds: []Step{{Color: "green"}, {Value: 1, Color: "orange"}},
					Queries:    []Query{{Expr: `max(product_low_stock_products)`, Legend: "low stock"}},
				},
				{
					Title:       "Notifications sent and failed by channel",
					Description: "Delivery attempts per minute that sent a message or failed for good, by channel (email, sms, push). Retries (status retrying) are left out: they are attempts that will be made again.",
					Kind:        TimeSeries, Unit: "opm", Width: 12,
					Queries: []Query{{Expr: `sum by (channel, status) (rate(notification_attempts_total{status=~"sent|failed"}[$__rate_interval])) * 60`, Legend: "{{channel}} {{status}}"}},
				},
			}},
		},
	}
}
