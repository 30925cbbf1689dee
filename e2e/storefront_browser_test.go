package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
)

// TestStorefrontInBrowser is a shopper and the admin using the storefront
// (gateway/storefront) in headless Chromium on the whole platform with the
// demo catalogue: a new customer registers, finds a product by search,
// adds it to the cart from its page, checks out with 4242 and watches the
// order turn confirmed on its page without reloading (the status element
// changes while no navigation happens, from the order's event stream); a
// second checkout with the declined card shows the cancellation and its
// reason; the admin, in a browser of their own, marks the confirmed order
// shipped and the customer's open order page follows. Every file and call
// goes to the gateway, the Content-Security-Policy blocks nothing and the
// page logs no error. It logs the bytes transferred by the first load of
// the product list. MERCATO_SCREENSHOT_DIR, when set, receives a PNG per
// step.
func TestStorefrontInBrowser(t *testing.T) {
	browser := chromiumPath(t)
	// The sandbox confirms 3 s after the charge: the page shows pending
	// first. Access tokens last 20 s: the pages must refresh them, unseen.
	p := startCheckoutPlatform(t, checkoutOptions{webhookDelay: "3s", extraArgs: map[string][]string{
		"product": {"-seed-demo"}, "user": {"-access-token-ttl", "20s"}}})
	base := "http://" + p.gateway.addr
	shots := os.Getenv("MERCATO_SCREENSHOT_DIR")

	ctx := newBrowser(t, browser, 1000, 800, 4*time.Minute,
		// Two tabs work at once (the customer's and the admin's): neither
		// may be slowed down for being in the background.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true))
	customer := watchTab(t, ctx, browser, p.gateway.addr)

	step := 0
	shot := func(tab *tab, name string) {
		t.Helper()
		step++
		if shots == "" {
			return
		}
		png, err := chromedp.Run(tab.ctx, chromedp.CaptureScreenshot()) // the viewport, 1000×800: small files
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// 1. The product list, and what its first load costs.
	customer.measure(true)
	customer.do("loading the shop", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#products li.card`)))
	time.Sleep(500 * time.Millisecond) // the icon and anything late
	bytes, requests := customer.measure(false)
	t.Logf("page weight: the first load of the product list transferred %.0f bytes in %d requests (%s)", bytes, len(requests), strings.Join(requests, ", "))
	shot(customer, "catalogue")

	// 2. Register (the form logs the new customer in).
	email := "shopper-" + uuid.NewString()[:8] + "@example.com"
	customer.do("registering",
		chromedp.Click(chromedp.CSS(`nav a[href="#/register"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#register`)),
		chromedp.SendKeys(chromedp.CSS(`#register input[name=first_name]`), "Ada"),
		chromedp.SendKeys(chromedp.CSS(`#register input[name=last_name]`), "Lovelace"),
		chromedp.SendKeys(chromedp.CSS(`#register input[name=email]`), email),
		chromedp.SendKeys(chromedp.CSS(`#register input[name=password]`), "correct-horse"),
	)
	shot(customer, "register")
	customer.do("submitting the registration",
		chromedp.Click(chromedp.CSS(`#register button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signed-in`)))
	signedIn := time.Now()

	// 3. Search, open the product, add two to the cart.
	customer.do("searching for a skillet",
		chromedp.SendKeys(chromedp.CSS(`form[role=search] input[name=q]`), "skillet"),
		chromedp.Click(chromedp.CSS(`form[role=search] button[type=submit]`)),
		// The skillet may be on the list the search replaces: the results
		// are drawn when the heading names the search.
		until(`document.querySelector("#main h1")?.textContent === "Results for “skillet”"`),
		chromedp.WaitVisible(chromedp.CSS(`#products li[data-product="cast-iron-skillet-26cm"]`)))
	if n := customer.count(`#products li.card`); n != 1 {
		t.Errorf("searching for skillet shows %d products, want 1", n)
	}
	shot(customer, "search")
	customer.do("adding the skillet to the cart",
		chromedp.Click(chromedp.CSS(`li[data-product="cast-iron-skillet-26cm"] h2 a`)),
		chromedp.WaitVisible(chromedp.CSS(`#add-to-cart`)),
		chromedp.SetValue(chromedp.CSS(`#add-to-cart input[name=quantity]`), "2"),
		chromedp.Click(chromedp.CSS(`#add-to-cart button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#add-to-cart .notice`)))
	if got := customer.text(`#cart-count`); got != "2" {
		t.Errorf("the cart counts %q items, want 2", got)
	}
	shot(customer, "product")

	// 4. The cart, the checkout with 4242, the order confirmed live.
	customer.do("opening the cart",
		chromedp.Click(chromedp.CSS(`nav a[href="#/cart"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#cart`)))
	shot(customer, "cart")
	customer.do("filling in the checkout",
		chromedp.Click(chromedp.CSS(`#to-checkout`)),
		chromedp.WaitVisible(chromedp.CSS(`#checkout`)))
	customer.address()
	shot(customer, "checkout")
	first := customer.placeOrder()
	customer.watchStatus()
	shot(customer, "order-pending")
	customer.do("waiting for the order to be confirmed", chromedp.WaitVisible(chromedp.CSS(`#order-status[data-status="confirmed"]`)))
	customer.sameDocument("the order confirmed", "pending", "confirmed")
	if !slices.ContainsFunc(customer.requested(), func(r string) bool { return r == "GET "+base+"/api/v1/orders/"+first+"/events" }) {
		t.Errorf("the order page never opened the order's event stream; it requested %v", customer.requested())
	}
	shot(customer, "order-confirmed")

	// 5. A second order, with the declined card: cancelled, and why.
	customer.do("adding earbuds from the list",
		chromedp.Click(chromedp.CSS(`nav a[href="#/"]`)),
		// The whole list first, then the query set at once: typed key by
		// key into a form still being drawn, it was once submitted as
		// "ear".
		until(`document.querySelector("#main h1")?.textContent === "Shop"`),
		chromedp.WaitVisible(chromedp.CSS(`#products li.card`)),
		chromedp.SetValue(chromedp.CSS(`form[role=search] input[name=q]`), "earbuds"),
		chromedp.Click(chromedp.CSS(`form[role=search] button[type=submit]`)),
		// As with the skillet: a click on the list the search replaces can
		// land on a card that is going away, and the cart stays empty.
		until(`document.querySelector("#main h1")?.textContent === "Results for “earbuds”"`),
		chromedp.WaitVisible(chromedp.CSS(`#products li[data-product="everyday-earbuds"]`)),
		chromedp.Click(chromedp.CSS(`li[data-product="everyday-earbuds"] button`)),
		until(`document.getElementById("cart-count")?.textContent === "1"`),
		chromedp.Click(chromedp.CSS(`nav a[href="#/cart"]`)),
		chromedp.Click(chromedp.CSS(`#to-checkout`)),
		chromedp.WaitVisible(chromedp.CSS(`#checkout`)),
		chromedp.SetValue(chromedp.CSS(`#checkout input[name=number]`), cardDeclined))
	customer.address()
	second := customer.placeOrder()
	customer.watchStatus()
	customer.do("waiting for the order to be cancelled", chromedp.WaitVisible(chromedp.CSS(`#order-status[data-status="cancelled"]`)))
	customer.sameDocument("the declined order", "pending", "cancelled")
	if reason := customer.text(`#cancel-reason`); !strings.Contains(reason, "the card was declined") || !strings.Contains(reason, "card_declined") {
		t.Errorf("the cancelled order says %q, want the reason (card_declined) in words", reason)
	}
	shot(customer, "order-declined")

	// 6. The history, then the first order's page, left open.
	customer.do("opening the order history",
		chromedp.Click(chromedp.CSS(`nav a[href="#/orders"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.orders tr[data-order="`+second+`"]`)))
	shot(customer, "history")
	customer.do("opening the confirmed order",
		chromedp.Click(chromedp.CSS(`tr[data-order="`+first+`"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-status[data-status="confirmed"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#live[data-state="live"]`)))
	customer.watchStatus()

	// 7. The admin, in a browser context of their own, ships it.
	adminCtx, cancelAdmin := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancelAdmin()
	admin := watchTab(t, adminCtx, browser, p.gateway.addr)
	admin.do("logging in as the admin",
		chromedp.Navigate(base+"/#/login?next=/admin"),
		chromedp.WaitVisible(chromedp.CSS(`#login`)),
		chromedp.SendKeys(chromedp.CSS(`#login input[name=email]`), "admin@mercato.test"),
		chromedp.SendKeys(chromedp.CSS(`#login input[name=password]`), "admin-password-1"),
		chromedp.Click(chromedp.CSS(`#login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-order="`+first+`"] [data-action="mark-shipped"]`)))
	shot(admin, "admin-orders")
	admin.do("marking the order shipped",
		chromedp.Click(chromedp.CSS(`tr[data-order="`+first+`"] [data-action="mark-shipped"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-order="`+first+`"] .status-shipped`)))
	shot(admin, "admin-shipped")

	customer.do("waiting for the customer's page to show shipped", chromedp.WaitVisible(chromedp.CSS(`#order-status[data-status="shipped"]`)))
	customer.sameDocument("the shipped order", "confirmed", "shipped")
	shot(customer, "order-shipped")

	// 8. On a phone's screen the page fits its width.
	customer.do("narrowing the viewport to a phone's", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Sleep(300*time.Millisecond))
	if w, err := chromedp.Run(customer.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 390 {
		t.Errorf("on a 390 px wide screen the order page is %d px wide (%v): it must fit", w, err)
	}
	shot(customer, "order-phone")

	// 9. Past the first access token's 20 s, the history still loads: the
	// pages refresh the token and send the call again, unseen.
	time.Sleep(time.Until(signedIn.Add(22 * time.Second)))
	customer.do("opening the history with an expired access token",
		chromedp.EmulateViewport(1000, 800),
		chromedp.Click(chromedp.CSS(`nav a[href="#/orders"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-order="`+first+`"] .status-shipped`)))

	for _, tb := range []*tab{customer, admin} {
		tb.checkClean()
	}
	// The customer's session outlived its first access tokens.
	refreshed := 0
	for _, r := range customer.requested() {
		if r == "POST "+base+"/api/v1/auth/refresh" {
			refreshed++
		}
	}
	if refreshed == 0 {
		t.Errorf("the customer's pages never refreshed their 20 s access token in a longer session: %v", customer.requested())
	}
	t.Logf("the customer's pages refreshed the access token %d times", refreshed)
	var fresh tokenPair // the platform's admin token has expired by now
	p.call(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "admin@mercato.test", "password": "admin-password-1"}).
		must(t, http.StatusOK).decode(t, &fresh)
	if got := p.order(t, fresh.AccessToken, first).Status; got != "shipped" {
		t.Errorf("the API says the first order is %s, want shipped", got)
	}
}

// tab is one browser tab under test: what it requested, what it logged,
// how often its main frame navigated.
type tab struct {
	t       *testing.T
	ctx     context.Context
	gateway string

	mu          sync.Mutex
	requests    []string
	consoleErrs []string
	navigations int
	measuring   bool
	marker      string // watchStatus's mark of the document
	// navigationsAtMark is navigations when it was set.
	navigationsAtMark int
	sizes             map[network.RequestID]float64
	urls              map[network.RequestID]string
}

func watchTab(t *testing.T, ctx context.Context, browser, gateway string) *tab {
	t.Helper()
	tb := &tab{t: t, ctx: ctx, gateway: gateway, sizes: map[network.RequestID]float64{}, urls: map[network.RequestID]string{}}
	if err := chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			tb.requests = append(tb.requests, ev.Request.Method+" "+ev.Request.URL)
			if tb.measuring {
				tb.urls[ev.RequestID] = ev.Request.URL
			}
		case *network.EventLoadingFinished:
			if _, ok := tb.urls[ev.RequestID]; ok {
				tb.sizes[ev.RequestID] = ev.EncodedDataLength
			}
		case *page.EventFrameNavigated:
			if ev.Frame.ParentID == "" {
				tb.navigations++
			}
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
				tb.mu.Lock()
				tb.consoleErrs = append(tb.consoleErrs, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.Enable, page.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	const recordViolations = `window.__csp = [];
document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: recordViolations}); err != nil {
		t.Fatal(err)
	}
	return tb
}

// stepTimeout bounds one step of do: a step that cannot finish fails in
// that time with what the page shows, instead of using up the browser's
// whole deadline and leaving nothing to read the page with.
const stepTimeout = time.Minute

// do runs steps, failing the test with what and the page's errors.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.mu.Lock()
		errs := slices.Clone(tb.consoleErrs)
		tb.mu.Unlock()
		main, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.getElementById("main")?.innerText ?? ""`))
		tb.t.Fatalf("%s: %v\nthe page shows: %.1500s\nconsole: %v", what, err, main, errs)
	}
}

// until waits, as a step of do, for the JavaScript expression js to be
// true on the page.
func until(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(0))(ctx, t)
		return err
	})
}

