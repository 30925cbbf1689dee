package chaos

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/e2e/load"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
)

// Mail is a message the SMTP sink accepted, and when.
type Mail struct {
	To, Subject string
	At          time.Time
}

// Window is a span of time: an outage.
type Window struct{ From, To time.Time }

// Platform is what Checks reads: the databases, the event stream, what
// the SMTP sink got, and Consul.
type Platform struct {
	Databases    *load.Databases
	Notification *sqlx.DB
	// Outboxes are the databases of every service with an outbox, by name.
	Outboxes map[string]*sqlx.DB
	Redis    *redis.Client
	// Groups are the consumer groups that must be on the event stream: one
	// per service that consumes events, named after it.
	Groups []string
	// Mails is what the SMTP sink holds now.
	Mails func() []Mail
	// SMTPOutage, when set, is when the sink was down.
	SMTPOutage *Window
	Consul     *api.Client
	// Instances is how many instances of each service should be passing.
	Instances map[string]int
	// Drain bounds the wait for outboxes, consumer groups, emails and
	// instances to reach their final state (default 60 s).
	Drain time.Duration
}

// Checks are the chaos invariants beyond the load run's: each confirmed
// order charged once, its email sent once and received once, outboxes
// and consumer groups drained, dead letters named with their reason, and
// every instance back, passing and with its breakers closed. Those that
// converge (a relay, a retry) are polled until they hold or Drain passes.
func (p *Platform) Checks(ctx context.Context, r *Report) []load.Invariant {
	drain := p.Drain
	if drain == 0 {
		drain = time.Minute
	}
	deadline := time.Now().Add(drain)
	eventually := func(check func(context.Context) load.Invariant) load.Invariant {
		for {
			inv := check(ctx)
			if inv.OK || time.Now().After(deadline) || !sleep(ctx, 500*time.Millisecond) {
				return inv
			}
		}
	}
	return []load.Invariant{
		p.placed(ctx, r.Load),
		eventually(p.charges), // a cancelled order's refund may still be on its way
		eventually(p.emails),
		eventually(p.outboxes),
		eventually(p.consumerGroups),
		p.deadLetters(ctx),
		eventually(p.instances),
	}
}

// placed: no order exists that no client placed — every order not
// acknowledged is one of the checkouts the load generator sent and saw
// fail (a timeout, a 5xx: the order was made, its answer lost).
func (p *Platform) placed(ctx context.Context, r *load.Report) load.Invariant {
	const name = "no order that no client placed"
	var total int
	if err := p.Databases.Order.GetContext(ctx, &total, `SELECT count(*) FROM orders`); err != nil {
		return load.Result(name, "", nil, err)
	}
	unanswered := 0
	for _, sc := range r.Scenarios {
		if sc.Scenario == load.Checkout {
			for code, n := range sc.Total.Statuses {
				if code == "0" || strings.HasPrefix(code, "5") {
					unanswered += n
				}
			}
		}
	}
	extra := total - len(r.Orders)
	var v []string
	if extra > unanswered {
		v = append(v, fmt.Sprintf("%d orders exist that were not acknowledged, but only %d checkouts went unanswered or failed with a 5xx", extra, unanswered))
	}
	return load.Result(name, fmt.Sprintf("%d orders: %d acknowledged, %d of the %d checkouts whose answer was lost or a 5xx", total, len(r.Orders), extra, unanswered), v, nil)
}

// Which orders orderIDs lists, as the conditions of a WHERE on orders o.
const (
	paid    = `o.status IN ('confirmed', 'shipped', 'delivered')`
	notPaid = `o.status NOT IN ('confirmed', 'shipped', 'delivered', 'pending')` // final, and not paid
	// Never confirmed, whatever came after.
	neverConfirmed = `NOT EXISTS (SELECT 1 FROM order_status_history h WHERE h.order_id = o.id AND h.status = 'confirmed')`
)

