package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mercato-dev/mercato/gateway/storefront"
)

// The storefront's pages against a scripted stand-in of the API, for what
// the whole platform cannot be made to do on cue: a slow answer, a 429 on
// the order's stream. Only the storefront's files are real (served as the
// gateway serves them, with its policy); nothing else runs.

// fakeShop serves the storefront and the API routes handlers names
// ("GET /api/v1/orders/{id}"), counting the requests each pattern got.
type fakeShop struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string][]*http.Request
}

func newFakeShop(t *testing.T, handlers map[string]http.HandlerFunc) *fakeShop {
	t.Helper()
	files, _, err := storefront.Files()
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeShop{hits: map[string][]*http.Request{}}
	mux := http.NewServeMux()
	for _, f := range files {
		pattern := "GET " + f.Path
		if f.Path == "/" {
			pattern += "{$}" // the page itself, not everything below it
		}
		mux.HandleFunc(pattern, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", f.ContentType)
			w.Header().Set("Content-Security-Policy", storefront.CSP)
			_, _ = w.Write(f.Body)
		})
	}
	for pattern, h := range handlers {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			fs.mu.Lock()
			fs.hits[pattern] = append(fs.hits[pattern], r)
			fs.mu.Unlock()
			h(w, r)
		})
	}
	fs.srv = httptest.NewServer(mux) // on 127.0.0.1
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fakeShop) requests(pattern string) []*http.Request {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]*http.Request(nil), fs.hits[pattern]...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// openShop opens the fake shop signed in (a session in localStorage, as
// the login page leaves it) at hash.
func openShop(t *testing.T, fs *fakeShop, hash string) context.Context {
	t.Helper()
	ctx := newBrowser(t, chromiumPath(t), 1000, 800, time.Minute)
	const session = `localStorage.setItem("mercato.session", JSON.stringify({access_token: "access", refresh_token: "refresh",
  user: {id: "u1", email: "ada@example.com", first_name: "Ada", role: "customer"}})), true`
	if err := chromedp.Do(ctx, chromedp.Navigate(fs.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#nav`))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](session)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(fs.srv.URL+"/?signed-in"+hash)); err != nil {
		t.Fatal(err)
	}
	return ctx
}

var fakeOrder = map[string]any{"order": map[string]any{
	"id": "8d3c9a62-8f54-4c1a-9d55-1f7a0c7e1a01", "order_number": "ORD-1", "user_id": "u1", "status": "pending",
	"items":    []any{map[string]any{"id": "i1", "product_id": "p1", "name": "Tee", "quantity": 1, "unit_price": "10.00", "total_price": "10.00"}},
	"subtotal": "10.00", "tax_amount": "0.00", "shipping_amount": "0.00", "discount_amount": "0.00", "total_amount": "10.00",
	"currency": "USD", "shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"},
	"status_history": []any{map[string]any{"status": "pending", "at": "2026-01-01T00:00:00Z"}},
	"created_at":     "2026-01-01T00:00:00Z",
}}

// TestStorefrontStreamWaitsRetryAfter: an order's stream refused with 429
// too_many_streams and Retry-After: 10 (the order service's answer to a
// sixth stream) is tried again after those 10 s, not every 2 s.
func TestStorefrontStreamWaitsRetryAfter(t *testing.T) {
	const id = "8d3c9a62-8f54-4c1a-9d55-1f7a0c7e1a01"
	fs := newFakeShop(t, map[string]http.HandlerFunc{
		"GET /api/v1/orders/{id}": func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, fakeOrder) },
		"GET /api/v1/orders/{id}/events": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "10")
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]any{"code": "too_many_streams",
				"message": "too many open status streams for this user; close one or retry later"}})
		},
	})
	ctx := openShop(t, fs, "#/orders/"+id)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#live[data-state="reconnecting"]`))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second)
	if n := len(fs.requests("GET /api/v1/orders/{id}/events")); n != 1 {
		t.Errorf("in 7 s after a 429 with Retry-After: 10 the page opened the stream %d times, want 1", n)
	}
}

