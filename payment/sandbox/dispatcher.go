package sandbox

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/tracing"
	"github.com/mercato-dev/mercato/shared/wait"
)

// Dispatcher is the sandbox's webhook sender: it posts each charge's signed
// outcome to URL until the receiver answers 2xx, or 409 (it had the event
// already), retrying with backoff. Run one in every payment instance: they
// share the work, each taking due charges with FOR UPDATE SKIP LOCKED and a
// lease, so a charge whose instance died before delivering is sent by
// another (or by the restarted one) once its lease runs out.
type Dispatcher struct {
	DB     *sqlx.DB     // required: the sandbox's pool
	URL    string       // required: the payment service's webhook route, through the gateway
	Secret []byte       // required: the signing key the payment service verifies with
	Client *http.Client // required: with a timeout
	Logger log.Logger   // default log.NewNopLogger()
	// Deliveries counts attempts by result: delivered, rejected (another
	// status), error (no answer). Nil counts nothing.
	Deliveries metrics.Counter

	// Wake, when set, ends the wait between polls: Sandbox.Due, so that a
	// webhook is sent as soon as its charge is due, not at the next poll.
	Wake <-chan struct{}

	// PollInterval is the wait when nothing is due: default 100ms, or 1s
	// with Wake, where the poll only finds retries and the charges of an
	// instance that died before sending them.
	PollInterval time.Duration
	Lease        time.Duration // how long a taken charge is left to its dispatcher; default 30s
	MaxBackoff   time.Duration // longest wait between attempts; default 1m
	BatchSize    int           // charges taken at once; default 10
}

// Run delivers until ctx is done, then returns nil.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.DB == nil || d.URL == "" || len(d.Secret) == 0 || d.Client == nil {
		return fmt.Errorf("sandbox: dispatcher needs DB, URL, Secret and Client")
	}
	c := d.withDefaults()
	for ctx.Err() == nil {
		n, err := c.deliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			level.Error(c.Logger).Log("msg", "webhook dispatcher: taking due charges failed", "err", err)
		}
		if n < c.BatchSize || err != nil { // drained (or failing): wait; a full batch loops at once
			wait.ForOr(ctx, c.PollInterval, c.Wake)
		}
	}
	return nil
}

func (d *Dispatcher) withDefaults() Dispatcher {
	c := *d
	c.Logger = defaults.Logger(c.Logger)
	c.PollInterval = defaults.Positive(c.PollInterval, wait.PollEvery(c.Wake != nil))
	c.Lease = defaults.Positive(c.Lease, 30*time.Second)
	c.MaxBackoff = defaults.Positive(c.MaxBackoff, time.Minute)
	c.BatchSize = defaults.Positive(c.BatchSize, 10)
	return c
}

type dueCharge struct {
	ID          string         `db:"id"`
	PaymentID   string         `db:"payment_id"`
	Outcome     string         `db:"outcome"`
	FailureCode sql.NullString `db:"failure_code"`
	EventID     string         `db:"webhook_event_id"`
	Attempts    int            `db:"delivery_attempts"`
	// TraceContext is the charge call's, which the webhook carries.
	TraceContext sql.NullString `db:"trace_context"`
}

// deliverDue takes the charges whose webhook is due and sends each,
// reporting how many it took.
func (d *Dispatcher) deliverDue(ctx context.Context) (int, error) {
	var due []dueCharge
	// Taking is one short statement: the lease, not a held lock, keeps
	// other dispatchers off the rows while their webhooks are in flight.
	err := d.DB.SelectContext(ctx, &due, `
		UPDATE sandbox_charges
		SET next_delivery_at = now() + make_interval(secs => $1), delivery_attempts = delivery_attempts + 1
		WHERE id IN (
			SELECT id FROM sandbox_charges
			WHERE delivered_at IS NULL AND next_delivery_at <= now()
			ORDER BY next_delivery_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		RETURNING id, payment_id, outcome, failure_code, webhook_event_id, delivery_attempts, trace_context`,
		d.Lease.Seconds(), d.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("take due charges: %w", err)
	}
	for _, c := range due {
		d.deliver(ctx, c)
	}
	return len(due), nil
}

// deliver sends one webhook and records the result.
func (d *Dispatcher) deliver(ctx context.Context, c dueCharge) {
	evt := payment.WebhookEvent{ID: c.EventID, Type: payment.WebhookChargeSucceeded, ChargeID: c.ID, PaymentID: c.PaymentID}
	if c.Outcome != outcomeSucceeded {
		evt.Type, evt.FailureCode = payment.WebhookChargeFailed, c.FailureCode.String
	}
	body, err := json.Marshal(evt)
	if err != nil {
		level.Error(d.Logger).Log("msg", "webhook dispatcher: encode", "charge_id", c.ID, "err", err)
		return
	}
	status, err := d.post(tracing.FromJSON(ctx, c.TraceContext.String), body)
	// The outcome is recorded even when ctx was cancelled meanwhile
	// (shutdown): a delivered webhook must not be sent again for nothing.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	switch {
	case err == nil && (status/100 == 2 || status == http.StatusConflict):
		d.count("delivered")
		_, err = d.DB.ExecContext(rctx, `
			UPDATE sandbox_charges
			SET delivered_at = now(), next_delivery_at = NULL, last_delivery_error = NULL
			WHERE id = $1`, c.ID)
	case ctx.Err() != nil:
		// Shutting down mid-delivery: hand the charge back at once, so the
		// next dispatcher does not wait for the lease.
		_, err = d.DB.ExecContext(rctx, `UPDATE sandbox_charges SET next_delivery_at = now() WHERE id = $1`, c.ID)
	default:
		reason := fmt.Sprintf("answered %d", status)
		if err != nil {
			reason = err.Error()
			d.count("error")
		} else {
			d.count("rejected")
		}
		retryIn := backoff(c.Attempts, d.MaxBackoff)
		level.Warn(d.Logger).Log("msg", "webhook delivery failed; will retry", "charge_id", c.ID,
			"payment_id", c.PaymentID, "attempt", c.Attempts, "retry_in", retryIn, "err", reason)
		_, err = d.DB.ExecContext(rctx, `
			UPDATE sandbox_charges
			SET next_delivery_at = now() + make_interval(secs => $2), last_delivery_error = $3
			WHERE id = $1`, c.ID, retryIn.Seconds(), reason)
	}
	if err != nil {
		// The lease brings the charge back; at worst it is sent once more
		// and answered 409.
		level.Error(d.Logger).Log("msg", "webhook dispatcher: record delivery", "charge_id", c.ID, "err", err)
	}
}

// post sends body signed with the current time, as processors sign at
// sending, with the trace context of ctx (the charge call's, which the
// gateway links its trace to), and returns the answer's status.
func (d *Dispatcher) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mercato-sandbox-webhooks/1")
	req.Header.Set(payment.SignatureHeader, payment.SignWebhook(d.Secret, body, time.Now()))
	tracing.ClientRequest(ctx, req)
	resp, err := d.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	return resp.StatusCode, nil
}

func (d *Dispatcher) count(result string) {
	if d.Deliveries != nil {
		d.Deliveries.With("result", result).Add(1)
	}
}

// backoff is the wait after the attempt-th failure: doubling from 1s up to
// max, with jitter so instances do not retry in lockstep.
func backoff(attempt int, max time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(half+1) //nolint:gosec // jitter spreads retries; nothing depends on it being unpredictable
}
