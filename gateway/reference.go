package gateway

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"go.yaml.in/yaml/v3"

	"github.com/mercato-dev/mercato/shared/httpkit"
)

// The API reference: the OpenAPI document at /api/v1/openapi.yaml (the
// source, docs/openapi.yaml, which `make generate` copies into reference/)
// and /api/v1/openapi.json (the same, in JSON and in the same order), and
// Swagger UI reading it at /docs, its "Try it out" calling this gateway.
// Everything is embedded in the binary, so the page works with no network:
// Swagger UI's files are swagger-ui-dist from the npm registry at the version
// reference/swagger-ui/PIN names (scripts/fetch-swagger-ui.sh), the larger
// ones stored gzipped and served so to clients that take gzip.
//
//go:embed reference
var referenceFiles embed.FS

// referenceCSP lets the reference page run the gateway's own scripts and
// styles only, load images of its own or inline (Swagger UI's icons are data:
// SVGs), and call this gateway alone, for the document and for "Try it out";
// no other site may frame it.
const referenceCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one file the reference serves.
type asset struct {
	contentType string
	body        []byte
	etag        string
	gzipped     []byte // body, gzip-compressed, for files stored so; else nil
	gzipETag    string
	// csp and cacheControl are the reference's (referenceCSP, no-cache)
	// when empty.
	csp, cacheControl string
}

// referenceAssets maps each path of the reference to what it serves.
func referenceAssets() (map[string]*asset, error) {
	assets := map[string]*asset{}
	add := func(urlPath, file string) error {
		b, err := referenceFiles.ReadFile(file)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(file, ".gz")
		a := &asset{contentType: contentType(name)}
		if name != file {
			a.gzipped = b
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
		}
		a.body = b
		a.etag = etag(a.body)
		if a.gzipped != nil {
			a.gzipETag = etag(a.gzipped)
		}
		assets[urlPath] = a
		return nil
	}

	for _, p := range []string{"/docs", "/docs/"} {
		if err := add(p, "reference/index.html"); err != nil {
			return nil, err
		}
	}
	if err := add("/docs/init.js", "reference/init.js"); err != nil {
		return nil, err
	}
	// Swagger UI's bundle and stylesheet, and the licences that go with them.
	vendored, err := fs.ReadDir(referenceFiles, "reference/swagger-ui")
	if err != nil {
		return nil, err
	}
	for _, e := range vendored {
		switch name := e.Name(); name {
		case "PIN", "SHA256SUMS", "package.json":
			// What the pin test reads, not what the page needs.
		default:
			if err := add("/docs/"+strings.TrimSuffix(name, ".gz"), "reference/swagger-ui/"+name); err != nil {
				return nil, err
			}
		}
	}

	const doc = httpkit.APIPrefix + "/openapi"
	if err := add(doc+".yaml", "reference/openapi.yaml"); err != nil {
		return nil, err
	}
	js, err := yamlToJSON(assets[doc+".yaml"].body)
	if err != nil {
		return nil, fmt.Errorf("reference/openapi.yaml: %w", err)
	}
	assets[doc+".json"] = &asset{contentType: "application/json; charset=utf-8", body: js, etag: etag(js)}
	return assets, nil
}

// mountReference serves the reference's files on router, each request
// drawing on its address's allowance as an anonymous API call does.
func (g *Gateway) mountReference(router *mux.Router) {
	assets, err := referenceAssets()
	if err != nil {
		// The files are compiled in and read by the tests: this is a build
		// that should never have passed them.
		panic("gateway: the embedded API reference: " + err.Error())
	}
	for p, a := range assets {
		router.Methods(http.MethodGet, http.MethodHead).Path(p).Handler(g.serveAsset(a))
	}
}

func (g *Gateway) serveAsset(a *asset) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.limiter.allow(r.Context(), w, ClientRate, addressKey(g.fromClient(r))) {
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		// Revalidated with the ETag unless said otherwise: a new gateway's
		// files show at once.
		h.Set("Cache-Control", cmp.Or(a.cacheControl, "no-cache"))
		h.Set("Content-Security-Policy", cmp.Or(a.csp, referenceCSP))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		body, tag := a.body, a.etag
		if a.gzipped != nil {
			h.Set("Vary", "Accept-Encoding")
			if acceptsGzip(r.Header.Get("Accept-Encoding")) {
				body, tag = a.gzipped, a.gzipETag
				h.Set("Content-Encoding", "gzip")
			}
		}
		h.Set("ETag", tag)
		if etagMatches(r.Header.Get("If-None-Match"), tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".yaml":
		return "application/yaml; charset=utf-8"
	case "", ".txt":
		return "text/plain; charset=utf-8" // LICENSE, NOTICE
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// etagMatches reports whether an If-None-Match header names tag (or is *).
func etagMatches(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip (a q of
// 0 refuses it).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}

// yamlToJSON turns a YAML document into the same JSON, keys in the order
// they are written (encoding/json would sort them, and the reference shows
// operations in the document's order).
func yamlToJSON(src []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, &doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("line %d: want one document", n.Line)
		}
		return writeJSON(buf, n.Content[0])
	case yaml.AliasNode:
		return writeJSON(buf, n.Alias)
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				buf.WriteByte(',')
			}
			key, _ := json.Marshal(n.Content[i].Value)
			buf.Write(key)
			buf.WriteByte(':')
			if err := writeJSON(buf, n.Content[i+1]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, c); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		buf.Write(b)
	default:
		return fmt.Errorf("line %d: unexpected YAML node", n.Line)
	}
	return nil
}
