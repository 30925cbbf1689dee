package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"go.yaml.in/yaml/v3"

	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestReferenceMatchesPin checks that the Swagger UI files committed under
// reference/swagger-ui are swagger-ui-dist at the version PIN names, as
// scripts/fetch-swagger-ui.sh wrote them from the integrity-checked package:
// package.json names that version, every file is in SHA256SUMS with its
// hash (a gzipped one's expanded content), and nothing else is there.
func TestReferenceMatchesPin(t *testing.T) {
	const dir = "reference/swagger-ui"
	pin, err := referenceFiles.ReadFile(dir + "/PIN")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(pin))
	if len(fields) != 3 || fields[0] != "swagger-ui-dist" || !strings.HasPrefix(fields[2], "sha512-") {
		t.Fatalf("PIN %q, want: swagger-ui-dist VERSION sha512-INTEGRITY", pin)
	}
	var pkg struct{ Name, Version string }
	b, _ := referenceFiles.ReadFile(dir + "/package.json")
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Name != fields[0] || pkg.Version != fields[1] {
		t.Errorf("package.json is %s %s (%v), PIN says %s %s", pkg.Name, pkg.Version, err, fields[0], fields[1])
	}

	sums := map[string]string{}
	b, _ = referenceFiles.ReadFile(dir + "/SHA256SUMS")
	for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		sums[name] = sum
	}
	entries, err := fs.ReadDir(referenceFiles, dir)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range entries {
		if e.Name() == "PIN" || e.Name() == "SHA256SUMS" {
			continue
		}
		content, _ := referenceFiles.ReadFile(dir + "/" + e.Name())
		name := strings.TrimSuffix(e.Name(), ".gz")
		if name != e.Name() {
			zr, err := gzip.NewReader(bytes.NewReader(content))
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			if content, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
		}
		sum := sha256.Sum256(content)
		if want, ok := sums[name]; !ok {
			t.Errorf("%s/%s is not in SHA256SUMS: not from the pinned package", dir, e.Name())
		} else if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s/%s has sha256 %s, SHA256SUMS says %s: changed since scripts/fetch-swagger-ui.sh fetched it", dir, e.Name(), got, want)
		}
		seen = append(seen, name)
	}
	for name := range sums {
		if !slices.Contains(seen, name) {
			t.Errorf("SHA256SUMS names %s, which is not in %s", name, dir)
		}
	}
	for _, need := range []string{"LICENSE", "NOTICE", "swagger-ui-bundle.js", "swagger-ui.css"} {
		if !slices.Contains(seen, need) {
			t.Errorf("%s lacks %s", dir, need)
		}
	}
}

