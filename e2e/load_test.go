package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/e2e/load"
	"github.com/mercato-dev/mercato/product"
)

// TestLoadShort is make load's short mode, so it cannot rot: the default
// shopper mix for a few seconds at a low rate against the platform of
// TestCheckout, then the report checked — every scenario ran and got
// answers, no answer was a 5xx, the orders placed all settled as their
// cards say, and the invariants held in the databases. Nothing here is
// about time.
func TestLoadShort(t *testing.T) {
	p := startCheckoutPlatform(t, checkoutOptions{webhookDelay: "0s", logLevel: "warn"})
	seedDemoCatalogue(t, p)

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

// seedDemoCatalogue creates make run's demo catalogue (product.DemoCatalogue:
// a dozen categories, fifty products, some sold by variant) through the
// admin API, so the load runs against the catalogue a person would see.
func seedDemoCatalogue(t testing.TB, p *checkoutPlatform) {
	t.Helper()
	categories, products := product.DemoCatalogue()
	ids := map[string]string{} // the demo's category id → the platform's
	for _, c := range categories {
		body := map[string]any{"name": c.Name, "slug": c.Slug, "description": c.Description}
		if c.ParentID != nil {
			body["parent_id"] = ids[*c.ParentID]
		}
		var out map[string]struct {
			ID string `json:"id"`
		}
		p.call(t, "POST", "/api/v1/categories", p.admin, body).must(t, http.StatusCreated).decode(t, &out)
		ids[c.ID] = out["category"].ID
	}
	for _, pr := range products {
		body := map[string]any{"name": pr.Name, "slug": pr.Slug, "sku": pr.SKU, "price": pr.Price.String(),
			"stock_quantity": pr.StockQuantity, "short_description": pr.ShortDescription, "description": pr.Description,
			"is_featured": pr.IsFeatured}
		if pr.CategoryID != nil {
			body["category_id"] = ids[*pr.CategoryID]
		}
		var out map[string]struct {
			ID string `json:"id"`
		}
		p.call(t, "POST", "/api/v1/products", p.admin, body).must(t, http.StatusCreated).decode(t, &out)
		for _, v := range pr.Variants {
			p.call(t, "POST", "/api/v1/products/"+out["product"].ID+"/variants", p.admin, map[string]any{"name": v.Name, "sku": v.SKU,
				"price": v.Price.String(), "stock_quantity": v.StockQuantity, "attributes": v.Attributes}).must(t, http.StatusCreated)
		}
	}
}