// orderIDs are the ids of the orders that meet each condition, a list a
// condition.
func (p *Platform) orderIDs(ctx context.Context, conds ...string) ([][]string, error) {
	lists := make([][]string, len(conds))
	for i, cond := range conds {
		if err := p.Databases.Order.SelectContext(ctx, &lists[i], `SELECT id::text FROM orders o WHERE `+cond); err != nil {
			return nil, err
		}
	}
	return lists, nil
}

// paymentCharges is a payment of an order, whether it is captured, and
// its sandbox charges: those that succeeded, and of them those not refunded
// in full.
type paymentCharges struct {
	OrderID  string `db:"order_id"`
	Captured bool   `db:"captured"`
	Charges  int    `db:"charges"`
	Kept     int    `db:"kept"`
}

// charges: each confirmed order has exactly one captured payment and one
// succeeded sandbox charge; no other order that is final (not pending: its
// charge may still be on its way) has a succeeded charge that was not
// refunded in full.
func (p *Platform) charges(ctx context.Context) load.Invariant {
	const name = "one captured payment and one sandbox charge per confirmed order"
	var rows []paymentCharges
	if err := p.Databases.Payment.SelectContext(ctx, &rows, `
		SELECT p.order_id::text AS order_id, p.captured_amount > 0 AS captured,
		       count(c.id) FILTER (WHERE c.outcome = 'succeeded') AS charges,
		       count(c.id) FILTER (WHERE c.outcome = 'succeeded' AND c.refunded_amount < c.amount) AS kept
		FROM payments p LEFT JOIN sandbox_charges c ON c.payment_id = p.id
		GROUP BY p.id, p.order_id, p.captured_amount`); err != nil {
		return load.Result(name, "", nil, err)
	}
	lists, err := p.orderIDs(ctx, paid, notPaid)
	if err != nil {
		return load.Result(name, "", nil, err)
	}
	ids, unpaid := lists[0], lists[1]
	charges, captured, kept := map[string]int{}, map[string]int{}, map[string]int{}
	for _, r := range rows {
		charges[r.OrderID] += r.Charges
		kept[r.OrderID] += r.Kept
		if r.Captured {
			captured[r.OrderID]++
		}
	}
	var v []string
	for _, id := range ids {
		if captured[id] != 1 || charges[id] != 1 {
			v = append(v, fmt.Sprintf("order %s: %d captured payments, %d sandbox charges", id, captured[id], charges[id]))
		}
	}
	for _, id := range unpaid {
		if kept[id] > 0 {
			v = append(v, fmt.Sprintf("order %s: not paid, yet %d succeeded sandbox charges not refunded in full", id, kept[id]))
		}
	}
	return load.Result(name, fmt.Sprintf("%d confirmed orders, each one payment captured and one charge; none of the %d orders not paid charged and not refunded",
		len(ids), len(unpaid)), v, nil)
}