// TestReferenceDocumentIsCurrent fails when the document the gateway
// embeds is not docs/openapi.yaml, the source: `make generate` copies it.
func TestReferenceDocumentIsCurrent(t *testing.T) {
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	source, err := os.ReadFile(filepath.Join(root, "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	embedded, _ := referenceFiles.ReadFile("reference/openapi.yaml")
	if !bytes.Equal(source, embedded) {
		t.Fatal("gateway/reference/openapi.yaml is not docs/openapi.yaml: run make generate")
	}
}

func TestReferenceServes(t *testing.T) {
	f := newGateway(t, testkit.Redis(t), generous)
	assets, err := referenceAssets()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the page, with a policy that allows the gateway's own files only", func(t *testing.T) {
		for _, p := range []string{"/docs", "/docs/"} {
			rec := f.do(t, "GET", p, "", "")
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
				!strings.Contains(rec.Body.String(), `<script src="/docs/swagger-ui-bundle.js">`) {
				t.Fatalf("GET %s: %d %s %.200s", p, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("GET %s: Content-Security-Policy %q lacks %q", p, csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Errorf("GET %s: Content-Security-Policy %q allows unsafe sources", p, csp)
			}
		}
	})

	t.Run("the bundle gzipped when taken, expanded otherwise, revalidated by ETag", func(t *testing.T) {
		a := assets["/docs/swagger-ui-bundle.js"]
		rec := f.do(t, "GET", "/docs/swagger-ui-bundle.js", "", "", "Accept-Encoding", "gzip, deflate, br")
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Encoding") != "gzip" || !bytes.Equal(rec.Body.Bytes(), a.gzipped) ||
			rec.Header().Get("Vary") != "Accept-Encoding" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
			t.Fatalf("gzip: %d %v", rec.Code, rec.Header())
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		if plain, _ := io.ReadAll(zr); !bytes.Contains(plain, []byte("SwaggerUIBundle")) {
			t.Fatal("the gzipped bundle does not expand to Swagger UI")
		}
		rec = f.do(t, "GET", "/docs/swagger-ui-bundle.js", "", "", "Accept-Encoding", "gzip;q=0")
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Encoding") != "" || !bytes.Equal(rec.Body.Bytes(), a.body) {
			t.Fatalf("no gzip: %d %v", rec.Code, rec.Header())
		}
		tag := rec.Header().Get("ETag")
		if rec := f.do(t, "GET", "/docs/swagger-ui-bundle.js", "", "", "If-None-Match", tag); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Fatalf("If-None-Match %s: %d", tag, rec.Code)
		}
		if rec := f.do(t, "HEAD", "/docs/swagger-ui.css", "", ""); rec.Code != http.StatusOK || rec.Body.Len() != 0 ||
			!strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
			t.Fatalf("HEAD: %d %v", rec.Code, rec.Header())
		}
		if rec := f.do(t, "GET", "/docs/LICENSE", "", ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Apache License") {
			t.Fatalf("LICENSE: %d", rec.Code)
		}
	})

	t.Run("the document in YAML and in JSON, the same and in the same order", func(t *testing.T) {
		y := f.do(t, "GET", "/api/v1/openapi.yaml", "", "")
		j := f.do(t, "GET", "/api/v1/openapi.json", "", "")
		if y.Code != http.StatusOK || j.Code != http.StatusOK || !strings.HasPrefix(j.Header().Get("Content-Type"), "application/json") ||
			!strings.HasPrefix(y.Header().Get("Content-Type"), "application/yaml") {
			t.Fatalf("yaml %d %s, json %d %s", y.Code, y.Header().Get("Content-Type"), j.Code, j.Header().Get("Content-Type"))
		}
		var fromYAML, fromJSON any
		if err := yaml.Unmarshal(y.Body.Bytes(), &fromYAML); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j.Body.Bytes(), &fromJSON); err != nil {
			t.Fatal(err)
		}
		// Through JSON once, so both hold the same Go types.
		b, _ := json.Marshal(fromYAML)
		_ = json.Unmarshal(b, &fromYAML)
		if !reflect.DeepEqual(fromYAML, fromJSON) {
			t.Fatal("openapi.json is not openapi.yaml")
		}
		if !bytes.HasPrefix(j.Body.Bytes(), []byte(`{"openapi":"3.1.0","info":`)) {
			t.Errorf("openapi.json starts %.40s, want the YAML's order", j.Body)
		}
		if i, k := bytes.Index(j.Body.Bytes(), []byte(`"/auth/register"`)), bytes.Index(j.Body.Bytes(), []byte(`"/auth/login"`)); i < 0 || k < i {
			t.Error("openapi.json's paths are not in the YAML's order")
		}
	})

	t.Run("other paths under /docs are 404", func(t *testing.T) {
		for _, p := range []string{"/docs/PIN", "/docs/SHA256SUMS", "/docs/package.json", "/docs/nope.js", "/docs/swagger-ui-bundle.js.gz"} {
			if rec := f.do(t, "GET", p, "", ""); rec.Code != http.StatusNotFound || errorCode(t, rec) != "not_found" {
				t.Errorf("GET %s: %d", p, rec.Code)
			}
		}
	})
}

// The reference's files draw on the sender's address's allowance like any
// anonymous request, so they are no way around the rate limit.
func TestReferenceIsRateLimited(t *testing.T) {
	f := newGateway(t, testkit.Redis(t), redis_rate.Limit{Rate: 2, Burst: 2, Period: time.Minute})
	remote := newClientAddr()
	for i := range 2 {
		if rec := f.doFrom(t, remote, "GET", "/docs", "", ""); rec.Code != http.StatusOK || rec.Header().Get("X-RateLimit-Limit") != "2" {
			t.Fatalf("request %d: %d %v", i+1, rec.Code, rec.Header())
		}
	}
	rec := f.doFrom(t, remote, "GET", "/api/v1/openapi.json", "", "")
	if rec.Code != http.StatusTooManyRequests || errorCode(t, rec) != "rate_limited" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("third request: %d %s", rec.Code, rec.Body)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"": false, "gzip": true, "deflate, gzip;q=0.5": true, "GZIP": true, "gzip;q=0": false, "gzip; q=0.0": false, "br": false, "x-gzip": false,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v", header, got)
		}
	}
}

// Behind a trusted load balancer the reference and the storefront count
// each client at its X-Forwarded-For address, as the API's routes do
// (TestClientsBehindATrustedProxy). Before, every client's page loads drew
// on the balancer's one allowance: a few visitors, or one flooder, and the
// shop and /docs were 429 for everyone.
func TestAssetsCountClientsBehindATrustedProxy(t *testing.T) {
	limit := redis_rate.Limit{Rate: 2, Burst: 2, Period: time.Minute}
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: limit,
		trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}})
	ip := func() string { return netip.MustParseAddrPort(newClientAddr()).Addr().String() }
	balancer := "10.0.3.7:41000"
	flooder := ip()
	for range 3 {
		f.doFrom(t, balancer, "GET", "/docs", "", "", "X-Forwarded-For", flooder)
	}
	for _, path := range []string{"/docs", "/"} {
		if rec := f.doFrom(t, balancer, "GET", path, "", "", "X-Forwarded-For", ip()); rec.Code != http.StatusOK {
			t.Fatalf("GET %s by another client through the same balancer: %d %s, want 200", path, rec.Code, rec.Body)
		}
	}
}
