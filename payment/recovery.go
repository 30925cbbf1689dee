package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/wait"
)

// Recovery settles the provider calls whose answer was never recorded: the
// service commits each charge and refund as an attempt before it calls the
// provider, so a process that stops before the answer is recorded, or a
// call that fails and is not retried, leaves an attempt behind. Run one in
// every instance: they share the work, each claiming the attempts it takes
// with FOR UPDATE SKIP LOCKED and a new attempt time, as the sandbox's
// dispatcher claims webhooks.
//
// An attempt is abandoned once it was last attempted more than After ago.
// After exceeds ProviderTimeout, which bounds every provider call and the
// recording of its answer, so an abandoned attempt is in flight nowhere.
// (The next request for the same order, or with the same refund key,
// finishes an attempt sooner: it claims it anew and makes the call.) Then:
//
//   - A refund is asked of the provider again, under the same idempotency
//     key, so a provider that made it answers with the first refund; it is
//     completed with its payment.refunded event.
//   - A charge cannot be made again: the card number was never stored. A
//     provider that is a ChargeFinder is asked whether it took a charge
//     under the order id. If it did, the charge id is recorded, and the
//     provider's webhook, sent until it is answered, settles the payment as
//     usual. If it did not, or the provider cannot be asked, the payment
//     fails with FailureProcessingError and the usual payment.failed event,
//     so the order is cancelled and its stock released; the customer orders
//     again. A provider that cannot be asked may have taken the charge after
//     all: its webhook then finds no payment with that charge id and is
//     refused (404) until someone refunds it by hand, which is why adapters
//     of real processors should implement ChargeFinder (processors can look
//     a charge up by idempotency key or metadata).
type Recovery struct {
	Repo     Repository // required
	Provider Provider   // required: the service's
	Logger   log.Logger // default log.NewNopLogger()
	// Metrics counts the refunds and failures Recovery records, as
	// InstrumentingMiddleware counts the service's. Nil counts nothing.
	Metrics *Metrics

	After           time.Duration // default 2m; more than ProviderTimeout
	ProviderTimeout time.Duration // the service's Options.ProviderTimeout; default DefaultProviderTimeout
	Interval        time.Duration // between looks for abandoned attempts; default 10s
	BatchSize       int           // attempts of each kind claimed at once; default 20
}

// Run settles abandoned attempts until ctx is done, then returns nil.
func (r *Recovery) Run(ctx context.Context) error {
	if r.Repo == nil || r.Provider == nil {
		return errors.New("payment: recovery needs Repo and Provider")
	}
	c := r.withDefaults()
	if c.After <= c.ProviderTimeout {
		return fmt.Errorf("payment: recovery After (%s) must exceed ProviderTimeout (%s)", c.After, c.ProviderTimeout)
	}
	s := &service{repo: c.Repo, provider: c.Provider, providerTimeout: c.ProviderTimeout, now: time.Now}
	settle := func() {
		// A full batch may have left more behind: look again at once.
		for ctx.Err() == nil {
			n, err := c.settle(ctx, s)
			if err != nil && ctx.Err() == nil {
				level.Error(c.Logger).Log("msg", "recovery: claiming abandoned attempts failed", "err", err)
			}
			if err != nil || n < c.BatchSize {
				break
			}
		}
	}
	settle()
	wait.Every(ctx, c.Interval, settle)
	return nil
}

func (r *Recovery) withDefaults() Recovery {
	c := *r
	c.Logger = defaults.Logger(c.Logger)
	c.After = defaults.Positive(c.After, 2*time.Minute)
	c.ProviderTimeout = defaults.Positive(c.ProviderTimeout, DefaultProviderTimeout)
	c.Interval = defaults.Positive(c.Interval, 10*time.Second)
	c.BatchSize = defaults.Positive(c.BatchSize, 20)
	return c
}

