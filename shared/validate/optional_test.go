package validate

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/mercato-dev/mercato/shared/money"
)

type dims struct {
	Length float64 `json:"length"`
}

// patch is a partial update as the services declare theirs.
type patch struct {
	Name    Optional[string]       `json:"name,omitzero"`
	Price   Optional[money.Amount] `json:"price,omitzero"`
	Compare Optional[money.Amount] `json:"compare_price,omitzero"`
	Cost    Optional[money.Amount] `json:"cost_price,omitzero"`
	Weight  Optional[json.Number]  `json:"weight,omitzero"`
	Images  Optional[[]string]     `json:"images,omitzero"`
	Dims    Optional[dims]         `json:"dimensions,omitzero"`
	Active  Optional[bool]         `json:"is_active,omitzero"`
}

func TestOptionalJSON(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		set       bool
		value     *money.Amount
		wrongType bool
	}{
		{"absent", `{}`, false, nil, false},
		{"null", `{"price":null}`, true, nil, false},
		{"value", `{"price":"1.50"}`, true, ptr(money.Amount(150)), false},
		{"wrong type", `{"price":7}`, true, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p patch
			if err := json.Unmarshal([]byte(tc.body), &p); err != nil {
				t.Fatalf("a field of the wrong type fails the decode: %v", err)
			}
			o := p.Price
			if o.Set != tc.set || (o.Value == nil) != (tc.value == nil) || (o.Value != nil && *o.Value != *tc.value) || (o.err != nil) != tc.wrongType {
				t.Errorf("price = {Set:%v Value:%v err:%v}, want {Set:%v Value:%v wrong type:%v}", o.Set, o.Value, o.err, tc.set, tc.value, tc.wrongType)
			}
		})
	}

	for _, tc := range []struct {
		p    patch
		want string
	}{
		{patch{}, `{}`},
		{patch{Price: Some(money.Amount(199)), Weight: Optional[json.Number]{Set: true}}, `{"price":"1.99","weight":null}`},
		{patch{Name: Some(""), Images: Some([]string{"a"}), Active: Some(false)}, `{"name":"","images":["a"],"is_active":false}`},
	} {
		out, err := json.Marshal(tc.p)
		if err != nil || string(out) != tc.want {
			t.Errorf("marshalled patch = %s, %v, want %s", out, err, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestOptionalUnknownField: an object value is decoded as strictly as the
// body around it, so a misspelt field of it is refused, not dropped.
func TestOptionalUnknownField(t *testing.T) {
	var p patch
	dec := json.NewDecoder(strings.NewReader(`{"dimensions":{"lenght":12}}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err == nil || err.Error() != `json: unknown field "lenght"` {
		t.Errorf("an unknown field of an Optional object: err = %v, want json's unknown-field error", err)
	}
	if err := json.Unmarshal([]byte(`{"dimensions":{"length":12}}`), &p); err != nil || p.Dims.Value == nil || p.Dims.Value.Length != 12 {
		t.Errorf("known fields: %+v, %v", p.Dims, err)
	}
}

func TestPresentAndRequired(t *testing.T) {
	var p patch
	body := `{"name":null,"price":1.5,"compare_price":null,"cost_price":"2.00","weight":true,"images":"x","dimensions":[1],"is_active":"yes"}`
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	probs := Problems{}
	got := map[string]bool{
		"name":          Present(probs, "name", p.Name, false),
		"price":         Required(probs, "price", p.Price),
		"compare_price": Present(probs, "compare_price", p.Compare, true),
		"cost_price":    Required(probs, "cost_price", p.Cost),
		"weight":        Present(probs, "weight", p.Weight, true),
		"images":        Present(probs, "images", p.Images, true),
		"dimensions":    Present(probs, "dimensions", p.Dims, true),
		"is_active":     Present(probs, "is_active", p.Active, false),
	}
	want := map[string]bool{"cost_price": true}
	for field := range got {
		if got[field] != want[field] {
			t.Errorf("%s: present = %v, want %v", field, got[field], want[field])
		}
	}
	wantProbs := Problems{
		"name":       "must not be null",
		"price":      `has the wrong type: must be a decimal string with at most two places, like "19.99"`,
		"weight":     "has the wrong type: must be a number",
		"images":     "has the wrong type: must be a array",
		"dimensions": "has the wrong type: must be a object",
		"is_active":  "has the wrong type: must be a boolean",
	}
	if !maps.Equal(probs, wantProbs) {
		t.Errorf("problems = %v, want %v", probs, wantProbs)
	}

	// Absent: neither present nor a problem, unless required.
	probs = Problems{}
	if Present(probs, "name", patch{}.Name, false) || Required(probs, "price", patch{}.Price) {
		t.Error("an absent field is present")
	}
	if !maps.Equal(probs, Problems{"price": "is required"}) {
		t.Errorf("absent: problems = %v", probs)
	}
}

func TestJSONKind(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{"", "string"},
		{true, "boolean"},
		{0, "number"},
		{1.5, "number"},
		{uint8(1), "number"},
		{json.Number("1"), "number"},
		{money.Amount(1), "number"},
		{[]string{}, "array"},
		{[2]int{}, "array"},
		{map[string]string{}, "object"},
		{dims{}, "object"},
		{new(string), "string"},
		{new(dims), "object"},
	}
	for _, tc := range tests {
		if got := JSONKind(reflect.TypeOf(tc.v)); got != tc.want {
			t.Errorf("JSONKind(%T) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestIfPresent checks a value only when Present finds one: a given value
// is checked, an absent or allowed null one is not, a forbidden null is a
// problem without a check.
func TestIfPresent(t *testing.T) {
	var p patch
	if err := json.Unmarshal([]byte(`{"name":"x","compare_price":null,"is_active":null}`), &p); err != nil {
		t.Fatal(err)
	}
	probs := Problems{}
	var checked []string
	check := func(field string) func(Problems, string, string) {
		return func(p Problems, f string, v string) {
			checked = append(checked, f+"="+v)
			p[field] = "checked"
		}
	}
	IfPresent(probs, "name", p.Name, false, check("name"))
	IfPresent(probs, "compare_price", p.Compare, true, func(Problems, string, money.Amount) { checked = append(checked, "compare_price") })
	IfPresent(probs, "is_active", p.Active, false, func(Problems, string, bool) { checked = append(checked, "is_active") })
	IfPresent(probs, "cost_price", p.Cost, false, func(Problems, string, money.Amount) { checked = append(checked, "cost_price") })
	if !reflect.DeepEqual(checked, []string{"name=x"}) {
		t.Errorf("checked %v, want only name=x", checked)
	}
	if want := (Problems{"name": "checked", "is_active": "must not be null"}); !maps.Equal(probs, want) {
		t.Errorf("problems = %v, want %v", probs, want)
	}
}

// A key given twice is decoded as encoding/json decodes every other field:
// the last value wins. An Optional that kept what the first one left would
// turn {"price":"1.50","price":null} into a price of 1.50 where a plain
// field would be cleared, and a first value of the wrong type would refuse
// a body whose last value is right.
func TestOptionalDuplicateKeyLastWins(t *testing.T) {
	for _, tc := range []struct {
		body      string
		value     *money.Amount
		wrongType bool
	}{
		{`{"price":"1.50","price":null}`, nil, false},
		{`{"price":7,"price":"2.00"}`, ptr(money.Amount(200)), false},
		{`{"price":"1.50","price":7}`, nil, true},
	} {
		var p patch
		if err := json.Unmarshal([]byte(tc.body), &p); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		o := p.Price
		if !o.Set || (o.Value == nil) != (tc.value == nil) || (o.Value != nil && *o.Value != *tc.value) || (o.err != nil) != tc.wrongType {
			t.Errorf("%s: price = {Set:%v Value:%v err:%v}, want {Set:true Value:%v wrong type:%v}", tc.body, o.Set, o.Value, o.err, tc.value, tc.wrongType)
		}
	}
}
