package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	orderpg "github.com/mercato-dev/mercato/order/postgres"
)

// BenchmarkCheckout measures checkouts end to end through the gateway, on
// the platform of TestCheckout (two instances of every service, the gateway,
// PostgreSQL, Redis, Consul; real binaries), and PostgreSQL's own ceiling
// for the same checkouts:
//
//   - clients=N: N customers each place an order (POST /orders with a
//     4242 card and an Idempotency-Key of its own, as the storefront sends)
//     through the gateway, wait until it is confirmed — the saga done:
//     reservation, charge, webhook, payment.processed, commit — then place
//     the next. b.N orders in all, for N = 1, 8 and 32. Reported: confirmed
//     checkouts per second, the p50/p99 latency of POST /orders and of the
//     whole checkout (POST until confirmed, seen by watchOrders), and
//     cpu_ms/checkout, the CPU time the platform's processes (services,
//     gateway, PostgreSQL, Redis, this client) used per checkout, with its
//     breakdown logged: unlike throughput and latency, other load on a
//     shared machine hardly moves it, so runs compare by it.
//   - pgbench/clients=N: scripts/pgbench-checkout.sql, every transaction
//     one such checkout makes in the order, product and payment databases
//     (outbox, relays, inbox, idempotency and webhook rows, the sandbox
//     processor's rows, the reads inside and between them), with pgbench on
//     a scratch database of the same PostgreSQL server holding the three
//     as schemas, 5 checkouts per b.N. Reported: checkouts per second — the
//     ceiling — and e2e/ceiling, the end-to-end figure of clients=N over it.
//
// make bench-checkout runs it:
//
//	go test ./e2e -run '^$' -bench BenchmarkCheckout -benchtime 400x -timeout 30m
//
// The sandbox confirms charges at once here (-webhook-delay 0s), so the
// figures are the platform's, not the simulated card network's.
func BenchmarkCheckout(b *testing.B) {
	p := startCheckoutPlatform(b, checkoutOptions{webhookDelay: "0s", logLevel: "warn"})
	mug := p.seed(b, "Bench Mug", "19.99", 1_000_000_000)
	customers := map[int][]string{} // access tokens, per client count
	endToEnd := map[int]float64{}   // confirmed checkouts/s, per client count

	for _, clients := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			if customers[clients] == nil {
				for range clients {
					_, token := p.customer(b)
					customers[clients] = append(customers[clients], token)
				}
			}
			body := mustJSON(b, checkoutBody(cardOK, checkoutLine{mug, 1}))
			var (
				next              atomic.Int64
				mu                sync.Mutex
				postLat, checkLat []time.Duration
				failures          []string
				wg                sync.WaitGroup
			)
			fail := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, fmt.Sprintf(format, args...))
			}
			watch := watchOrders(b, p.db["order"], p.dbURL["order"])
			// Each order its own Idempotency-Key, as the storefront and the
			// load generator send: the key's row is part of a checkout's work.
			run := strconv.FormatInt(time.Now().UnixNano(), 36)
			b.ResetTimer()
			cpuBefore := p.cpuUse(b)
			for _, token := range customers[clients] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						begin := time.Now()
						r, err := p.send("POST", "/api/v1/orders", token, body, "Idempotency-Key", fmt.Sprintf("bench-%s-%d", run, n))
						posted := time.Since(begin)
						if err != nil || r.Status != 201 {
							fail("POST /orders: %d %s %v", r.Status, r.Body, err)
							continue
						}
						var out struct {
							Order struct {
								ID string `json:"id"`
							} `json:"order"`
						}
						if err := json.Unmarshal(r.Body, &out); err != nil {
							fail("POST /orders answer: %v", err)
							continue
						}
						if status := watch(out.Order.ID, time.Minute); status != "confirmed" {
							fail("order %s ended %q", out.Order.ID, status)
							continue
						}
						done := time.Since(begin)
						mu.Lock()
						postLat, checkLat = append(postLat, posted), append(checkLat, done)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := b.Elapsed()
			b.StopTimer()
			cpu := p.cpuUse(b).since(cpuBefore)
			if len(failures) > 0 {
				b.Errorf("%d of %d checkouts failed, e.g. %s", len(failures), b.N, failures[0])
			}
			endToEnd[clients] = float64(len(checkLat)) / elapsed.Seconds()
			b.ReportMetric(endToEnd[clients], "checkouts/s")
			b.ReportMetric(ms(cpu.total())/float64(b.N), "cpu_ms/checkout")
			b.Logf("CPU per checkout (%d): %s", b.N, cpu.per(b.N))
			b.ReportMetric(ms(percentile(postLat, 50)), "post_p50_ms")
			b.ReportMetric(ms(percentile(postLat, 99)), "post_p99_ms")
			b.ReportMetric(ms(percentile(checkLat, 50)), "checkout_p50_ms")
			b.ReportMetric(ms(percentile(checkLat, 99)), "checkout_p99_ms")
		})
	}

	// PostgreSQL's ceiling for the same checkouts, on the same server, and
	// how near the platform comes to it.
	dbURL, productID := checkoutCeilingDB(b)
	for _, clients := range []int{8, 32} {
		b.Run(fmt.Sprintf("pgbench/clients=%d", clients), func(b *testing.B) {
			r := runPgbench(b, dbURL, "pgbench-checkout.sql", clients, max(1, 5*b.N/clients), "product_id="+productID)
			checkCheckouts(b, dbURL)
			b.ReportMetric(r.TPS, "checkouts/s")
			b.ReportMetric(r.LatencyMS, "latency_avg_ms")
			// A metric, not a log line: the benchmark runs once with b.N = 1
			// before the real run, and only the last run's metrics are shown.
			if e2e, ok := endToEnd[clients]; ok {
				b.ReportMetric(e2e/r.TPS, "e2e/ceiling")
			}
		})
	}
}

