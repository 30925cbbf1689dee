package money

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseAndString(t *testing.T) {
	tests := []struct {
		in   string
		want Amount
		str  string
	}{
		{"19.99", 1999, "19.99"},
		{"19.9", 1990, "19.90"},
		{"19", 1900, "19.00"},
		{"0.01", 1, "0.01"},
		{"-0.50", -50, "-0.50"},
		{"0", 0, "0.00"},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("Parse(%q) = %d (%s), %v; want %d (%s)", tc.in, got, got, err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", ".", "1.", ".5", "1.999", "1e3", " 1", "1,00", "abc", "--1", "+1", "99999999999999999999"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestJSON(t *testing.T) {
	var v struct {
		Price Amount `json:"price"`
	}
	if err := json.Unmarshal([]byte(`{"price":"12.30"}`), &v); err != nil || v.Price != 1230 {
		t.Fatalf("got %d, %v", v.Price, err)
	}
	if err := json.Unmarshal([]byte(`{"price":12.3}`), &v); err == nil {
		t.Fatal("a JSON number was accepted as money")
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"price":"12.30"}` {
		t.Fatalf("marshal: %s", b)
	}
}

func TestScan(t *testing.T) {
	var a Amount
	for in, want := range map[string]Amount{"19.99": 1999, "19.9900": 1999, "7": 700, "-3.10": -310} {
		if err := a.Scan([]byte(in)); err != nil || a != want {
			t.Errorf("Scan(%q) = %d, %v", in, a, err)
		}
	}
	if err := a.Scan([]byte("1.005")); err == nil {
		t.Error("a third decimal place was rounded silently")
	}
	if err := a.Scan(nil); err == nil {
		t.Error("NULL scanned")
	}
	if v, _ := Amount(1999).Value(); v != "19.99" {
		t.Errorf("Value = %v", v)
	}
}