// text is the visible text of the first element sel matches, once there
// is one. It is read by selector in one evaluation: chromedp.Text finds the
// node, then reads it by node id, and a page that redraws in between (the
// order page does when its reload returns) made that id stale ("No node
// with given id found").
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	tb.do("waiting for "+sel, until(fmt.Sprintf(`document.querySelector(%q) !== null`, sel)))
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).innerText`, sel)))
	if err != nil {
		tb.t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

func (tb *tab) count(sel string) int {
	tb.t.Helper()
	n, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		tb.t.Fatal(err)
	}
	return n
}

func (tb *tab) requested() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.requests)
}

// measure starts (on) or ends the count of bytes transferred, and returns
// the total and the requests counted.
func (tb *tab) measure(on bool) (float64, []string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.measuring = on
	if on {
		clear(tb.sizes)
		clear(tb.urls)
		return 0, nil
	}
	var sum float64
	var names []string
	for id, u := range tb.urls {
		sum += tb.sizes[id]
		names = append(names, fmt.Sprintf("%s %.0f B", strings.TrimPrefix(u, "http://"+tb.gateway), tb.sizes[id]))
	}
	slices.Sort(names)
	return sum, names
}

// address fills in the checkout's shipping address.
func (tb *tab) address() {
	tb.t.Helper()
	tb.do("filling in the address",
		chromedp.SendKeys(chromedp.CSS(`#checkout input[name=street]`), "1 Main St"),
		chromedp.SendKeys(chromedp.CSS(`#checkout input[name=city]`), "Springfield"),
		chromedp.SendKeys(chromedp.CSS(`#checkout input[name=state]`), "IL"),
		chromedp.SendKeys(chromedp.CSS(`#checkout input[name=zip_code]`), "62701"))
}