// emails: each confirmed order's confirmation is sent exactly once by the
// log, and the sink holds it exactly once; those logged during the SMTP
// outage were received after it; an order that was never confirmed (a
// capture that raced its cancellation among them) got none.
func (p *Platform) emails(ctx context.Context) load.Invariant {
	const name = "each confirmed order's email sent once, log and SMTP sink agree, none for an order never confirmed"
	lists, err := p.orderIDs(ctx, paid, neverConfirmed)
	if err != nil {
		return load.Result(name, "", nil, err)
	}
	ids, never := lists[0], lists[1]
	var numbers []struct {
		ID     string `db:"id"`
		Number string `db:"order_number"`
	}
	if err := p.Databases.Order.SelectContext(ctx, &numbers, `SELECT id::text AS id, order_number FROM orders`); err != nil {
		return load.Result(name, "", nil, err)
	}
	number := map[string]string{}
	for _, n := range numbers {
		number[n.ID] = n.Number
	}
	var logged []struct {
		Key     string    `db:"dedupe_key"`
		Status  string    `db:"status"`
		Created time.Time `db:"created_at"`
	}
	if err := p.Notification.SelectContext(ctx, &logged, `SELECT dedupe_key, status, created_at FROM notifications
		WHERE template = 'order_confirmed' AND channel = 'email'`); err != nil {
		return load.Result(name, "", nil, err)
	}
	sent := map[string]int{}
	created := map[string]time.Time{}
	for _, l := range logged {
		id := strings.TrimPrefix(l.Key, "order_confirmed:")
		if l.Status == "sent" {
			sent[id]++
		}
		created[id] = l.Created
	}
	received := map[string][]time.Time{}
	for _, m := range p.Mails() {
		received[m.Subject] = append(received[m.Subject], m.At)
	}
	var v []string
	for _, id := range never {
		got := len(received["Order "+number[id]+" confirmed"]) + len(received["Order "+strings.ToUpper(id[:8])+" confirmed"])
		if sent[id] > 0 || got > 0 {
			v = append(v, fmt.Sprintf("order %s: never confirmed, yet its confirmation was sent %d times by the log, received %d times by the sink", id, sent[id], got))
		}
	}
	delayed := 0
	for _, id := range ids {
		subject := "Order " + number[id] + " confirmed"
		got := append(received[subject], received["Order "+strings.ToUpper(id[:8])+" confirmed"]...)
		if sent[id] != 1 || len(got) != 1 {
			var at []string
			for _, a := range got {
				at = append(at, a.Format("15:04:05.000"))
			}
			v = append(v, fmt.Sprintf("order %s: sent %d times by the log, received %d times by the sink (at %s), logged at %s",
				id, sent[id], len(got), strings.Join(at, ", "), created[id].Format("15:04:05.000")))
			continue
		}
		if w := p.SMTPOutage; w != nil && created[id].After(w.From) && created[id].Before(w.To) {
			delayed++
			if got[0].Before(w.To) {
				v = append(v, fmt.Sprintf("order %s: logged during the SMTP outage, received at %s, before it ended", id, got[0].Format(time.TimeOnly)))
			}
		}
	}
	return load.Result(name, fmt.Sprintf("%d confirmation emails, once each in the log and the sink, %d delayed by the SMTP outage and received after it; none for %d orders never confirmed",
		len(ids), delayed, len(never)), v, nil)
}

// outboxes: no service has an event left unpublished.
func (p *Platform) outboxes(ctx context.Context) load.Invariant {
	const name = "outboxes drained"
	var v []string
	names := slices.Sorted(maps.Keys(p.Outboxes))
	for _, svc := range names {
		var n int
		if err := p.Outboxes[svc].GetContext(ctx, &n, `SELECT count(*) FROM outbox WHERE published_at IS NULL`); err != nil {
			return load.Result(name, "", nil, fmt.Errorf("%s: %w", svc, err))
		}
		if n > 0 {
			v = append(v, fmt.Sprintf("%s: %d events unpublished", svc, n))
		}
	}
	return load.Result(name, "no unpublished event in the outbox of "+strings.Join(names, ", "), v, nil)
}

// consumerGroups: every group of Groups is on the event stream (a group
// its consumers never created has read nothing), and every group there has
// acknowledged all it was given and has nothing left to read.
func (p *Platform) consumerGroups(ctx context.Context) load.Invariant {
	const name = "no event unacknowledged in a consumer group"
	groups, err := p.Redis.XInfoGroups(ctx, events.DefaultStream).Result()
	if err != nil {
		return load.Result(name, "", nil, err)
	}
	var v, names []string
	for _, g := range groups {
		names = append(names, g.Name)
		if g.Lag < 0 {
			// Redis cannot count the lag (entries past the group's position
			// were deleted): the group has some left if one follows the last
			// it was given.
			next, err := p.Redis.XRangeN(ctx, events.DefaultStream, "("+g.LastDeliveredID, "+", 1).Result()
			if err != nil {
				return load.Result(name, "", nil, err)
			}
			g.Lag = int64(len(next))
		}
		if g.Pending > 0 || g.Lag > 0 {
			v = append(v, fmt.Sprintf("group %s: %d pending, %d not yet read", g.Name, g.Pending, g.Lag))
		}
	}
	for _, g := range p.Groups {
		if !slices.Contains(names, g) {
			v = append(v, fmt.Sprintf("group %s: not on the stream, its consumers never joined", g))
		}
	}
	if len(groups) == 0 {
		v = append(v, "no consumer group on the stream")
	}
	return load.Result(name, fmt.Sprintf("%d groups (%s), none pending", len(groups), strings.Join(names, ", ")), v, nil)
}

