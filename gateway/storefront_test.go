package gateway

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mercato-dev/mercato/gateway/storefront"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestStorefrontServes: the page at / is HTML, revalidated by ETag, under
// the storefront's policy; its assets are served at their versioned paths
// with their types, cached for a year, gzipped when taken; other paths,
// older versions included, stay 404.
func TestStorefrontServes(t *testing.T) {
	f := newGateway(t, testkit.Redis(t), generous)
	files, version, err := storefront.Files()
	if err != nil {
		t.Fatal(err)
	}

	rec := f.do(t, "GET", "/", "", "")
	h := rec.Header()
	if rec.Code != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Cache-Control") != "no-cache" ||
		h.Get("Content-Security-Policy") != storefront.CSP || h.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(rec.Body.String(), "/assets/"+version+"/app.js") {
		t.Fatalf("GET /: %d %v %.200s", rec.Code, h, rec.Body)
	}
	if again := f.do(t, "GET", "/", "", "", "If-None-Match", h.Get("ETag")); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Errorf("GET / If-None-Match: %d", again.Code)
	}

	for _, file := range files[1:] {
		rec := f.do(t, "GET", file.Path, "", "", "Accept-Encoding", "gzip")
		h := rec.Header()
		if rec.Code != http.StatusOK || h.Get("Content-Type") != file.ContentType ||
			h.Get("Cache-Control") != "public, max-age=31536000, immutable" || h.Get("Content-Security-Policy") != storefront.CSP {
			t.Errorf("GET %s: %d %v", file.Path, rec.Code, h)
			continue
		}
		body := rec.Body.Bytes()
		if h.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(rec.Body)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(zr)
		} else if strings.HasSuffix(file.Path, ".js") {
			t.Errorf("GET %s: not gzipped for a client that takes it", file.Path)
		}
		if !bytes.Equal(body, file.Body) {
			t.Errorf("GET %s: not the file", file.Path)
		}
		if plain := f.do(t, "GET", file.Path, "", ""); plain.Header().Get("Content-Encoding") != "" || !bytes.Equal(plain.Body.Bytes(), file.Body) {
			t.Errorf("GET %s without gzip: %v", file.Path, plain.Header())
		}
	}
	if rec := f.do(t, "HEAD", "/assets/"+version+"/style.css", "", ""); rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD style.css: %d, %d bytes", rec.Code, rec.Body.Len())
	}

	for _, p := range []string{"/index.html", "/app.js", "/assets/000000000000/app.js", "/assets/" + version + "/nope.js",
		"/assets/" + version + "/", "/products", "/internal/orders"} {
		if rec := f.do(t, "GET", p, "", ""); rec.Code != http.StatusNotFound || errorCode(t, rec) != "not_found" {
			t.Errorf("GET %s: %d, want 404 not_found", p, rec.Code)
		}
	}
	if rec := f.do(t, "POST", "/", "", "{}"); rec.Code == http.StatusOK {
		t.Errorf("POST /: %d", rec.Code)
	}
}
