package notification

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/wait"
)

// DispatchStore is the store side of sending.
type DispatchStore interface {
	// ClaimDue takes the oldest due pending or retrying notification on one
	// of channels that no one else holds (FOR UPDATE SKIP LOCKED), counts
	// the attempt, marks it with claimID and pushes its next_attempt_at
	// lease ahead, so that if this process dies mid-send, another takes it
	// over once the lease is over. ok is false when nothing is due. A
	// notification on a channel this instance has no provider for is left
	// to an instance that has one (a rolling deploy that adds SMS, say).
	ClaimDue(ctx context.Context, claimID string, channels []Channel, lease time.Duration) (n Notification, ok bool, err error)
	// RecordAttempt stores the outcome of the attempt claimID made. It
	// reports ErrClaimLost when the claim no longer holds (the lease ran out
	// and another attempt took over), and records nothing then.
	RecordAttempt(ctx context.Context, r AttemptResult) error
	// OrderSummary reports ErrNotFound for an order whose order.created has
	// not been received.
	OrderSummary(ctx context.Context, orderID string) (OrderSummary, error)
	// PushToken returns "" when the user has none.
	PushToken(ctx context.Context, userID string) (string, error)
	// Preferences returns DefaultPreferences for a user who never set any.
	Preferences(ctx context.Context, userID string) (Preferences, error)
}

// AttemptResult is the outcome of one attempt at a notification.
type AttemptResult struct {
	ID            string
	ClaimID       string
	Status        Status // sent, retrying, failed or skipped
	Recipient     string
	ProviderID    string
	Error         string
	NextAttemptAt time.Time // when Status is retrying, by this instance's clock: for the logs
	// RetryIn is, when Status is retrying, how long after the outcome is
	// recorded the next attempt is due by the store's clock, the one
	// ClaimDue compares with: an instance's own clock may be seconds off.
	RetryIn time.Duration
}

// ErrClaimLost is RecordAttempt's answer to an attempt that overran its lease.
var ErrClaimLost = errors.New("notification: the attempt's claim was taken over")

// Dispatcher sends due notifications: it resolves the recipient (contact data
// from the user service, the push token from the store), renders the
// template and hands the message to the channel's Sender, all outside any
// database transaction, then records the outcome. Transient failures are
// retried with exponential backoff until MaxAttempts, then the notification
// is failed; permanent ones fail at once. Attempts that ended without an
// outcome (their process stopped mid-send) count towards MaxAttempts too.
//
// Each channel has Workers of its own, so a provider that hangs (an SMTP
// server that takes connections and never answers) holds up only its own
// channel's messages, for an attempt's timeout each, not the others'.
//
// Run one in every instance: claims are row locks with SKIP LOCKED, so
// instances share the work and never send the same notification at once.
type Dispatcher struct {
	Store    DispatchStore      // required
	Contacts Contacts           // required
	Senders  map[Channel]Sender // required: the configured channels
	Renderer *Renderer          // required

	Workers        int           // notifications sent concurrently on each channel; default 4
	PollInterval   time.Duration // wait when nothing is due; default 500ms
	AttemptTimeout time.Duration // bound on one attempt (lookups and send); default 30s
	MaxAttempts    int           // attempts before a notification fails; default 10
	Backoff        time.Duration // wait after the first failed attempt, doubling after each; default 2s
	MaxBackoff     time.Duration // longest wait between attempts; default 5m

	Logger  log.Logger       // default log.NewNopLogger()
	Metrics *DispatchMetrics // nil records nothing
}

func (d *Dispatcher) withDefaults() Dispatcher {
	c := *d
	c.Workers = defaults.Positive(c.Workers, 4)
	c.MaxAttempts = defaults.Positive(c.MaxAttempts, 10)
	c.PollInterval = defaults.Positive(c.PollInterval, 500*time.Millisecond)
	c.AttemptTimeout = defaults.Positive(c.AttemptTimeout, 30*time.Second)
	c.Backoff = defaults.Positive(c.Backoff, 2*time.Second)
	c.MaxBackoff = defaults.Positive(c.MaxBackoff, 5*time.Minute)
	c.Logger = defaults.Logger(c.Logger)
	return c
}

// lease is how long a claimed notification stays out of other workers'
// reach: past the attempt's own deadline, so only a dead process loses it.
func (d *Dispatcher) lease() time.Duration { return 2*d.AttemptTimeout + 5*time.Second }

