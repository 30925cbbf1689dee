package load

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Run registers and signs in the shoppers, sends the mix at the rate for
// the duration, waits for the acknowledged orders to settle and checks the
// invariants. A cancelled ctx stops the requests early and returns what
// was seen with ctx's error. Only a setup failure or a bad Config returns
// no report; a failed invariant is in the report (Report.OK).
func Run(ctx context.Context, c Config) (*Report, error) {
	c, err := c.Checked()
	if err != nil {
		return nil, err
	}
	hc := newHTTPClient(c)
	began := time.Now()
	s, err := openShop(ctx, c, hc)
	if err != nil {
		return nil, fmt.Errorf("setting up the run: %w", err)
	}
	r := &Report{Label: c.Label, Target: c.Target, Rate: c.Rate, DurationSeconds: c.Duration.Seconds(), Users: c.Users,
		Mix: FormatMix(c.Mix), SetupSeconds: time.Since(began).Seconds(), Started: time.Now()}
	col := newCollector(r.Started)
	if c.OnStart != nil {
		c.OnStart(r.Started)
	}
	if err := s.attack(ctx, c, hc, col); err != nil {
		col.report(r)
		r.Orders = s.acknowledged()
		return r, err
	}
	col.report(r)

	status := s.apiStatus(hc)
	if c.Databases != nil {
		status = c.Databases.orderStatus
	}
	orders, err := settle(ctx, s.acknowledged(), status, c.Settle)
	r.Orders = orders
	if err != nil {
		return r, err
	}
	r.Invariants = append(r.Invariants, acknowledgedFinal(orders, c.Settle))
	if c.Databases != nil {
		// Settled from the database: what the shoppers are shown is read
		// of the API, for ordersInvariant to hold against the database.
		shown, err := readAll(ctx, orders, s.apiStatus(hc), apiReadTimeout)
		if err != nil {
			return r, err
		}
		r.Invariants = append(r.Invariants, c.Databases.check(ctx, orders, shown)...)
	}
	return r, ctx.Err()
}