// settle claims a batch of abandoned charges and one of refunds and settles
// them, reporting the larger batch's size. What fails to settle is claimed
// again once After has passed.
func (r *Recovery) settle(ctx context.Context, s *service) (int, error) {
	charges, err := r.Repo.ClaimAbandonedCharges(ctx, r.After, r.BatchSize)
	if err != nil {
		return 0, err
	}
	for _, p := range charges {
		r.settleCharge(ctx, s, p)
	}
	refunds, err := r.Repo.ClaimAbandonedRefunds(ctx, r.After, r.BatchSize)
	if err != nil {
		return len(charges), err
	}
	for _, rf := range refunds {
		r.settleRefund(ctx, s, rf)
	}
	return max(len(charges), len(refunds)), nil
}

// settleCharge settles p, claimed with its charge awaited.
func (r *Recovery) settleCharge(ctx context.Context, s *service, p Payment) {
	logger := log.With(r.Logger, "payment_id", p.ID, "order_id", p.OrderID)
	chargeID, err := s.findCharge(ctx, p)
	switch {
	case err == nil:
		if _, err := s.repo.RecordCharge(ctx, p.ID, chargeID); err != nil {
			level.Error(logger).Log("msg", "recovery: recording a charge found at the provider failed", "charge_id", chargeID, "err", err)
			return
		}
		level.Warn(logger).Log("msg", "recovery: an abandoned charge was taken by the provider; its charge id is recorded, its webhook settles the payment",
			"charge_id", chargeID)
	case errors.Is(err, ErrNoSuchCharge):
		failed, err := s.failAbandonedCharge(ctx, p)
		switch {
		case err != nil:
			level.Error(logger).Log("msg", "recovery: failing an abandoned charge failed", "err", err)
		case failed:
			level.Warn(logger).Log("msg", "recovery: an abandoned charge never reached the provider; the payment failed", "failure_code", FailureProcessingError)
			r.Metrics.failed(FailureProcessingError)
		}
	default:
		level.Warn(logger).Log("msg", "recovery: the provider could not say whether it took an abandoned charge; asking again later", "err", err)
	}
}

// settleRefund completes rf, a refund claimed pending.
func (r *Recovery) settleRefund(ctx context.Context, s *service, rf Refund) {
	logger := log.With(r.Logger, "payment_id", rf.PaymentID, "refund_id", rf.ID)
	p, err := s.repo.Payment(ctx, rf.PaymentID)
	if err != nil {
		level.Error(logger).Log("msg", "recovery: loading the payment of an abandoned refund failed", "err", err)
		return
	}
	p, rf, done, err := s.finishRefund(ctx, p, rf)
	switch {
	case err != nil:
		level.Warn(logger).Log("msg", "recovery: an abandoned refund failed again; retrying later", "err", err)
	case done:
		level.Warn(logger).Log("msg", "recovery: an abandoned refund is completed", "amount", rf.Amount)
		if r.Metrics != nil {
			r.Metrics.refunded(rf, p.Status)
		}
	}
}

// findCharge asks the provider for the charge it took for p, if any:
// ErrNoSuchCharge when it took none or cannot be asked.
func (s *service) findCharge(ctx context.Context, p Payment) (string, error) {
	finder, ok := s.provider.(ChargeFinder)
	if !ok {
		return "", ErrNoSuchCharge
	}
	ctx, cancel := s.providerContext(ctx)
	defer cancel()
	return finder.FindCharge(ctx, chargeKey(p))
}

// failAbandonedCharge fails p, whose charge the provider never took, and
// reports whether it did: not when the charge was claimed again since p
// was, by a request for the order that makes the call itself.
func (s *service) failAbandonedCharge(ctx context.Context, p Payment) (bool, error) {
	failed := false
	_, _, err := s.repo.UpdatePayment(ctx, Lock{PaymentID: p.ID}, func(ctx context.Context, cur Payment, _ *Refund) (*Change, error) {
		if !cur.chargeAwaited() || cur.ChargeAttemptedAt == nil || p.ChargeAttemptedAt == nil ||
			!cur.ChargeAttemptedAt.Equal(*p.ChargeAttemptedAt) {
			return nil, nil
		}
		failed = true
		now := s.now().UTC()
		cur.ProcessedAt = &now
		return s.chargeFailed(ctx, cur, FailureProcessingError)
	})
	return failed, err
}
