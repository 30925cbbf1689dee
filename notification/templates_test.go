package notification_test

import (
	"strings"
	"testing"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/shared/money"
)

// TestRenderEveryTemplate renders every template on every channel, from a
// contact whose name tries to inject markup and header lines.
func TestRenderEveryTemplate(t *testing.T) {
	r, err := notification.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	amount, refunded := money.Amount(1250), money.Amount(6497)
	data := notification.TemplateData{
		Contact: notification.Contact{FirstName: "<b>Eve</b>\r\nBcc: x@evil.test", Email: "eve@example.com"},
		Details: notification.Details{OrderID: "0a1b2c3d-0000-4000-8000-000000000000", Amount: &amount, RefundedAmount: &refunded,
			Reason: "customer asked", FailureCode: "card_declined"},
		OrderNumber: "MRC-5", Currency: "USD",
		Order: &notification.OrderSummary{OrderNumber: "MRC-5", Total: 2500, Currency: "USD",
			Items: []notification.OrderLine{{Name: "Mug", Quantity: 2, UnitPrice: 1250}}},
	}
	subjects := map[string]string{
		notification.TemplateWelcome:        "Welcome to Mercato, <b>Eve</b> Bcc: x@evil.test!",
		notification.TemplateOrderReceived:  "We received your order MRC-5",
		notification.TemplateOrderConfirmed: "Order MRC-5 confirmed",
		notification.TemplatePaymentFailed:  "Payment for order MRC-5 failed",
		notification.TemplateOrderShipped:   "Order MRC-5 has shipped",
		notification.TemplateOrderDelivered: "Order MRC-5 was delivered",
		notification.TemplateOrderCancelled: "Order MRC-5 was cancelled",
		notification.TemplateRefundIssued:   "Refund for order MRC-5",
	}
	for name, subject := range subjects {
		email, err := r.Render(name, notification.ChannelEmail, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if email.Subject != subject {
			t.Errorf("%s subject %q, want %q", name, email.Subject, subject)
		}
		if !strings.HasPrefix(email.Text, "Hello <b>Eve</b>") || !strings.Contains(email.Text, "Thank you for shopping with Mercato.") {
			t.Errorf("%s text:\n%s", name, email.Text)
		}
		if strings.Contains(email.HTML, "<b>Eve") || !strings.Contains(email.HTML, "Hello &lt;b&gt;Eve&lt;/b&gt;") {
			t.Errorf("%s HTML does not escape the name:\n%s", name, email.HTML)
		}
		for _, ch := range []notification.Channel{notification.ChannelSMS, notification.ChannelPush} {
			m, err := r.Render(name, ch, data)
			if err != nil || m.Text == "" || m.HTML != "" || strings.ContainsAny(m.Text, "\r\n") || len(m.Text) > 160 {
				t.Errorf("%s on %s: %+v, %v", name, ch, m, err)
			}
		}
	}
	m, _ := r.Render(notification.TemplatePaymentFailed, notification.ChannelSMS, data)
	if m.Text != "Mercato: payment for order MRC-5 failed (the card was declined)." {
		t.Errorf("payment failed SMS: %q", m.Text)
	}
	m, _ = r.Render(notification.TemplateRefundIssued, notification.ChannelEmail, data)
	if !strings.Contains(m.Text, "We refunded 12.50 USD for order MRC-5 (64.97 USD refunded so far).") {
		t.Errorf("refund text:\n%s", m.Text)
	}
	if _, err := r.Render("nope", notification.ChannelEmail, data); err == nil {
		t.Error("unknown template rendered")
	}
}