// placeOrder submits the checkout and returns the new order's id, from the
// order page it lands on.
func (tb *tab) placeOrder() string {
	tb.t.Helper()
	tb.do("placing the order",
		chromedp.Click(chromedp.CSS(`#place-order`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-status`)))
	hash, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`location.hash`))
	if err != nil || !strings.HasPrefix(hash, "#/orders/") {
		tb.t.Fatalf("after checkout the page is %q (%v), want an order's", hash, err)
	}
	return strings.TrimPrefix(hash, "#/orders/")
}

// watchStatus starts recording every status the order page's status
// element shows, and marks the document, so sameDocument can tell the page
// changed without being loaded again.
func (tb *tab) watchStatus() {
	tb.t.Helper()
	const js = `(() => {
  const el = document.getElementById("order-status");
  window.__seen = [el.dataset.status];
  window.__marker = Math.random().toString(36);
  new MutationObserver(() => { if (window.__seen.at(-1) !== el.dataset.status) window.__seen.push(el.dataset.status); })
    .observe(el, { attributes: true, attributeFilter: ["data-status"] });
  return window.__marker;
})()`
	marker, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.mu.Lock()
	tb.marker, tb.navigationsAtMark = marker, tb.navigations
	tb.mu.Unlock()
}

// sameDocument checks that since watchStatus the status element went from
// one status to the other and the page was neither reloaded nor left.
func (tb *tab) sameDocument(what, from, to string) {
	tb.t.Helper()
	type state struct {
		Seen   []string `json:"seen"`
		Marker string   `json:"marker"`
	}
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[state](`({seen: window.__seen ?? [], marker: window.__marker ?? ""})`))
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.mu.Lock()
	marker, before, now := tb.marker, tb.navigationsAtMark, tb.navigations
	tb.mu.Unlock()
	if s.Marker != marker || now != before {
		tb.t.Errorf("%s: the page was loaded again (marker %q, want %q; %d navigations since)", what, s.Marker, marker, now-before)
	}
	if !slices.Equal(s.Seen, []string{from, to}) {
		tb.t.Errorf("%s: the status element showed %v, want %s then %s, live", what, s.Seen, from, to)
	}
}

// checkClean fails on a request to anywhere but the gateway, a policy
// violation or a console error.
func (tb *tab) checkClean() {
	tb.t.Helper()
	for _, r := range tb.requested() {
		_, raw, _ := strings.Cut(r, " ")
		if u, err := url.Parse(raw); err != nil || (u.Host != tb.gateway && u.Scheme != "data") {
			tb.t.Errorf("the page fetched %s: everything must come from the gateway", r)
		}
	}
	violations, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]string](`window.__csp`))
	if err != nil {
		tb.t.Fatal(err)
	}
	if len(violations) > 0 {
		tb.t.Errorf("the Content-Security-Policy blocked: %v", violations)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	// Chromium logs every failed load: the 401 token_expired that the pages
	// answer with a refresh is expected; anything else is an error.
	var errs []string
	for _, e := range tb.consoleErrs {
		if strings.Contains(e, "Failed to load resource: the server responded with a status of 401") {
			tb.t.Logf("expected: %s", e)
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		tb.t.Errorf("the page logged errors: %v", errs)
	}
}
