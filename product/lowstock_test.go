package product_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mercato-dev/mercato/product"
)

// wantLowStock waits for product_low_stock_products to read n.
func wantLowStock(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP product_low_stock_products Active products without variants, and active variants, whose stock is at or below the product's min_stock_quantity, as last counted.
# TYPE product_low_stock_products gauge
product_low_stock_products %d
`, n)
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = testutil.GatherAndCompare(reg, strings.NewReader(want), "product_low_stock_products"); err == nil {
			return
		}
	}
	t.Fatalf("product_low_stock_products never read %d: %v", n, err)
}

// The low-stock counter keeps product_low_stock_products at what PostgreSQL
// holds: products without variants and variants at or below the product's
// min_stock_quantity, active ones only, up and down as stock moves.
func TestLowStockGauge(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&product.LowStockCounter{Housekeeping: s.svc, Interval: 20 * time.Millisecond}).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wantLowStock(t, s.reg, 0) // an empty catalogue, counted at once

	low := s.createProduct(t, map[string]any{"stock_quantity": 2, "min_stock_quantity": 2})["id"].(string) // at its minimum
	s.createProduct(t, map[string]any{"stock_quantity": 10, "min_stock_quantity": 2})
	gone := s.createProduct(t, map[string]any{"stock_quantity": 0, "min_stock_quantity": 2})["id"].(string)
	want(t, s.call(t, "DELETE", "/api/v1/products/"+gone, s.admin, nil), http.StatusNoContent) // inactive: not counted
	// Sold in sizes: its own stock (none) does not count, its variants do,
	// against its minimum.
	sized := s.createProduct(t, map[string]any{"stock_quantity": 0, "min_stock_quantity": 3})["id"].(string)
	small := s.createVariant(t, sized, map[string]any{"stock_quantity": 3})["id"].(string)
	large := s.createVariant(t, sized, map[string]any{"stock_quantity": 9})["id"].(string)
	wantLowStock(t, s.reg, 2) // low and small

	adjust := func(productID string, body map[string]any) {
		t.Helper()
		body["reason"] = "test"
		want(t, s.call(t, "POST", "/api/v1/products/"+productID+"/stock", s.admin, body), http.StatusOK)
	}
	adjust(low, map[string]any{"delta": 5}) // 7, above its minimum
	wantLowStock(t, s.reg, 1)
	adjust(sized, map[string]any{"variant_id": large, "delta": -7}) // 2
	wantLowStock(t, s.reg, 2)
	want(t, s.call(t, "PATCH", "/api/v1/products/"+sized+"/variants/"+small, s.admin, map[string]any{"is_active": false}), http.StatusOK)
	wantLowStock(t, s.reg, 1) // large alone
}

// countsOf is a Housekeeping whose CountLowStock answers from a script.
type countsOf struct {
	product.Housekeeping
	answers []func() (int, error)
}

func (c *countsOf) CountLowStock(context.Context) (int, error) {
	if len(c.answers) == 0 {
		return 0, errors.New("no more answers")
	}
	a := c.answers[0]
	c.answers = c.answers[1:]
	return a()
}

// The instrumenting middleware sets the gauge from each count, and a failed
// count leaves it as it was.
func TestLowStockGaugeKeepsItsValueWhenACountFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	hk := &countsOf{answers: []func() (int, error){
		func() (int, error) { return 4, nil },
		func() (int, error) { return 0, errors.New("database down") },
	}}
	svc := product.InstrumentingMiddleware(product.NewMetrics(reg))(struct {
		product.Service
		product.Housekeeping
	}{Housekeeping: hk})
	for _, want := range []float64{4, 4} {
		_, _ = svc.CountLowStock(context.Background())
		got, err := gaugeValue(reg, "product_low_stock_products")
		if err != nil || got != want {
			t.Errorf("product_low_stock_products = %v (%v), want %v", got, err, want)
		}
	}
}

func gaugeValue(reg *prometheus.Registry, name string) (float64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no single series %s", name)
}