// watchOrders returns a function that waits until an order is no longer
// pending (or timeout passes) and returns its status. It LISTENs on the
// order database's order_status channel (order migration 00003: a NOTIFY
// with the order's id for every status history row, sent at commit) and
// reads a watched order's status when its notification arrives. Polling —
// by each client through the API, or by one reader here — would load the
// platform it measures and add half its period to every checkout.
func watchOrders(b *testing.B, db *sqlx.DB, url string) func(id string, timeout time.Duration) string {
	type waiter struct {
		done   chan struct{}
		status string
	}
	var (
		mu      sync.Mutex
		waiting = map[string]*waiter{}
	)
	// settle reads the orders of ids and hands each that is final to its
	// waiter, once.
	settle := func(ids []string) {
		var rows []struct {
			ID     string `db:"id"`
			Status string `db:"status"`
		}
		if err := db.Select(&rows, `SELECT id, status FROM orders WHERE id = ANY($1::uuid[]) AND status <> 'pending'`,
			pq.Array(ids)); err != nil {
			return // shutting down; a real failure shows as the waiter's timeout
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rows {
			if w := waiting[r.ID]; w != nil {
				w.status = r.Status
				close(w.done)
				delete(waiting, r.ID)
			}
		}
	}
	l := pq.NewListener(url, 10*time.Millisecond, time.Second, nil)
	if err := l.Listen(orderpg.NotifyChannel); err != nil {
		b.Fatalf("LISTEN %s: %v", orderpg.NotifyChannel, err)
	}
	stopped := make(chan struct{})
	b.Cleanup(func() { l.Close(); <-stopped })
	go func() {
		defer close(stopped)
		for n := range l.NotificationChannel() { // closed by Close
			mu.Lock()
			ids := make([]string, 0, len(waiting))
			if n != nil && waiting[n.Extra] != nil {
				ids = append(ids, n.Extra)
			} else if n == nil { // reconnected: some may have been missed
				for id := range waiting {
					ids = append(ids, id)
				}
			}
			mu.Unlock()
			if len(ids) > 0 {
				settle(ids)
			}
		}
	}()
	return func(id string, timeout time.Duration) string {
		w := &waiter{done: make(chan struct{})}
		mu.Lock()
		waiting[id] = w
		mu.Unlock()
		settle([]string{id}) // its notification may have come before it was watched
		select {
		case <-w.done:
			return w.status
		case <-time.After(timeout):
			mu.Lock()
			delete(waiting, id)
			mu.Unlock()
			return "pending after " + timeout.String()
		}
	}
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