// Run sends until ctx is done, then lets the attempts in flight finish
// (within AttemptTimeout; a store that fails to record their outcomes holds
// them until their lease ends) and returns nil.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Store == nil || d.Contacts == nil || d.Renderer == nil || len(d.Senders) == 0 {
		return errors.New("notification: dispatcher needs Store, Contacts, Renderer and Senders")
	}
	c := d.withDefaults()
	var wg sync.WaitGroup
	for ch := range c.Senders {
		for range c.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.work(ctx, ch)
			}()
		}
	}
	wg.Wait()
	return nil
}

func (d *Dispatcher) work(ctx context.Context, ch Channel) {
	failing := false // log a store outage once, not once per poll
	for ctx.Err() == nil {
		claimed, err := d.sendNext(ctx, ch)
		var pause time.Duration
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				level.Error(d.Logger).Log("msg", "dispatcher: store unavailable; retrying", "err", err)
				failing = true
			}
			pause = d.PollInterval + rand.N(d.PollInterval) //nolint:gosec // jitter, not a secret
		case !claimed:
			if failing {
				level.Info(d.Logger).Log("msg", "dispatcher: store available again")
				failing = false
			}
			// Jitter, so the workers of all instances spread their polls.
			pause = d.PollInterval/2 + rand.N(d.PollInterval) //nolint:gosec // jitter, not a secret
		}
		if pause > 0 {
			wait.For(ctx, pause)
		}
	}
}

// sendNext makes one attempt at the next due notification on ch, reporting
// whether there was one.
func (d *Dispatcher) sendNext(ctx context.Context, ch Channel) (bool, error) {
	claimID := uuid.NewString()
	leaseEnd := time.Now().Add(d.lease()) // the store's lease ends no sooner
	n, ok, err := d.Store.ClaimDue(ctx, claimID, []Channel{ch}, d.lease())
	if err != nil || !ok {
		return false, err
	}
	// The attempt is not cut short by shutdown: abandoning a send halfway
	// would only make it uncertain whether the user got the message.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.AttemptTimeout)
	defer cancel()
	begin := time.Now()
	res := d.attempt(actx, n)
	res.ID, res.ClaimID = n.ID, claimID
	res.ProviderID, res.Error = storable(res.ProviderID, maxProviderID), storable(res.Error, maxError)
	d.Metrics.observe(n, res, time.Since(begin))

	logger := log.With(d.Logger, "notification_id", n.ID, "channel", n.Channel, "template", n.Template,
		"attempt", n.Attempts, "status", res.Status)
	switch res.Status {
	case StatusSent:
		level.Debug(logger).Log("msg", "notification sent", "provider_id", res.ProviderID)
	case StatusRetrying:
		level.Warn(logger).Log("msg", "notification attempt failed; will retry", "next_attempt_at", res.NextAttemptAt, "err", res.Error)
	default:
		level.Info(logger).Log("msg", "notification not sent", "err", res.Error)
	}

	if err := d.record(ctx, res, leaseEnd, logger); err != nil {
		if errors.Is(err, ErrClaimLost) {
			level.Warn(logger).Log("msg", "attempt overran its lease; another attempt took over")
			return true, nil
		}
		// The claim stays; the attempt is taken over after the lease as an
		// interrupted one.
		return true, fmt.Errorf("record attempt of %s: %w", n.ID, err)
	}
	return true, nil
}

// record stores the outcome res, trying again while the store fails, for as
// long as the claim's lease holds: an outcome not recorded has the
// notification taken over after the lease, and a message that was sent is
// then sent a second time (a database restart under a send did that). It
// has a context of its own, not cut short by shutdown: the outcome must be
// stored even when the attempt used up its time.
func (d *Dispatcher) record(ctx context.Context, res AttemptResult, leaseEnd time.Time, logger log.Logger) error {
	rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), leaseEnd)
	defer cancel()
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		err := d.Store.RecordAttempt(rctx, res)
		if err == nil || errors.Is(err, ErrClaimLost) || time.Now().Add(pause).After(leaseEnd) {
			return err
		}
		if pause == 100*time.Millisecond {
			level.Warn(logger).Log("msg", "could not record the attempt's outcome; trying again until its lease ends",
				"lease_ends", leaseEnd, "err", err)
		}
		wait.For(rctx, pause)
	}
}

// What the notifications table keeps of an attempt: provider_id is
// VARCHAR(255); an error needs no more than a few lines.
const (
	maxProviderID = 255
	maxError      = 1000
)