// attack runs one vegeta attack per scenario at its share of the rate,
// all at once, feeding col, and prints a progress line every so often.
func (s *shop) attack(ctx context.Context, c Config, hc *http.Client, col *collector) error {
	var wg sync.WaitGroup
	var attackers []*vegeta.Attacker
	for sc, rate := range rates(c.Rate, c.Mix) {
		atk := vegeta.NewAttacker(vegeta.Client(hc), vegeta.MaxWorkers(uint64(c.MaxWorkers))) //nolint:gosec // G115: Checked keeps it ≥ 1
		attackers = append(attackers, atk)
		// Per minute, so a scenario's share of a low rate is not rounded
		// to a whole number per second.
		pacer := vegeta.ConstantPacer{Freq: max(1, int(math.Round(rate*60))), Per: time.Minute}
		results := atk.Attack(s.targeter(sc), pacer, c.Duration, string(sc))
		wg.Go(func() {
			for res := range results {
				col.add(sc, res)
				if sc == Checkout && res.Code == http.StatusCreated {
					if o, ok := orderOf(res.Body); ok {
						s.acknowledge(o)
					}
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(c.ProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			// The answers since the last line, unless too few moments of
			// them to make a rate of: the table comes next anyway.
			if now := time.Now(); c.Progress != nil && col.sinceShown(now) >= c.ProgressEvery/2 {
				fmt.Fprintln(c.Progress, col.progress(now, c.Duration))
			}
			return nil
		case <-ctx.Done():
			for _, a := range attackers {
				a.Stop()
			}
			<-done
			return ctx.Err()
		case now := <-tick.C:
			if c.Progress != nil {
				fmt.Fprintln(c.Progress, col.progress(now, c.Duration))
			}
		}
	}
}

// newHTTPClient is the client of every request of a run: a deadline on
// each, and idle connections enough for the requests in flight.
func newHTTPClient(c Config) *http.Client {
	return &http.Client{
		Timeout: c.Timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        c.MaxWorkers,
			MaxIdleConnsPerHost: c.MaxWorkers,
			IdleConnTimeout:     90 * time.Second,
		},
		// Every route answers itself; a redirect would be a bug to see.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// orderOf reads the order of a 201 answer to POST /orders.
func orderOf(body []byte) (Order, bool) {
	var out struct {
		Order struct {
			ID      string `json:"id"`
			UserID  string `json:"user_id"`
			Status  string `json:"status"`
			Total   string `json:"total_amount"`
			Payment *struct {
				Card struct {
					Last4 string `json:"last4"`
				} `json:"card"`
			} `json:"payment"`
		} `json:"order"`
	}
	if json.Unmarshal(body, &out) != nil || out.Order.ID == "" {
		return Order{}, false
	}
	o := Order{ID: out.Order.ID, UserID: out.Order.UserID, Total: out.Order.Total, Status: out.Order.Status}
	if out.Order.Payment != nil {
		o.Last4 = out.Order.Payment.Card.Last4
	}
	o.Expected = ExpectedStatus(o.Last4)
	return o, true
}

// statusSource reads the current status of orders, by id.
type statusSource func(ctx context.Context, orders []Order) (map[string]string, error)

// apiReadTimeout bounds readAll's retries of the reads that failed.
const apiReadTimeout = 30 * time.Second

// readAll reads the status of every order, asking again for those not
// read, until all are or timeout passes.
func readAll(ctx context.Context, orders []Order, status statusSource, timeout time.Duration) (map[string]string, error) {
	deadline := time.Now().Add(timeout)
	out := map[string]string{}
	for {
		var missing []Order
		for _, o := range orders {
			if _, ok := out[o.ID]; !ok {
				missing = append(missing, o)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return out, nil
		}
		got, err := status(ctx, missing)
		if err != nil {
			return out, fmt.Errorf("reading the orders' status: %w", err)
		}
		maps.Copy(out, got)
		if len(got) < len(missing) {
			select {
			case <-ctx.Done():
				return out, ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// finalStatuses are the order statuses nothing moves on by itself.
var finalStatuses = []string{"confirmed", "shipped", "delivered", "cancelled", "refunded"}

// settle waits until every order is final, or timeout passes, and returns
// the orders with the status each had last.
func settle(ctx context.Context, orders []Order, status statusSource, timeout time.Duration) ([]Order, error) {
	deadline := time.Now().Add(timeout)
	for {
		var open []Order
		for _, o := range orders {
			if !slices.Contains(finalStatuses, o.Status) {
				open = append(open, o)
			}
		}
		if len(open) == 0 {
			return orders, nil
		}
		got, err := status(ctx, open)
		if err != nil {
			return orders, fmt.Errorf("reading the orders' status: %w", err)
		}
		for i := range orders {
			if st, ok := got[orders[i].ID]; ok {
				orders[i].Status = st
			}
		}
		if time.Now().After(deadline) {
			return orders, nil
		}
		select {
		case <-ctx.Done():
			return orders, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// acknowledgedFinal is the first invariant: every order the platform
// acknowledged reached a final state, the one its card leads to.
func acknowledgedFinal(orders []Order, waited time.Duration) Invariant {
	inv := Invariant{Name: "acknowledged orders final"}
	var wrong []string
	by := map[string]int{}
	for _, o := range orders {
		by[o.Status]++
		if o.Status != o.Expected {
			wrong = append(wrong, fmt.Sprintf("%s (card %s) is %s, want %s", o.ID, o.Last4, o.Status, o.Expected))
		}
	}
	inv.OK = len(wrong) == 0
	inv.Detail = fmt.Sprintf("%d orders acknowledged, %d confirmed, %d cancelled, as their cards say", len(orders), by["confirmed"], by["cancelled"])
	if !inv.OK {
		inv.Detail = fmt.Sprintf("%d of %d orders not in the final state their card leads to %s after the run, e.g. %s",
			len(wrong), len(orders), waited, wrong[0])
	}
	return inv
}