// TestStorefrontLateAnswerOfALeftPage: a page whose answer comes after the
// shopper has moved on does not draw over the page now shown.
func TestStorefrontLateAnswerOfALeftPage(t *testing.T) {
	var open atomic.Int32 // the order streams open
	fs := newFakeShop(t, map[string]http.HandlerFunc{
		"GET /api/v1/orders/{id}": func(w http.ResponseWriter, _ *http.Request) {
			time.Sleep(1500 * time.Millisecond)
			writeJSON(w, http.StatusOK, fakeOrder)
		},
		"GET /api/v1/orders/{id}/events": func(w http.ResponseWriter, r *http.Request) {
			open.Add(1)
			defer open.Add(-1)
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("retry: 2000\n\n"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		},
	})
	ctx := openShop(t, fs, "#/orders/8d3c9a62-8f54-4c1a-9d55-1f7a0c7e1a01")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.hash = "#/cart", true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, until(`document.querySelector("#main h1")?.textContent === "Cart"`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // the order's answer lands
	h1, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#main h1")?.textContent ?? ""`))
	if err != nil {
		t.Fatal(err)
	}
	if h1 != "Cart" {
		t.Errorf("on #/cart the page shows %q: the order page, left before its answer came, drew over the cart", h1)
	}
	for deadline := time.Now().Add(3 * time.Second); open.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // a stream aborted by the page, closing here
	}
	if n := open.Load(); n != 0 {
		t.Errorf("the order page, left before it was drawn, keeps %d event streams open", n)
	}
}

// TestStorefrontSearchSortedNewestFirst: on a search's results, "Newest
// first" lists the newest first. The API sorts a search by relevance unless
// told otherwise (sort=-created_at).
func TestStorefrontSearchSortedNewestFirst(t *testing.T) {
	fs := newFakeShop(t, map[string]http.HandlerFunc{
		"GET /api/v1/categories": func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"items": []any{}})
		},
		"GET /api/v1/products": func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"items": []any{}, "page": 1, "page_size": 12, "total": 0})
		},
	})
	ctx := openShop(t, fs, "#/?q=tee")
	if err := chromedp.Do(ctx, until(`document.querySelector("#results-title")?.textContent === "0 products"`)); err != nil {
		t.Fatal(err)
	}
	const choose = `(() => {
  const s = document.querySelector("form[role=search] select[name=sort]");
  s.value = [...s.options].find((o) => o.text === "Newest first").value;
  document.querySelector("form[role=search] button[type=submit]").click();
  return true;
})()`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](choose)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(fs.requests("GET /api/v1/products")) < 3 && time.Now().Before(deadline) { // the first load's, the search's, the sorted search's
		time.Sleep(50 * time.Millisecond)
	}
	reqs := fs.requests("GET /api/v1/products")
	last := reqs[len(reqs)-1].URL.Query()
	if last.Get("q") != "tee" || last.Get("sort") != "-created_at" {
		t.Errorf("the search sorted %q asked for %v, want q=tee and sort=-created_at (without a sort the API orders a search by relevance)",
			"Newest first", last)
	}
}

// TestStorefrontTabsShareARefresh: two tabs of one session whose access
// token has expired refresh it once between them. The user service rotates
// refresh tokens and takes a second use of one for a stolen token, ending
// the session: two tabs that each sent the same refresh token signed the
// shopper out of both.
func TestStorefrontTabsShareARefresh(t *testing.T) {
	var refreshed atomic.Bool
	fs := newFakeShop(t, map[string]http.HandlerFunc{
		"GET /api/v1/orders": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer access2" {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": "token_expired", "message": "the access token has expired"}})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"items": []any{}, "page": 1, "page_size": 20, "total": 0})
		},
		"POST /api/v1/auth/refresh": func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				RefreshToken string `json:"refresh_token"`
			}
			_ = json.NewDecoder(r.Body).Decode(&body)
			time.Sleep(time.Second) // long enough for the other tab to want one too
			if body.RefreshToken != "refresh" || refreshed.Swap(true) {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": "refresh_token_reused",
					"message": "refresh token was already used; the session has been revoked"}})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"access_token": "access2", "refresh_token": "refresh2", "token_type": "Bearer", "expires_in": 900})
		},
	})
	first := openShop(t, fs, "#/")
	second, cancel := chromedp.NewContext(first) // a tab of the same browser: the same localStorage
	t.Cleanup(cancel)
	if err := chromedp.Do(second, chromedp.Navigate(fs.srv.URL+"/?signed-in#/")); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []context.Context{first, second} {
		if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`location.hash = "#/orders", true`)); err != nil {
			t.Fatal(err)
		}
	}
	for i, tab := range []context.Context{first, second} {
		if err := chromedp.Do(tab, until(`document.querySelector("#main")?.textContent.includes("No orders yet.") ||
  document.querySelector("#main .error") !== null`)); err != nil {
			t.Fatal(err)
		}
		text, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector("#main").textContent`))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, "No orders yet.") {
			t.Errorf("tab %d shows %q, want the orders", i+1, text)
		}
	}
	if n := len(fs.requests("POST /api/v1/auth/refresh")); n != 1 {
		t.Errorf("the two tabs sent %d refreshes, want 1", n)
	}
}
