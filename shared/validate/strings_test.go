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

func TestInvisible(t *testing.T) {
	for _, r := range []rune{'a', 'Z', '0', '@', '.', '+', ' ', 'é', 'ß', 'ж', '中', '\u0301', '😀'} {
		if Invisible(r) {
			t.Errorf("Invisible(%U) = true, want false: it shows", r)
		}
	}
	for _, r := range []rune{
		'\x00', '\x01', '\t', '\n', '\x7f', '\u0085', // controls, C0 and C1
		'\u00ad', '\u200b', '\u200c', '\u200d', '\u200e', '\u2060', '\u202e', '\u2066', '\ufeff', '\U000e0041', // format (Cf)
		'\u00a0', '\u2003', '\u3000', '\u2028', '\u2029', // spaces and separators other than ASCII's
		'\ue000', '\U000f0000', '\U0010fffe', // private use, unassigned
		'\ufe0f', '\U000e0100', '\u180b', // variation selectors
		'\u034f', '\u115f', '\u3164', '\uffa0', // other default-ignorable
	} {
		if !Invisible(r) {
			t.Errorf("Invisible(%U) = false, want true", r)
		}
	}
}
