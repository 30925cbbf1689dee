package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

const paymentWebhookSecret = "e2e-webhook-secret-long-enough-32b"

// paymentPlatform is Consul, PostgreSQL, a Redis for events (private, as
// the user platform's), the gateway and two payment instances whose sandbox
// processor posts its webhooks through the gateway, as in production.
type paymentPlatform struct {
	consul   string
	dbURL    string
	events   *redis.Client
	payments []*proc
	gateway  *proc
	api      *client
	tokens   *auth.Tokens
}

func startPaymentPlatform(t *testing.T) *paymentPlatform {
	eventsRedis := testkit.NewRedis(t)
	p := &paymentPlatform{consul: testkit.NewConsul(t).Addr(), dbURL: testkit.PostgresURL(t),
		events: redis.NewClient(eventsRedis.Options(localinfra.RedisAdmin))}
	t.Cleanup(func() { p.events.Close() })
	tokens, err := auth.NewTokens([]byte(jwtSecret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p.tokens = tokens
	// The gateway first: the instances need its address for their webhooks.
	p.gateway = start(t, "gateway", "-consul-addr", p.consul, "-redis-addr", testkit.RedisAddr(t),
		"-jwt-secret", jwtSecret, "-rate-limit", "100000", "-rate-burst", "10000")
	p.api = newClient(t, p.gateway.addr)
	for range 2 {
		p.payments = append(p.payments, start(t, "payment", "-consul-addr", p.consul, "-database-url", p.dbURL,
			"-redis-addr", eventsRedis.Addr(), "-jwt-secret", jwtSecret, "-webhook-secret", paymentWebhookSecret,
			"-webhook-url", "http://"+p.gateway.addr+"/api/v1/webhooks/payments/sandbox", "-webhook-delay", "1s"))
	}
	waitPassing(t, p.consul, "payment", 2)
	return p
}

func (p *paymentPlatform) token(t *testing.T, id auth.Identity) string {
	t.Helper()
	tok, err := p.tokens.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// charge asks instance i for a payment of a new order, as the order service
// does: on the internal route, with a service token.
func (p *paymentPlatform) charge(t *testing.T, i int, userID, amount, card string) (id, orderID string) {
	t.Helper()
	orderID = uuid.NewString()
	svc, err := p.tokens.ServiceToken("order")
	if err != nil {
		t.Fatal(err)
	}
	direct := newClient(t, p.payments[i].addr)
	var out struct {
		Payment struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"payment"`
	}
	direct.do("POST", "/internal/payments", svc, map[string]any{"order_id": orderID, "user_id": userID,
		"amount": amount, "currency": "USD",
		"card": map[string]any{"number": card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"}}).
		must(t, http.StatusAccepted).decode(t, &out)
	if out.Payment.Status != "pending" {
		t.Fatalf("charge answered %+v", out)
	}
	return out.Payment.ID, orderID
}

type e2ePayment struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	FailureCode    string `json:"failure_code"`
	CapturedAmount string `json:"captured_amount"`
	RefundedAmount string `json:"refunded_amount"`
	Card           struct {
		Brand, Last4 string
	} `json:"card"`
	Refunds []struct {
		Amount string `json:"amount"`
		Reason string `json:"reason"`
	} `json:"refunds"`
}

// waitStatus reads the payment through the gateway until it has status.
func (p *paymentPlatform) waitStatus(t *testing.T, id, token, status string) e2ePayment {
	t.Helper()
	var out struct {
		Payment e2ePayment `json:"payment"`
	}
	waitFor(t, 30*time.Second, "payment "+id+" "+status, func() error {
		r := p.api.do("GET", "/api/v1/payments/"+id, token, nil).must(t, http.StatusOK)
		r.decode(t, &out)
		if out.Payment.Status != status {
			return fmt.Errorf("status %s", out.Payment.Status)
		}
		return nil
	})
	return out.Payment
}

// TestPaymentPlatform drives payments through the real binaries: charges
// confirmed by the sandbox's signed webhooks travelling through the gateway,
// customers' and admins' views, refunds, an instance killed between a charge
// and its webhook, and an order's cancellation refunding its payment.
func TestPaymentPlatform(t *testing.T) {
	p := startPaymentPlatform(t)
	api := p.api
	ada := uuid.NewString()
	adaTok := p.token(t, auth.Identity{UserID: ada, Role: auth.RoleCustomer})
	eveTok := p.token(t, auth.Identity{UserID: uuid.NewString(), Role: auth.RoleCustomer})
	admin := p.token(t, auth.Identity{UserID: uuid.NewString(), Role: auth.RoleAdmin})

	var paid, paidOrder string
	t.Run("charges confirmed by signed webhooks through the gateway", func(t *testing.T) {
		paid, paidOrder = p.charge(t, 0, ada, "30.00", "4242424242424242")
		declined, _ := p.charge(t, 1, ada, "5.00", "4000000000000002")
		poor, _ := p.charge(t, 0, ada, "5.00", "4000000000009995")
		got := p.waitStatus(t, paid, adaTok, "completed")
		if got.CapturedAmount != "30.00" || got.Card.Brand != "visa" || got.Card.Last4 != "4242" || got.Refunds == nil {
			t.Errorf("completed payment %+v", got)
		}
		if got := p.waitStatus(t, declined, adaTok, "failed"); got.FailureCode != "card_declined" {
			t.Errorf("declined payment %+v", got)
		}
		if got := p.waitStatus(t, poor, adaTok, "failed"); got.FailureCode != "insufficient_funds" {
			t.Errorf("insufficient funds %+v", got)
		}
		// Ada's list, and nobody else's business.
		var list struct {
			Items []e2ePayment `json:"items"`
			Total int          `json:"total"`
		}
		api.do("GET", "/api/v1/payments?order_id="+paidOrder, adaTok, nil).must(t, 200).decode(t, &list)
		if list.Total != 1 || list.Items[0].ID != paid {
			t.Errorf("Ada's payments of the order: %+v", list)
		}
		api.do("GET", "/api/v1/payments/"+paid, eveTok, nil).must(t, 404)
		api.do("GET", "/api/v1/payments/"+paid, "", nil).must(t, 401)
	})

	t.Run("internal route and forged webhooks are refused at the gateway", func(t *testing.T) {
		api.do("POST", "/internal/payments", admin, map[string]any{}).must(t, 404)
		api.do("POST", "/api/v1/internal/payments", admin, map[string]any{}).must(t, 404)
		body := []byte(`{"id":"evt_forged","type":"charge.succeeded","charge_id":"ch_x","payment_id":"` + paid + `"}`)
		if code := api.raw("POST", "/api/v1/webhooks/payments/sandbox", "", body).must(t, 401).errorCode(t); code != "invalid_signature" {
			t.Errorf("unsigned webhook: %s", code)
		}
		stale := "t=" + strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10) + ",v1=00"
		api.raw("POST", "/api/v1/webhooks/payments/sandbox", "", body, "Mercato-Signature", stale).must(t, 401)
	})

	t.Run("refunds: admin only, partial, idempotent, never above the capture", func(t *testing.T) {
		path := "/api/v1/payments/" + paid + "/refunds"
		api.do("POST", path, adaTok, map[string]any{"amount": "1.00"}).must(t, 403)
		key := uuid.NewString()
		first := api.raw("POST", path, admin, []byte(`{"amount":"10.00","reason":"damaged"}`), "Idempotency-Key", key).must(t, 201)
		again := api.raw("POST", path, admin, []byte(`{"amount":"10.00","reason":"damaged"}`), "Idempotency-Key", key).must(t, 201)
		var a, b struct {
			Refund struct {
				ID string `json:"id"`
			} `json:"refund"`
		}
		first.decode(t, &a)
		again.decode(t, &b)
		if a.Refund.ID == "" || a.Refund.ID != b.Refund.ID || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay answered another refund: %s / %s", first.Body, again.Body)
		}
		if code := api.raw("POST", path, admin, []byte(`{"amount":"11.00"}`), "Idempotency-Key", key).must(t, 409).errorCode(t); code != "idempotency_mismatch" {
			t.Errorf("key reuse: %s", code)
		}
		if code := api.do("POST", path, admin, map[string]any{"amount": "20.01"}).must(t, 409).errorCode(t); code != "refund_exceeds_captured" {
			t.Errorf("over-refund: %s", code)
		}
		got := p.waitStatus(t, paid, adaTok, "partially_refunded")
		if got.RefundedAmount != "10.00" || len(got.Refunds) != 1 {
			t.Errorf("after a partial refund: %+v", got)
		}
	})

	t.Run("an instance killed between charge and webhook: another delivers it", func(t *testing.T) {
		id, _ := p.charge(t, 0, ada, "7.00", "4242424242424242")
		p.payments[0].kill() // well within the 1 s webhook delay
		p.waitStatus(t, id, adaTok, "completed")
	})

	t.Run("order.cancelled refunds the rest of a captured payment", func(t *testing.T) {
		testkit.Publish(t, p.events, "order", events.OrderCancelled,
			map[string]string{"order_id": paidOrder, "user_id": ada, "reason": "customer request"})
		got := p.waitStatus(t, paid, adaTok, "refunded")
		if got.RefundedAmount != "30.00" || len(got.Refunds) != 2 || got.Refunds[1].Amount != "20.00" {
			t.Errorf("after the cancellation: %+v", got)
		}
		// The saga's events reached the stream: payment.refunded, fully.
		waitFor(t, 20*time.Second, "payment.refunded on the stream", func() error {
			entries, err := p.events.XRange(context.Background(), events.DefaultStream, "-", "+").Result()
			if err != nil {
				return err
			}
			for _, en := range entries {
				var env events.Envelope
				_ = json.Unmarshal([]byte(en.Values["envelope"].(string)), &env)
				var d struct {
					PaymentID     string `json:"payment_id"`
					FullyRefunded bool   `json:"fully_refunded"`
				}
				_ = env.Decode(&d)
				if env.Type == events.PaymentRefunded && d.PaymentID == paid && d.FullyRefunded {
					return nil
				}
			}
			return fmt.Errorf("not yet among %d entries", len(entries))
		})
		if n := scrape(t, p.payments[1].addr, "payments_total", "status", "completed"); n < 1 {
			t.Errorf("payments_total{status=completed} = %v on the surviving instance", n)
		}
	})
}
