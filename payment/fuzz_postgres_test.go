package payment_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// Routes fuzzed through the real service and PostgreSQL: the list whose
// page overflowed into a negative OFFSET, and the webhook parser, each
// fuzzed body signed so that it gets past the signature to the parser.

func FuzzListPaymentsWithPostgres(f *testing.F) {
	s := newStack(f, stackOptions{})
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodGet, Path: "/api/v1/payments",
		Header: httpfuzz.Bearer(s.customerToken(f, uuid.NewString()))},
		httpfuzz.Input{Query: "order_id=" + uuid.NewString()})
}

func FuzzWebhookWithPostgres(f *testing.F) {
	s := newStack(f, stackOptions{})
	sign := func(r *http.Request, in httpfuzz.Input) {
		r.Header.Set(payment.SignatureHeader, payment.SignWebhook([]byte(webhookSecret), []byte(in.Body), time.Now()))
	}
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodPost, Path: "/api/v1/webhooks/payments/{provider}", Prepare: sign},
		httpfuzz.Input{Var: "sandbox", Body: `{"id":"evt_1","type":"charge.succeeded","charge_id":"ch_1","payment_id":"` + uuid.NewString() + `"}`},
		httpfuzz.Input{Var: "sandbox", Body: `{"id":"evt_\u0000","type":"charge.failed","charge_id":"ch_\u0000","payment_id":"` + uuid.NewString() + `","failure_code":"\u0000"}`})
}
