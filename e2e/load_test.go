package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/e2e/load"
)

// TestLoadShort is make load's short mode, so it cannot rot: the default
// shopper mix for a few seconds at a low rate against the platform of
// TestCheckout, then the report checked — every scenario ran and got
// answers, no answer was a 5xx, the orders placed all settled as their
// cards say, and the invariants held in the databases. Nothing here is
// about time.
func TestLoadShort(t *testing.T) {
	p := startCheckoutPlatform(t, checkoutOptions{webhookDelay: "0s", logLevel: "warn"})
	// A catalogue to browse: two categories, products in each, and a
	// product with variants (listed and read, never bought by the run).
	for _, cat := range []struct{ name, products string }{
		{"Kitchen", "Enamel Mug,Cast Iron Skillet,Chef Knife"},
		{"Garden", "Garden Hose,Watering Can"},
	} {
		var c struct {
			Category struct {
				ID string `json:"id"`
			} `json:"category"`
		}
		p.call(t, "POST", "/api/v1/categories", p.admin, map[string]any{"name": cat.name}).must(t, http.StatusCreated).decode(t, &c)
		for i, name := range strings.Split(cat.products, ",") {
			p.call(t, "POST", "/api/v1/products", p.admin, map[string]any{"name": name, "sku": fmt.Sprintf("LOAD-%s-%d", cat.name, i),
				"price": fmt.Sprintf("%d.99", 5+10*i), "stock_quantity": 20, "category_id": c.Category.ID}).must(t, http.StatusCreated)
		}
	}
	tee := p.seed(t, "Load Tee", "15.00", 0)
	p.call(t, "POST", "/api/v1/products/"+tee.ID+"/variants", p.admin, map[string]any{"name": "M", "sku": "LOAD-TEE-M", "price": "15.00",
		"stock_quantity": 5, "attributes": map[string]string{"size": "M"}}).must(t, http.StatusCreated)

	var progress bytes.Buffer
	cfg := load.Config{
		Target: "http://" + p.gateway.addr, Rate: 30, Duration: 4 * time.Second, Users: 4,
		// Every card often enough that a short run sees each.
		Cards:     map[string]int{load.CardOK: 2, load.CardDeclined: 1, load.CardInsufficientFunds: 1},
		Admin:     &load.Credentials{Email: "admin@mercato.test", Password: "admin-password-1"},
		Databases: &load.Databases{Product: p.db["product"], Order: p.db["order"], Payment: p.db["payment"]},
		Settle:    45 * time.Second, Progress: &progress, Label: "TestLoadShort",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	report, err := load.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	report.WriteTable(&table)
	t.Logf("progress:\n%s\nreport:\n%s", progress.String(), table.String())

	ran := map[load.Scenario]bool{}
	for _, sc := range report.Scenarios {
		ran[sc.Scenario] = sc.Total.Requests > 0 && sc.Total.Success > 0
		for _, rt := range sc.Routes {
			for code := range rt.Errors {
				if strings.HasPrefix(code, "5") {
					t.Errorf("%s %s: %d answers %s", sc.Scenario, rt.Route, rt.Errors[code], code)
				}
			}
		}
	}
	for _, sc := range load.Scenarios {
		if !ran[sc] {
			t.Errorf("scenario %s sent nothing or got no successful answer", sc)
		}
	}
	if len(report.Orders) == 0 {
		t.Error("no order was acknowledged")
	}
	if len(report.Invariants) != 4 {
		t.Errorf("%d invariants checked, want 4: %+v", len(report.Invariants), report.Invariants)
	}
	if !report.OK() {
		t.Errorf("an invariant failed:\n%s", table.String())
	}
	if !strings.Contains(progress.String(), "answers/s") {
		t.Errorf("no progress line: %q", progress.String())
	}

	// The files make load writes.
	var img, js bytes.Buffer
	if err := report.WritePNG(&img); err != nil {
		t.Fatal(err)
	}
	if cfg, err := png.DecodeConfig(&img); err != nil || cfg.Width < 600 {
		t.Errorf("chart: %+v %v", cfg, err)
	}
	if err := report.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back load.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Scenarios) != len(report.Scenarios) || len(back.Timeline) == 0 {
		t.Errorf("JSON report does not read back: %v", err)
	}
}
