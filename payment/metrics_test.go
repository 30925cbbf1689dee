package payment_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/sandbox"
)

// webhookOutcomes is a Backend whose HandleWebhook answers the outcomes
// given, one a call; nothing else is called here.
type webhookOutcomes struct {
	payment.Backend
	outcomes []payment.Outcome
}

func (b *webhookOutcomes) HandleWebhook(context.Context, payment.WebhookDelivery) (payment.Outcome, error) {
	o := b.outcomes[0]
	b.outcomes = b.outcomes[1:]
	return o, nil
}

// payment_failures_total counts the charges a webhook failed by their code,
// "unknown" when the provider gave none; every code the provider has starts
// at 0.
func TestPaymentFailuresByCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := payment.NewMetrics(reg, sandbox.FailureCodes()...)
	failed := func(code string) payment.Outcome {
		return payment.Outcome{Changed: true, Payment: payment.Payment{Status: payment.StatusFailed, FailureCode: code}}
	}
	svc := payment.InstrumentingMiddleware(m)(&webhookOutcomes{outcomes: []payment.Outcome{
		failed(sandbox.FailureCardDeclined),
		failed(""),
		failed(sandbox.FailureCardDeclined),
		{Changed: false, Payment: payment.Payment{Status: payment.StatusFailed, FailureCode: sandbox.FailureInsufficientFunds}}, // a repeat: nothing changed
		{Changed: true, Payment: payment.Payment{Status: payment.StatusCompleted}},
	}})
	for range 5 {
		if _, err := svc.HandleWebhook(context.Background(), payment.WebhookDelivery{}); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP payment_failures_total Failed charges by decline code (unknown: the provider gave none).
# TYPE payment_failures_total counter
payment_failures_total{code="card_declined"} 2
payment_failures_total{code="insufficient_funds"} 0
payment_failures_total{code="processing_error"} 0
payment_failures_total{code="unknown"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "payment_failures_total"); err != nil {
		t.Error(err)
	}
	want = `
# HELP payments_total Payment state changes, by the status they led to (pending: a charge was requested).
# TYPE payments_total counter
payments_total{status="completed"} 1
payments_total{status="failed"} 3
payments_total{status="partially_refunded"} 0
payments_total{status="pending"} 0
payments_total{status="refunded"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "payments_total"); err != nil {
		t.Error(err)
	}
}