// deadLetters lists the dead letters with their reason; one without a
// reason fails.
func (p *Platform) deadLetters(ctx context.Context) load.Invariant {
	const name = "dead letters listed with their reason"
	msgs, err := p.Redis.XRange(ctx, events.DefaultDeadLetterStream, "-", "+").Result()
	if err != nil {
		return load.Result(name, "", nil, err)
	}
	var v, listed []string
	for _, m := range msgs {
		reason, _ := m.Values["error"].(string)
		line := fmt.Sprintf("%v in %v: %s", m.Values["entry_id"], m.Values["group"], reason)
		if reason == "" {
			v = append(v, "dead letter "+m.ID+" has no reason")
		}
		listed = append(listed, line)
	}
	detail := "none"
	if len(listed) > 0 {
		detail = fmt.Sprintf("%d: %s", len(listed), strings.Join(listed[:min(5, len(listed))], "; "))
	}
	return load.Result(name, detail, v, nil)
}

// instances: every service has its instances passing in Consul, and none
// of them has a circuit breaker open (circuit_breaker_open on /metrics).
// A breaker's series appears with its first call, so an instance that
// calls no upstream has none; but none on any instance means the gauge
// was not read at all (renamed, say), which fails.
func (p *Platform) instances(ctx context.Context) load.Invariant {
	const name = "every instance back, passing in Consul, breakers closed"
	var v []string
	total, breakers := 0, 0
	for _, svc := range slices.Sorted(maps.Keys(p.Instances)) {
		entries, _, err := p.Consul.Health().Service(svc, "", true, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return load.Result(name, "", nil, err)
		}
		if len(entries) != p.Instances[svc] {
			v = append(v, fmt.Sprintf("%s: %d passing, want %d", svc, len(entries), p.Instances[svc]))
		}
		for _, e := range entries {
			total++
			addr := net.JoinHostPort(e.Service.Address, strconv.Itoa(e.Service.Port))
			if port := e.Service.Meta[discovery.AdminPortMeta]; port != "" {
				addr = net.JoinHostPort(e.Service.Address, port)
			}
			open, series, err := breakersOpen(ctx, addr)
			breakers += series
			if err != nil {
				v = append(v, fmt.Sprintf("%s %s: %v", svc, addr, err))
			} else if open > 0 {
				v = append(v, fmt.Sprintf("%s %s: %g breakers open", svc, addr, open))
			}
		}
	}
	if total > 0 && breakers == 0 {
		v = append(v, fmt.Sprintf("no circuit_breaker_open series on the /metrics of any of the %d instances: no breaker was read", total))
	}
	return load.Result(name, fmt.Sprintf("%d instances passing, every one of %d breakers closed", total, breakers), v, nil)
}

// breakersOpen sums circuit_breaker_open on addr's /metrics, and counts
// its series.
func breakersOpen(ctx context.Context, addr string) (open float64, series int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "circuit_breaker_open{") || strings.HasPrefix(line, "circuit_breaker_open ") {
			f := strings.Fields(line)
			x, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/metrics: %q: %w", line, err)
			}
			open += x
			series++
		}
	}
	return open, series, nil
}