// attempt makes one attempt at n and says what became of it.
func (d *Dispatcher) attempt(ctx context.Context, n Notification) AttemptResult {
	if n.Attempts > d.MaxAttempts {
		// Only attempts that never recorded an outcome get here (a recorded
		// one fails the notification at MaxAttempts): one that crashes its
		// process, say, would otherwise be claimed again every lease.
		return d.failed(fmt.Errorf("gave up after %d attempts, %d of which ended without an outcome (the process stopped mid-send)",
			n.Attempts-1, n.InterruptedAttempts))
	}
	sender, ok := d.Senders[n.Channel]
	if !ok {
		return d.failed(fmt.Errorf("channel %s is not configured on this instance", n.Channel))
	}
	// The preferences as they are now: a channel switched off while the
	// message waited (retried through an outage, or for order.created)
	// stays off.
	prefs, err := d.Store.Preferences(ctx, n.UserID)
	if err != nil {
		return d.retry(n, fmt.Errorf("preferences lookup: %w", err), "")
	}
	if !prefs.allows(n.Channel, templateSpecs[n.Template]) {
		return AttemptResult{Status: StatusSkipped, Error: switchedOff}
	}
	contact, err := d.Contacts.Contact(ctx, n.UserID)
	switch {
	case errors.Is(err, ErrUnknownUser):
		return d.failed(fmt.Errorf("user %s: %w", n.UserID, err))
	case err != nil:
		return d.retry(n, fmt.Errorf("contact lookup: %w", err), "")
	}

	var to string
	switch n.Channel {
	case ChannelEmail:
		to = contact.Email
	case ChannelSMS:
		to = contact.Phone
		if to == "" {
			return AttemptResult{Status: StatusSkipped, Error: "the user has no phone number"}
		}
	case ChannelPush:
		if to, err = d.Store.PushToken(ctx, n.UserID); err != nil {
			return d.retry(n, fmt.Errorf("push token lookup: %w", err), "")
		}
		if to == "" {
			return AttemptResult{Status: StatusSkipped, Error: "no push token registered"}
		}
	}

	// The order's summary, for the templates that list its lines, and for
	// any other whose event does not name the order's number (order.cancelled,
	// payment.failed, payment.refunded), which it then names by its summary's.
	var order *OrderSummary
	if spec := templateSpecs[n.Template]; n.Details.OrderID != "" && (spec.needsOrder || n.Details.OrderNumber == "") {
		o, err := d.Store.OrderSummary(ctx, n.Details.OrderID)
		switch {
		case err == nil:
			order = &o
		case !errors.Is(err, ErrNotFound):
			return d.retry(n, fmt.Errorf("order summary lookup: %w", err), to)
		case spec.needsOrder && n.Attempts < d.MaxAttempts:
			// Events of different services may arrive out of order: give
			// order.created the backoff's time to come, then send without
			// the lines rather than not at all.
			return d.retry(n, fmt.Errorf("waiting for order.created of order %s", n.Details.OrderID), to)
		}
	}

	msg, err := d.Renderer.Render(n.Template, n.Channel, newTemplateData(contact, n.Details, order))
	if err != nil {
		return d.failed(err)
	}
	msg.ID, msg.To = n.ID, to
	providerID, err := sender.Send(ctx, msg)
	switch {
	case err == nil:
		res := AttemptResult{Status: StatusSent, Recipient: to, ProviderID: providerID}
		if n.InterruptedAttempts > 0 {
			res.Error = fmt.Sprintf("sent on attempt %d after %d attempt(s) that ended without an outcome "+
				"(the process stopped mid-send): if one of them had reached the provider, the recipient has a duplicate",
				n.Attempts, n.InterruptedAttempts)
		}
		return res
	case IsPermanent(err):
		res := d.failed(err)
		res.Recipient = to
		return res
	default:
		return d.retry(n, err, to)
	}
}

func (d *Dispatcher) failed(err error) AttemptResult {
	return AttemptResult{Status: StatusFailed, Error: err.Error()}
}

// retry schedules another attempt after an exponential backoff, or fails n
// when it has had MaxAttempts.
func (d *Dispatcher) retry(n Notification, err error, recipient string) AttemptResult {
	if n.Attempts >= d.MaxAttempts {
		return AttemptResult{Status: StatusFailed, Recipient: recipient,
			Error: fmt.Sprintf("gave up after %d attempts: %v", n.Attempts, err)}
	}
	wait := d.backoff(n.Attempts)
	return AttemptResult{Status: StatusRetrying, Recipient: recipient, Error: err.Error(),
		RetryIn: wait, NextAttemptAt: time.Now().Add(wait)}
}

// backoff is the wait after attempt number attempts: Backoff doubling per
// attempt up to MaxBackoff, with up to a quarter of jitter so notifications
// that failed together do not all come back at once.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	wait := d.Backoff
	for i := 1; i < attempts && wait < d.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, d.MaxBackoff)
	return wait - rand.N(wait/4+1) //nolint:gosec // jitter, not a secret
}
