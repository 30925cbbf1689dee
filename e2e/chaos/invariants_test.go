package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/e2e/load"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// books are the columns of the order, payment and sandbox tables the
// invariants read, in one database (each invariant names the one it asks).
func books(t *testing.T) *sqlx.DB {
	t.Helper()
	db := testkit.Postgres(t)
	db.MustExec(`
		CREATE TABLE orders (id uuid PRIMARY KEY, status text NOT NULL);
		CREATE TABLE payments (id uuid PRIMARY KEY, order_id uuid NOT NULL UNIQUE, captured_amount numeric(10,2) NOT NULL DEFAULT 0);
		CREATE TABLE sandbox_charges (id text PRIMARY KEY, payment_id uuid NOT NULL, amount numeric(10,2) NOT NULL,
			outcome text NOT NULL, refunded_amount numeric(10,2) NOT NULL DEFAULT 0)`)
	return db
}

// TestChargesOfOrdersNotPaid: a cancelled order whose sandbox charge
// succeeded and was never refunded is a customer charged for nothing, which
// charges names; one refunded in full, or whose charge failed, is not.
func TestChargesOfOrdersNotPaid(t *testing.T) {
	db := books(t)
	db.MustExec(`
		INSERT INTO orders VALUES
			('00000000-0000-0000-0000-00000000000a', 'confirmed'),
			('00000000-0000-0000-0000-00000000000b', 'cancelled'),
			('00000000-0000-0000-0000-00000000000c', 'cancelled'),
			('00000000-0000-0000-0000-00000000000d', 'cancelled');
		INSERT INTO payments VALUES
			('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', 10),
			('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-00000000000b', 0),
			('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000c', 10),
			('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-00000000000d', 0);
		INSERT INTO sandbox_charges VALUES
			('ch_a', '00000000-0000-0000-0000-0000000000a1', 10, 'succeeded', 0),
			('ch_c', '00000000-0000-0000-0000-0000000000c1', 10, 'succeeded', 10),
			('ch_d', '00000000-0000-0000-0000-0000000000d1', 10, 'failed', 0)`)
	p := &Platform{Databases: &load.Databases{Order: db, Payment: db}}
	if inv := p.charges(context.Background()); !inv.OK {
		t.Fatalf("the books are right, yet: %+v", inv)
	}

	// The provider took the money of cancelled order b and kept it.
	db.MustExec(`INSERT INTO sandbox_charges VALUES ('ch_b', '00000000-0000-0000-0000-0000000000b1', 10, 'succeeded', 0)`)
	inv := p.charges(context.Background())
	if inv.OK || !strings.Contains(inv.Detail, "00000000-0000-0000-0000-00000000000b") {
		t.Errorf("a cancelled order's charge kept by the provider passed: %+v", inv)
	}
}

// TestConsumerGroupsThatNeverJoined: a service whose consumers never
// created their group leaves its events unread by anyone; no group
// pending is then no proof of anything, and consumerGroups names the
// group that is missing.
func TestConsumerGroupsThatNeverJoined(t *testing.T) {
	ctx := context.Background()
	rdb := emptyStream(t)
	p := &Platform{Redis: rdb, Groups: []string{"order", "payment", "notification"}}
	testkit.Publish(t, rdb, "order", events.OrderCancelled, map[string]string{"order_id": "x"})

	// Only order and payment joined, and read everything.
	for _, g := range []string{"order", "payment"} {
		if err := rdb.XGroupCreate(ctx, events.DefaultStream, g, "$").Err(); err != nil {
			t.Fatal(err)
		}
	}
	inv := p.consumerGroups(ctx)
	if inv.OK || !strings.Contains(inv.Detail, "notification") {
		t.Errorf("the notification group never joined, yet: %+v", inv)
	}

	if err := rdb.XGroupCreate(ctx, events.DefaultStream, "notification", "$").Err(); err != nil {
		t.Fatal(err)
	}
	if inv := p.consumerGroups(ctx); !inv.OK {
		t.Errorf("every group joined and read all, yet: %+v", inv)
	}
}

