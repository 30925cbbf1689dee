package gateway

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/gateway/storefront"
)

// immutable is how long a versioned asset of the storefront may be kept: a
// year, the most RFC 9111 expects; a new version has a new path.
const immutable = "public, max-age=31536000, immutable"

// mountStorefront serves the demo web shop (package storefront) at / and
// its versioned assets under /assets/<version>/, drawing on the address's
// allowance like the reference. Text files are gzipped once here, at start.
func (g *Gateway) mountStorefront(router *mux.Router) {
	files, _, err := storefront.Files()
	if err != nil {
		panic("gateway: the embedded storefront: " + err.Error())
	}
	for _, f := range files {
		a := &asset{contentType: f.ContentType, body: f.Body, etag: etag(f.Body), csp: storefront.CSP, cacheControl: "no-cache"}
		if f.Immutable {
			a.cacheControl = immutable
		}
		if strings.HasPrefix(f.ContentType, "text/") || strings.HasPrefix(f.ContentType, "image/svg") {
			if z := gzipped(f.Body); len(z) < len(f.Body) {
				a.gzipped, a.gzipETag = z, etag(z)
			}
		}
		router.Methods(http.MethodGet, http.MethodHead).Path(f.Path).Handler(g.serveAsset(a))
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	_, _ = zw.Write(b)                                       // a bytes.Buffer does not fail
	_ = zw.Close()
	return buf.Bytes()
}
