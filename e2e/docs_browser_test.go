package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// referenceTags are the sections the API reference must show: API.md's
// areas, and the document itself.
var referenceTags = []string{"auth", "users", "categories", "products", "orders", "payments", "notifications", "webhooks", "reference"}

// TestAPIReferenceInBrowser opens the gateway's /docs in headless Chromium,
// as a developer would, on a real gateway and user service: the page comes
// up with a section per tag, every file it loads comes from the gateway
// (none from a CDN) and its Content-Security-Policy blocks nothing of its
// own; then the developer authorizes with a bearer token and runs "Try it
// out" on GET /users/me, which answers 200 with their profile.
// MERCATO_SCREENSHOT_DIR, when set, receives a screenshot of the page.
func TestAPIReferenceInBrowser(t *testing.T) {
	browser := chromiumPath(t)
	consul := testkit.NewConsul(t).Addr()
	redisAddr := testkit.NewRedis(t).Addr()
	start(t, "user", "-consul-addr", consul, "-database-url", testkit.PostgresURL(t),
		"-redis-addr", redisAddr, "-jwt-secret", jwtSecret, "-bcrypt-cost", "4")
	waitPassing(t, consul, "user", 1)
	gw := start(t, "gateway", "-consul-addr", consul, "-redis-addr", redisAddr, "-jwt-secret", jwtSecret)
	p := &userPlatform{api: newClient(t, gw.addr)}
	p.register(t, "grace@example.com")
	token := p.login(t, "grace@example.com").AccessToken
	base := "http://" + gw.addr

	ctx := newBrowser(t, browser, 1400, 1000, 2*time.Minute)

	// Every request the page makes, every console error, and every
	// Content-Security-Policy violation the page sees.
	var mu sync.Mutex
	var requested, consoleErrors []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, ev.Request.Method+" "+ev.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("starting Chromium (%s): %v", browser, err)
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				consoleErrors = append(consoleErrors, m.String())
				mu.Unlock()
			}
		}
	}()
	const recordViolations = `window.__csp = [];
document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: recordViolations}); err != nil {
		t.Fatal(err)
	}
	fail := func(what string, err error) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s: %v (console: %v)", what, err, consoleErrors)
	}

	op := "#operations-users-getProfile"
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/docs"), chromedp.WaitVisible(chromedp.CSS(op))); err != nil {
		fail("loading "+base+"/docs", err)
	}
	tags, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("h3.opblock-tag")).map(e => e.dataset.tag)`))
	if err != nil {
		fail("reading the tags", err)
	}
	if !slices.Equal(tags, referenceTags) {
		t.Errorf("the reference shows the tags %v, want %v", tags, referenceTags)
	}

	// Authorize with the bearer token, then try GET /users/me.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`button.authorize`)),
		chromedp.WaitVisible(chromedp.CSS(`.modal-ux input`)),
		chromedp.SendKeys(chromedp.CSS(`.modal-ux input`), token),
		chromedp.Click(chromedp.CSS(`.modal-ux button.modal-btn.authorize`)),
		chromedp.Click(chromedp.CSS(`.modal-ux button.btn-done`)),
		chromedp.WaitNotPresent(chromedp.CSS(`.modal-ux`)),
		chromedp.Click(chromedp.CSS(op+` .opblock-summary-control`)),
		chromedp.Click(chromedp.CSS(op+` button.try-out__btn`)),
		chromedp.Click(chromedp.CSS(op+` button.execute`)),
		chromedp.WaitVisible(chromedp.CSS(op+` .live-responses-table tr.response .response-col_status`)),
	); err != nil {
		fail("authorizing and trying GET /users/me", err)
	}
	read := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			fail("reading "+sel, err)
		}
		return strings.TrimSpace(v)
	}
	status := read(op + ` .live-responses-table tr.response .response-col_status`)
	answer := read(op + ` .live-responses-table tr.response .response-col_description pre`)
	curl := read(op + ` .curl-command`)
	if status != "200" || !strings.Contains(answer, `"email": "grace@example.com"`) {
		t.Errorf("Try it out on GET /users/me: status %q, answer %.300q; want 200 with the profile", status, answer)
	}
	if !strings.Contains(curl, "Authorization: Bearer "+token) || !strings.Contains(curl, base+"/api/v1/users/me") {
		t.Errorf("the request Swagger UI made is not to this gateway with the token: %.300s", curl)
	}
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__csp`))
	if err != nil {
		fail("reading the policy's violations", err)
	}
	if len(violations) > 0 {
		t.Errorf("the page's Content-Security-Policy blocked: %v", violations)
	}

	mu.Lock()
	requests, errs := slices.Clone(requested), slices.Clone(consoleErrors)
	mu.Unlock()
	var fromGateway int
	for _, r := range requests {
		_, raw, _ := strings.Cut(r, " ")
		u, err := url.Parse(raw)
		switch {
		case err == nil && u.Scheme == "data":
		case err == nil && u.Host == gw.addr:
			fromGateway++
		default:
			t.Errorf("the page fetched %s: everything must come from the gateway", r)
		}
	}
	for _, want := range []string{"GET " + base + "/docs/swagger-ui-bundle.js", "GET " + base + "/api/v1/openapi.json", "GET " + base + "/api/v1/users/me"} {
		if !slices.Contains(requests, want) {
			t.Errorf("the page never requested %s; it requested %v", want, requests)
		}
	}
	if len(errs) > 0 {
		t.Errorf("the page logged errors: %v", errs)
	}
	t.Logf("the reference at %s/docs showed the tags %v; Try it out on GET /users/me answered %s; %d requests, all to the gateway",
		base, tags, strings.TrimSpace(status), fromGateway)

	if dir := os.Getenv("MERCATO_SCREENSHOT_DIR"); dir != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: a PNG
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "api-reference.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// chromiumPath is Chromium's executable, installed from Debian's packages
// by scripts/install-chromium.sh when it is missing ($MERCATO_CHROMIUM
// names another). The test fails, saying why, when it cannot be had.
func chromiumPath(t *testing.T) string {
	t.Helper()
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "install-chromium.sh"))
	cmd.Stderr = testWriter{t}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Chromium is needed for the API reference's browser test, and scripts/install-chromium.sh could not install it (%v); "+
			"install Debian's chromium package, or set MERCATO_CHROMIUM to a Chromium or Chrome executable", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// testWriter shows a command's progress lines in the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// newBrowser starts headless Chromium (browser, from chromiumPath) with a
// profile of its own and a window of width × height, and returns a context
// of its first tab, cancelled after timeout or when the test ends. extra
// adds allocator options.
func newBrowser(t *testing.T, browser string, width, height int, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:0]),
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}
