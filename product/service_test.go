package product

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/validate"
)

func TestSlugify(t *testing.T) {
	tests := map[string]string{
		"Phones & Tablets":             "phones-tablets",
		"  Organic Cotton Tee  ":       "organic-cotton-tee",
		"Café au lait 2000":            "caf-au-lait-2000",
		"---":                          "",
		"日本":                           "",
		"A" + strings.Repeat("b", 300): "a" + strings.Repeat("b", 254),
	}
	for in, want := range tests {
		if got := Slugify(in); got != want {
			t.Errorf("Slugify(%q) = %q, want %q", in, got, want)
		}
		if want != "" && !ValidSlug(want) {
			t.Errorf("ValidSlug(%q) = false for Slugify's output", want)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "a--b", "A", "a b", "a_b", "é", strings.Repeat("a", 256)} {
		if ValidSlug(bad) {
			t.Errorf("ValidSlug(%q) = true", bad)
		}
	}
}

func TestMergeLines(t *testing.T) {
	p1, p2 := "22222222-2222-2222-2222-222222222222", "11111111-1111-1111-1111-111111111111"
	v1 := "33333333-3333-3333-3333-333333333333"
	upperV1 := strings.ToUpper(v1)
	got, err := MergeLines([]ReservationLine{
		{ProductID: p1, Quantity: 1},
		{ProductID: p1, VariantID: &v1, Quantity: 2},
		{ProductID: p2, Quantity: 4},
		{ProductID: strings.ToUpper(p1), Quantity: 5},
		{ProductID: p1, VariantID: &upperV1, Quantity: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		product, variant string
		qty              int
	}{{p2, "", 4}, {p1, "", 6}, {p1, v1, 3}}
	if len(got) != len(want) {
		t.Fatalf("merged = %+v", got)
	}
	for i, w := range want {
		if got[i].ProductID != w.product || defaults.Deref(got[i].VariantID) != w.variant || got[i].Quantity != w.qty {
			t.Errorf("line %d = %+v %q, want %+v", i, got[i], defaults.Deref(got[i].VariantID), w)
		}
	}

	var le *LineError
	if _, err := MergeLines([]ReservationLine{{ProductID: "nope", Quantity: 1}}); !errors.As(err, &le) || !errors.Is(err, ErrUnknownProduct) {
		t.Errorf("bad product id: %v", err)
	}
	if _, err := MergeLines([]ReservationLine{{ProductID: p1, Quantity: 0}}); err == nil {
		t.Error("zero quantity accepted")
	}
}

func TestLowStock(t *testing.T) {
	tests := []struct {
		before, after, min int
		want               bool
	}{
		{10, 5, 5, true}, {10, 4, 5, true}, {6, 5, 5, true}, {5, 4, 5, false}, {10, 6, 5, false}, {1, 0, 0, true}, {0, 0, 0, false},
	}
	for _, tc := range tests {
		if got := LowStock(tc.before, tc.after, tc.min); got != tc.want {
			t.Errorf("LowStock(%d, %d, %d) = %v", tc.before, tc.after, tc.min, got)
		}
	}
}

func TestOptionalJSON(t *testing.T) {
	var p ProductPatch
	if err := json.Unmarshal([]byte(`{"price":"1.50","compare_price":null,"name":7}`), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Price.Set || *p.Price.Value != 150 {
		t.Errorf("price = %+v", p.Price)
	}
	if !p.ComparePrice.Set || p.ComparePrice.Value != nil {
		t.Errorf("compare_price = %+v", p.ComparePrice)
	}
	probs := validate.Problems{}
	if !p.Name.Set || validate.Present(probs, "name", p.Name, false) || !strings.HasPrefix(probs["name"], "has the wrong type") || p.CostPrice.Set {
		t.Errorf("name = %+v (%v), cost_price = %+v", p.Name, probs, p.CostPrice)
	}
	out, err := json.Marshal(ProductPatch{Price: validate.Some(money.Amount(199)), Weight: validate.Optional[Weight]{Set: true}})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"price":"1.99","weight":null}` {
		t.Errorf("marshalled patch = %s", out)
	}
}

// TestWeightJSON: a weight is a JSON number, kept as written; a string, even
// one holding a number, is a value of the wrong type in a product (400
// invalid_type, as a quoted stock_quantity) and in a patch (422, as a
// quoted min_stock_quantity). As a json.Number it was taken.
func TestWeightJSON(t *testing.T) {
	for _, tc := range []struct {
		body string
		want Weight // "": refused as a value of the wrong type
	}{
		{`{"weight":12}`, "12"},
		{`{"weight":0.75}`, "0.75"},
		{`{"weight":1.50}`, "1.50"},
		{`{"weight":"12"}`, ""},
		{`{"weight":"0.75"}`, ""},
		{`{"weight":""}`, ""},
		{`{"weight":true}`, ""},
	} {
		var in struct {
			Weight *Weight `json:"weight"`
		}
		err := json.Unmarshal([]byte(tc.body), &in)
		var te *json.UnmarshalTypeError
		switch {
		case tc.want != "" && (err != nil || in.Weight == nil || *in.Weight != tc.want):
			t.Errorf("%s: weight %v, %v, want %s", tc.body, in.Weight, err, tc.want)
		case tc.want == "" && (!errors.As(err, &te) || te.Field != "weight" || validate.JSONKind(te.Type) != "number"):
			t.Errorf("%s: err = %v, want a type error naming weight a number", tc.body, err)
		}

		var patch ProductPatch
		if err := json.Unmarshal([]byte(tc.body), &patch); err != nil {
			t.Fatalf("%s: a patch's field of the wrong type fails the decode: %v", tc.body, err)
		}
		probs := validate.Problems{}
		present := validate.Present(probs, "weight", patch.Weight, true)
		switch {
		case tc.want != "" && (!present || *patch.Weight.Value != tc.want):
			t.Errorf("%s: patched weight %+v (%v), want %s", tc.body, patch.Weight, probs, tc.want)
		case tc.want == "" && (present || probs["weight"] != "has the wrong type: must be a number"):
			t.Errorf("%s: patch problems %v, want weight of the wrong type", tc.body, probs)
		}
	}

	// Written back as the number it is, as the client sends it.
	w := Weight("0.75")
	out, err := json.Marshal(Product{Weight: &w})
	if err != nil || !strings.Contains(string(out), `"weight":0.75,`) {
		t.Errorf("marshalled product = %s, %v", out, err)
	}
	if out, err := json.Marshal(ProductPatch{Weight: validate.Some(w)}); err != nil || string(out) != `{"weight":0.75}` {
		t.Errorf("marshalled patch = %s, %v", out, err)
	}
}

func TestCategoryTree(t *testing.T) {
	root, child := "r", "c"
	tree := categoryTree([]Category{
		{ID: "c", Name: "Child", ParentID: &root},
		{ID: "g", Name: "Grandchild", ParentID: &child},
		{ID: "r", Name: "Root"},
		{ID: "s", Name: "Second root"},
	})
	if len(tree) != 2 || tree[0].ID != "r" || tree[1].ID != "s" || len(tree[1].Children) != 0 ||
		tree[0].Children[0].ID != "c" || tree[0].Children[0].Children[0].ID != "g" {
		t.Errorf("tree = %+v", tree)
	}
	b, _ := json.Marshal(tree[1])
	if !strings.Contains(string(b), `"children":[]`) {
		t.Errorf("a leaf's children are not []: %s", b)
	}
}

func TestDemoCatalogue(t *testing.T) {
	cats, products := DemoCatalogue()
	if len(cats) < 8 || len(products) != 50 {
		t.Fatalf("%d categories, %d products", len(cats), len(products))
	}
	seen := map[string]bool{}
	withVariants := 0
	for _, p := range products {
		for _, key := range []string{"slug:" + p.Slug, "sku:" + p.SKU, "id:" + p.ID} {
			if seen[key] {
				t.Errorf("duplicate %s", key)
			}
			seen[key] = true
		}
		if !ValidSlug(p.Slug) || p.Price <= 0 || p.CategoryID == nil {
			t.Errorf("bad demo product %+v", p)
		}
		if len(p.Variants) > 0 {
			withVariants++
		}
		for _, v := range p.Variants {
			if seen["sku:"+v.SKU] {
				t.Errorf("duplicate variant sku %s", v.SKU)
			}
			seen["sku:"+v.SKU] = true
		}
	}
	if withVariants < 5 {
		t.Errorf("%d products with variants", withVariants)
	}
	// Stable ids: a second call is the same catalogue.
	_, again := DemoCatalogue()
	if again[7].ID != products[7].ID {
		t.Error("demo ids are not stable")
	}
}
