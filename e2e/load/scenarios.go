package load

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mercato-dev/mercato/clients/go/mercato"
)

// Sandbox cards (docs/api.md) and what an order paid with each ends as.
const (
	CardOK                = "4242424242424242"
	CardDeclined          = "4000000000000002"
	CardInsufficientFunds = "4000000000009995"
)

var cardOutcomes = map[string]string{CardOK: "confirmed", CardDeclined: "cancelled", CardInsufficientFunds: "cancelled"}

// DefaultCards is the checkouts' card mix: most succeed, one in ten is
// declined, one in ten lacks funds.
func DefaultCards() map[string]int {
	return map[string]int{CardOK: 8, CardDeclined: 1, CardInsufficientFunds: 1}
}

// ExpectedStatus is the final status of an order paid with the card whose
// last four digits are last4: confirmed for 4242, cancelled for the cards
// the sandbox refuses; "" for a card that is not a sandbox card.
func ExpectedStatus(last4 string) string {
	for card, status := range cardOutcomes {
		if card[len(card)-4:] == last4 {
			return status
		}
	}
	return ""
}

// Checkouts buy up to maxLines products, up to maxQuantity of each.
const (
	maxLines    = 2
	maxQuantity = 2
)

// targeter returns the vegeta targeter of scenario sc: each call fills the
// next request. Targeters run on many workers at once.
func (s *shop) targeter(sc Scenario) vegeta.Targeter {
	var seq atomic.Uint64
	next := map[Scenario]func(t *vegeta.Target, n uint64){
		Browse: s.browse, Search: s.search, Product: s.product,
		Account: s.account, Checkout: s.checkout, Orders: s.orderHistory,
	}[sc]
	return func(t *vegeta.Target) error {
		n := seq.Add(1)
		*t = vegeta.Target{Header: http.Header{
			"Content-Type": {"application/json"},
			"X-Request-Id": {fmt.Sprintf("load-%s-%s-%d", s.runID, sc, n)},
		}}
		next(t, n)
		return nil
	}
}

func (s *shop) get(t *vegeta.Target, path string, q url.Values, sh *shopper) {
	t.Method, t.URL = http.MethodGet, s.next()+path
	if len(q) > 0 {
		t.URL += "?" + q.Encode()
	}
	if sh != nil {
		t.Header.Set("Authorization", "Bearer "+sh.token)
	}
}

func (s *shop) post(t *vegeta.Target, path string, body any, sh *shopper) {
	t.Method, t.URL = http.MethodPost, s.next()+path
	t.Body, _ = json.Marshal(body) // maps and structs of strings and numbers always marshal
	if sh != nil {
		t.Header.Set("Authorization", "Bearer "+sh.token)
	}
}

// next is the API base URL of the next request: the targets in turn.
func (s *shop) next() string {
	if len(s.spread) == 0 {
		return s.api
	}
	return s.spread[s.turn.Add(1)%uint64(len(s.spread))]
}

func (s *shop) aShopper() *shopper { return s.shoppers[randN(len(s.shoppers))] }

var sorts = []string{"price", "-price", "name", "-created_at"}

// browse: a category's listing (sometimes in stock only, sometimes within
// a price band), a page of it; one in five requests reads the tree.
func (s *shop) browse(t *vegeta.Target, n uint64) {
	if n%5 == 0 || len(s.categories) == 0 {
		s.get(t, "/categories", nil, s.aShopper())
		return
	}
	q := url.Values{"category": {pick(s.categories)}, "sort": {pick(sorts)}}
	if randN(2) == 0 {
		q.Set("in_stock", "true")
	}
	if randN(4) == 0 {
		low := 10 * randN(10)
		q.Set("min_price", strconv.Itoa(low))
		q.Set("max_price", strconv.Itoa(low+50+randN(500)))
	}
	if page := 1 + randN(3); page > 1 {
		q.Set("page", strconv.Itoa(page))
	}
	s.get(t, "/products", q, s.aShopper())
}

// search: full text on one or two words of the catalogue's names.
func (s *shop) search(t *vegeta.Target, _ uint64) {
	q := "mercato"
	if len(s.words) > 0 {
		q = pick(s.words)
		if randN(3) == 0 {
			q += " " + pick(s.words)
		}
	}
	s.get(t, "/products", url.Values{"q": {q}}, s.aShopper())
}

func (s *shop) product(t *vegeta.Target, _ uint64) {
	s.get(t, "/products/"+pick(s.products), nil, s.aShopper())
}

// account: every fourth request registers someone new, the others log a
// known shopper in (the tokens they get are not used: each shopper keeps
// the one it signed in with).
func (s *shop) account(t *vegeta.Target, n uint64) {
	if n%4 == 1 {
		s.post(t, "/auth/register", mercato.Registration{Email: s.newEmail(), Password: password,
			FirstName: "Load", LastName: "Shopper"}, nil)
		return
	}
	s.post(t, "/auth/login", mercato.Credentials{Email: s.aShopper().email, Password: password}, nil)
}

// checkout: one or two products of the catalogue, one or two of each, a
// card of the mix, an Idempotency-Key of its own.
func (s *shop) checkout(t *vegeta.Target, n uint64) {
	lines := min(1+randN(maxLines), len(s.buyable))
	ids := slices.Clone(s.buyable)
	for i := len(ids) - 1; i > 0; i-- { // Fisher–Yates
		j := randN(i + 1)
		ids[i], ids[j] = ids[j], ids[i]
	}
	items := make([]mercato.CheckoutLine, lines)
	for i := range items {
		items[i] = mercato.CheckoutLine{ProductId: ids[i], Quantity: 1 + randN(maxQuantity)}
	}
	body := mercato.Checkout{
		Items: items,
		ShippingAddress: mercato.OrderAddressInput{Street: "1 Load Lane", City: "Springfield", State: "IL",
			ZipCode: "62701", Country: "US"},
		Payment: mercato.PaymentInput{Method: "card", Card: mercato.CardInput{Number: s.cards.pick(),
			ExpMonth: 12, ExpYear: time.Now().Year() + 3, Cvc: "123"}},
	}
	s.post(t, "/orders", body, s.aShopper())
	t.Header.Set("Idempotency-Key", fmt.Sprintf("load-%s-%d", s.runID, n))
}

// orderHistory: a shopper's latest orders; every other request, once
// orders exist, one acknowledged order read by its owner.
func (s *shop) orderHistory(t *vegeta.Target, n uint64) {
	if o, owner, ok := s.anOrder(); ok && n%2 == 0 && owner != nil {
		s.get(t, "/orders/"+o.ID, nil, owner)
		return
	}
	s.get(t, "/orders", url.Values{"page_size": {"10"}}, s.aShopper())
}

// weighted picks values in proportion to their weights.
type weighted[T comparable] struct {
	values []T
	cum    []int
}

func newWeighted[T comparable](w map[T]int) weighted[T] {
	var out weighted[T]
	total := 0
	for v, n := range w {
		if n > 0 {
			total += n
			out.values, out.cum = append(out.values, v), append(out.cum, total)
		}
	}
	return out
}

func (w weighted[T]) pick() T {
	r := randN(w.cum[len(w.cum)-1])
	i, _ := slices.BinarySearch(w.cum, r+1)
	return w.values[i]
}

func pick[T any](xs []T) T { return xs[randN(len(xs))] }

// randN is a number in [0, n): every choice of a scenario is one.
func randN(n int) int {
	return rand.N(n) //nolint:gosec // G404: picks what a shopper does next; it needs no unpredictability
}
