package validate

import (
	"maps"
	"testing"
)

type innerLine struct {
	Name string `json:"name"`
}

type embedded struct {
	Street string `json:"street"`
}

type walked struct {
	embedded
	Email    string            `json:"email,omitempty"`
	Note     *string           `json:"note"`
	Lines    []innerLine       `json:"items"`
	Attrs    map[string]string `json:"attributes"`
	Name     Optional[string]  `json:"name,omitzero"`
	Any      any               `json:"any"`
	Untagged string
	hidden   string
}

func TestStrings(t *testing.T) {
	bad := "a\x00b"
	note := bad
	v := walked{
		embedded: embedded{Street: bad},
		Email:    "ada\x00@example.com",
		Note:     &note,
		Lines:    []innerLine{{Name: "ok"}, {Name: "\xff"}},
		Attrs:    map[string]string{"color": bad, "k\x00": "v"},
		Name:     Some(bad),
		Any:      map[string]any{"deep": []any{bad}},
		Untagged: bad,
		hidden:   bad,
	}
	got := check(func(p Problems) { p.Strings(&v) })
	want := Problems{
		"street":           "must not contain NUL characters",
		"email":            "must not contain NUL characters",
		"note":             "must not contain NUL characters",
		"items[1].name":    "must be valid UTF-8",
		"attributes.color": "must not contain NUL characters",
		"attributes":       "has a key that must not contain NUL characters",
		"name":             "must not contain NUL characters",
		"any.deep[0]":      "must not contain NUL characters",
		"Untagged":         "must not contain NUL characters",
	}
	if !maps.Equal(got, want) {
		t.Errorf("Strings = %v\nwant      %v", got, want)
	}
	if got := check(func(p Problems) { p.Strings(walked{Email: "ada@example.com", Lines: []innerLine{{Name: "é"}}}) }); len(got) != 0 {
		t.Errorf("clean value: %v", got)
	}
	if got := check(func(p Problems) { p.Strings("\x00") }); got["body"] == "" {
		t.Errorf("a bare string: %v", got)
	}
}

func TestPageBounds(t *testing.T) {
	for _, tc := range []struct {
		page, size int
		bad        []string
	}{
		{1, 20, nil},
		{MaxPage, MaxPageSize, nil},
		{MaxPage + 1, 20, []string{"page"}},
		{1 << 62, MaxPageSize, []string{"page"}}, // (page-1)*size would wrap negative
		{0, 0, []string{"page", "page_size"}},
		{-1 << 63, 1 << 62, []string{"page", "page_size"}},
	} {
		got := check(func(p Problems) { p.Page(tc.page, tc.size) })
		if len(got) != len(tc.bad) {
			t.Errorf("Page(%d, %d) = %v, want %v named", tc.page, tc.size, got, tc.bad)
		}
		for _, f := range tc.bad {
			if got[f] == "" {
				t.Errorf("Page(%d, %d): %s not named in %v", tc.page, tc.size, f, got)
			}
		}
	}
}