// TestNoConfirmationMailForAnOrderNeverConfirmed: the sink holding a
// confirmation of an order that was never confirmed is a customer told a
// lie, whatever the notification log says.
func TestNoConfirmationMailForAnOrderNeverConfirmed(t *testing.T) {
	db := testkit.Postgres(t)
	db.MustExec(`
		CREATE TABLE orders (id uuid PRIMARY KEY, order_number text NOT NULL, status text NOT NULL);
		CREATE TABLE order_status_history (order_id uuid NOT NULL, status text NOT NULL);
		CREATE TABLE notifications (dedupe_key text NOT NULL, template text NOT NULL, channel text NOT NULL,
			status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO orders VALUES
			('aaaaaaaa-0000-0000-0000-000000000000', 'MRC-1001', 'confirmed'),
			('bbbbbbbb-0000-0000-0000-000000000000', 'MRC-1002', 'cancelled');
		INSERT INTO order_status_history VALUES
			('aaaaaaaa-0000-0000-0000-000000000000', 'pending'), ('aaaaaaaa-0000-0000-0000-000000000000', 'confirmed'),
			('bbbbbbbb-0000-0000-0000-000000000000', 'pending'), ('bbbbbbbb-0000-0000-0000-000000000000', 'cancelled');
		INSERT INTO notifications (dedupe_key, template, channel, status) VALUES
			('order_confirmed:aaaaaaaa-0000-0000-0000-000000000000', 'order_confirmed', 'email', 'sent')`)
	mails := []Mail{{To: "ada@example.com", Subject: "Order MRC-1001 confirmed", At: time.Now()}}
	p := &Platform{Databases: &load.Databases{Order: db}, Notification: db, Mails: func() []Mail { return mails }}
	if inv := p.emails(context.Background()); !inv.OK {
		t.Fatalf("one mail for the one confirmed order, yet: %+v", inv)
	}

	// The sink got a confirmation of cancelled order b, which the log does
	// not have as sent (its row failed, or is not there at all).
	for _, subject := range []string{"Order MRC-1002 confirmed", "Order BBBBBBBB confirmed"} {
		mails = []Mail{mails[0], {To: "ada@example.com", Subject: subject, At: time.Now()}}
		inv := p.emails(context.Background())
		if inv.OK || !strings.Contains(inv.Detail, "bbbbbbbb-0000-0000-0000-000000000000") {
			t.Errorf("%q reached the sink for an order never confirmed, yet: %+v", subject, inv)
		}
	}
}

// TestBreakersReadFromMetrics: instances reads each instance's breakers
// from the series discovery.Metrics exposes; with one open it fails, and
// with none there at all (the gauge renamed, say) it has read nothing,
// which is no proof of a breaker closed.
func TestBreakersReadFromMetrics(t *testing.T) {
	addr := testkit.ConsulAddr(t)
	consul, err := api.NewClient(&api.Config{Address: addr, Token: testkit.ConsulToken(t, addr, "")})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := discovery.NewMetrics(reg)
	var renamed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if renamed.Load() {
			fmt.Fprintln(w, `circuit_breaker_state{instance="10.0.0.1:8080",upstream="product"} 1`)
			return
		}
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	svc := "breakers-" + strings.ToLower(t.Name())
	if err := consul.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: svc + "-1", Name: svc, Address: host, Port: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = consul.Agent().ServiceDeregister(svc + "-1") })
	platform := &Platform{Consul: consul, Instances: map[string]int{svc: 1}}
	ctx := context.Background()

	m.BreakerOpen.With("upstream", "product", "instance", "10.0.0.1:8080").Set(0)
	if inv := platform.instances(ctx); !inv.OK {
		t.Fatalf("the one breaker is closed, yet: %+v", inv)
	}
	m.BreakerOpen.With("upstream", "product", "instance", "10.0.0.1:8080").Set(1)
	if inv := platform.instances(ctx); inv.OK {
		t.Errorf("a breaker is open, yet: %+v", inv)
	}
	renamed.Store(true)
	if inv := platform.instances(ctx); inv.OK {
		t.Errorf("no instance exposes circuit_breaker_open, yet: %+v", inv)
	}
}

// TestConsumerGroupWhoseLagIsUnknown: Redis cannot count a group's lag
// once entries past its position were deleted (go-redis reads -1); the
// group still has events to read, which consumerGroups sees from its last
// delivered entry.
func TestConsumerGroupWhoseLagIsUnknown(t *testing.T) {
	ctx := context.Background()
	rdb := emptyStream(t)
	for range 3 {
		testkit.Publish(t, rdb, "order", events.OrderCancelled, map[string]string{"order_id": "x"})
	}
	if err := rdb.XGroupCreate(ctx, events.DefaultStream, "order", "0").Err(); err != nil {
		t.Fatal(err)
	}
	msgs, err := rdb.XRange(ctx, events.DefaultStream, "-", "+").Result()
	if err != nil || len(msgs) != 3 {
		t.Fatal(msgs, err)
	}
	// The group read and acknowledged the first; the last was deleted; the
	// second is still unread.
	if _, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "order", Consumer: "c", Streams: []string{events.DefaultStream, ">"}, Count: 1}).Result(); err != nil {
		t.Fatal(err)
	}
	rdb.XAck(ctx, events.DefaultStream, "order", msgs[0].ID)
	rdb.XDel(ctx, events.DefaultStream, msgs[2].ID)
	p := &Platform{Redis: rdb, Groups: []string{"order"}}
	if inv := p.consumerGroups(ctx); inv.OK {
		groups, _ := rdb.XInfoGroups(ctx, events.DefaultStream).Result()
		t.Errorf("the group has an entry unread (groups %+v), yet: %+v", groups, inv)
	}
}

// emptyStream is the test Redis with the event stream deleted, now and
// when the test ends.
func emptyStream(t *testing.T) *redis.Client {
	t.Helper()
	rdb := testkit.Redis(t)
	rdb.Del(context.Background(), events.DefaultStream)
	t.Cleanup(func() { rdb.Del(context.Background(), events.DefaultStream) })
	return rdb
}
