package storefront

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestFiles checks what the gateway is given to serve: the page at /,
// revalidated, naming the current version's assets; every other file under
// /assets/<version>/, immutable, with its type; and every module import
// and page reference resolving to a file that is served.
func TestFiles(t *testing.T) {
	files, version, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(version) {
		t.Fatalf("version %q, want 12 hex digits", version)
	}
	byPath := map[string]File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	page := files[0]
	if page.Path != "/" || page.Immutable || page.ContentType != "text/html; charset=utf-8" {
		t.Fatalf("first file %s %q immutable=%v, want the page", page.Path, page.ContentType, page.Immutable)
	}
	if bytes.Contains(page.Body, []byte(versionToken)) {
		t.Error("the page still holds the version placeholder")
	}
	for _, want := range []string{`<meta name="viewport"`, `<html lang="en">`, `<main id="main"`, `<nav aria-label="Main">`} {
		if !bytes.Contains(page.Body, []byte(want)) {
			t.Errorf("the page lacks %s", want)
		}
	}
	prefix := AssetPrefix + version + "/"
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	for _, f := range files[1:] {
		if !strings.HasPrefix(f.Path, prefix) || !f.Immutable {
			t.Errorf("%s (immutable=%v): want an immutable file under %s", f.Path, f.Immutable, prefix)
		}
		ext := f.Path[strings.LastIndex(f.Path, "."):]
		if types[ext] == "" || f.ContentType != types[ext] {
			t.Errorf("%s: type %q, want %q", f.Path, f.ContentType, types[ext])
		}
	}
	for _, m := range regexp.MustCompile(`(?:href|src)="(/assets/[^"]+)"`).FindAllSubmatch(page.Body, -1) {
		if _, ok := byPath[string(m[1])]; !ok {
			t.Errorf("the page names %s, which is not served", m[1])
		}
	}
	if _, ok := byPath[prefix+"app.js"]; !ok || !bytes.Contains(page.Body, []byte(`<script type="module" src="`+prefix+`app.js">`)) {
		t.Error("the page does not load the current app.js as a module")
	}
	imports := regexp.MustCompile(`(?m)^import .* from "\./([^"]+)";$`)
	for _, f := range files[1:] {
		if !strings.HasSuffix(f.Path, ".js") {
			continue
		}
		for _, m := range imports.FindAllSubmatch(f.Body, -1) {
			if _, ok := byPath[prefix+string(m[1])]; !ok {
				t.Errorf("%s imports ./%s, which is not served", f.Path, m[1])
			}
		}
		if bytes.Contains(f.Body, []byte("innerHTML")) || bytes.Contains(f.Body, []byte("eval(")) {
			t.Errorf("%s builds markup from strings or evaluates code; the pages use h() only", f.Path)
		}
		if regexp.MustCompile(`https?://`).Match(f.Body) {
			t.Errorf("%s names an absolute URL: the pages call the gateway they come from only", f.Path)
		}
	}
}

// TestVersionFollowsContent: the same files give the same version, so
// every gateway of one build serves the same paths.
func TestVersionFollowsContent(t *testing.T) {
	_, a, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	_, b, _ := Files()
	if a != b {
		t.Fatalf("two versions of the same files: %s, %s", a, b)
	}
}

func TestCSPIsStrict(t *testing.T) {
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(CSP, want) {
			t.Errorf("CSP %q lacks %q", CSP, want)
		}
	}
	if strings.Contains(CSP, "unsafe") || strings.Contains(CSP, "*") {
		t.Errorf("CSP %q allows unsafe or any sources", CSP)
	}
}
