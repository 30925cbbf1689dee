package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mercato-dev/mercato/clients/go/mercato"
)

// shop is what the scenarios draw on: the catalogue as the run found it,
// the signed-in shoppers, and the orders the platform acknowledged.
type shop struct {
	api string // the gateway's base URL with /api/v1
	// spread are the API base URLs the requests go to in turn, when
	// Config.Targets names more gateways; turn counts the requests.
	spread []string
	turn   atomic.Uint64
	runID  string // in every email, Idempotency-Key and request id of the run

	categories []string // slugs
	products   []string // ids of active products
	words      []string // from product names, for search
	buyable    []string // ids of products sold as themselves, in stock
	shoppers   []*shopper
	cards      weighted[string]

	mu         sync.Mutex
	orders     []Order
	byShopper  map[string]*shopper // by user id
	registered int                 // shoppers the account scenario created
}

// shopper is a signed-in customer.
type shopper struct {
	id, email, token string
}

// password is every load shopper's password.
const password = "load-test-password"

// openShop reads the catalogue, registers and signs in the shoppers, and
// (as the admin, when given) tops up the stock checkouts will draw on.
func openShop(ctx context.Context, c Config, hc *http.Client) (*shop, error) {
	api, err := mercato.New(c.Target, mercato.WithHTTPClient(hc))
	if err != nil {
		return nil, err
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id) // crypto/rand.Read never fails on Linux
	s := &shop{api: c.Target + "/api/v1", runID: hex.EncodeToString(id), byShopper: map[string]*shopper{},
		cards: newWeighted(c.Cards)}
	for _, t := range c.Targets {
		s.spread = append(s.spread, t+"/api/v1")
	}
	if err := s.readCatalogue(ctx, api); err != nil {
		return nil, err
	}
	if err := s.signIn(ctx, api, c.Users); err != nil {
		return nil, err
	}
	if c.Admin != nil && c.Mix[Checkout] > 0 {
		checkouts := rates(c.Rate, c.Mix)[Checkout] * c.Duration.Seconds()
		if err := s.restock(ctx, api, *c.Admin, checkouts); err != nil {
			return nil, err
		}
	}
	if c.Mix[Checkout] > 0 && len(s.buyable) == 0 {
		return nil, errors.New("the catalogue has no product in stock sold as itself (without variants) for checkouts to buy")
	}
	return s, nil
}

func (s *shop) readCatalogue(ctx context.Context, api *mercato.ClientWithResponses) error {
	var tree *mercato.ListCategoriesResponse
	if err := retryLimited(ctx, func() (*http.Response, error) {
		var err error
		if tree, err = api.ListCategoriesWithResponse(ctx); err != nil {
			return nil, err
		}
		return tree.HTTPResponse, nil
	}); err != nil {
		return fmt.Errorf("reading the categories: %w", err)
	}
	if tree.JSON200 == nil {
		return fmt.Errorf("reading the categories: status %d: %.300s", tree.StatusCode(), tree.Body)
	}
	var walk func([]mercato.CategoryNode)
	walk = func(nodes []mercato.CategoryNode) {
		for _, n := range nodes {
			s.categories = append(s.categories, n.Slug)
			walk(n.Children)
		}
	}
	walk(tree.JSON200.Items)

	seen := map[string]bool{}
	for page := 1; page <= 10; page++ {
		var list *mercato.ListProductsResponse
		pageSize := 100
		if err := retryLimited(ctx, func() (*http.Response, error) {
			var err error
			if list, err = api.ListProductsWithResponse(ctx, &mercato.ListProductsParams{Page: &page, PageSize: &pageSize}); err != nil {
				return nil, err
			}
			return list.HTTPResponse, nil
		}); err != nil {
			return fmt.Errorf("reading the products: %w", err)
		}
		if list.JSON200 == nil {
			return fmt.Errorf("reading the products: status %d: %.300s", list.StatusCode(), list.Body)
		}
		for _, p := range list.JSON200.Items {
			s.products = append(s.products, p.Id)
			if p.StockQuantity > 0 && len(p.Variants) == 0 {
				s.buyable = append(s.buyable, p.Id)
			}
			for w := range strings.FieldsSeq(strings.ToLower(p.Name)) {
				if len(w) >= 4 && !seen[w] && strings.IndexFunc(w, notLetter) < 0 {
					seen[w] = true
					s.words = append(s.words, w)
				}
			}
		}
		if page*pageSize >= list.JSON200.Total {
			break
		}
	}
	if len(s.products) == 0 {
		return errors.New("the catalogue is empty: nothing to browse or buy (make run seeds a demo catalogue)")
	}
	return nil
}

func notLetter(r rune) bool { return r < 'a' || r > 'z' }

// signIn registers n shoppers and logs each in, a few at a time (bcrypt
// makes both slow on purpose).
func (s *shop) signIn(ctx context.Context, api *mercato.ClientWithResponses, n int) error {
	s.shoppers = make([]*shopper, n)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range n {
		g.Go(func() error {
			sh, err := s.newShopper(ctx, api, fmt.Sprintf("load-%s-%d@example.com", s.runID, i))
			s.shoppers[i] = sh
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, sh := range s.shoppers {
		s.byShopper[sh.id] = sh
	}
	return nil
}

func (s *shop) newShopper(ctx context.Context, api *mercato.ClientWithResponses, email string) (*shopper, error) {
	var reg *mercato.RegisterResponse
	if err := retryLimited(ctx, func() (*http.Response, error) {
		var err error
		if reg, err = api.RegisterWithResponse(ctx, mercato.Registration{Email: email, Password: password,
			FirstName: "Load", LastName: "Shopper"}); err != nil {
			return nil, err
		}
		return reg.HTTPResponse, nil
	}); err != nil {
		return nil, fmt.Errorf("registering %s: %w", email, err)
	}
	if reg.JSON201 == nil {
		return nil, fmt.Errorf("registering %s: status %d: %.300s", email, reg.StatusCode(), reg.Body)
	}
	token, err := login(ctx, api, Credentials{email, password})
	if err != nil {
		return nil, err
	}
	return &shopper{id: reg.JSON201.User.Id, email: email, token: token}, nil
}

func login(ctx context.Context, api *mercato.ClientWithResponses, c Credentials) (string, error) {
	var resp *mercato.LoginResponse
	if err := retryLimited(ctx, func() (*http.Response, error) {
		var err error
		if resp, err = api.LoginWithResponse(ctx, mercato.Credentials{Email: c.Email, Password: c.Password}); err != nil {
			return nil, err
		}
		return resp.HTTPResponse, nil
	}); err != nil {
		return "", fmt.Errorf("logging in as %s: %w", c.Email, err)
	}
	if resp.JSON200 == nil {
		return "", fmt.Errorf("logging in as %s: status %d: %.300s", c.Email, resp.StatusCode(), resp.Body)
	}
	return resp.JSON200.AccessToken, nil
}

// restock makes sure each buyable product holds at least twice its share
// of what checkouts could take (up to two lines of up to two units each),
// adding the difference through the stock ledger as the admin.
func (s *shop) restock(ctx context.Context, api *mercato.ClientWithResponses, admin Credentials, checkouts float64) error {
	token, err := login(ctx, api, admin)
	if err != nil {
		return fmt.Errorf("restocking: %w", err)
	}
	need := int(math.Ceil(2*checkouts*maxLines*maxQuantity/float64(len(s.buyable)))) + 10
	for _, id := range s.buyable {
		p, err := api.GetProductWithResponse(ctx, id, mercato.BearerToken(token))
		if err != nil {
			return fmt.Errorf("restocking: reading product %s: %w", id, err)
		}
		if p.JSON200 == nil {
			return fmt.Errorf("restocking: reading product %s: status %d: %.300s", id, p.StatusCode(), p.Body)
		}
		if short := need - p.JSON200.Product.StockQuantity; short > 0 {
			r, err := api.AdjustStockWithResponse(ctx, id, mercato.StockAdjustment{Delta: short, Reason: "make load: restock"},
				mercato.BearerToken(token))
			if err != nil {
				return fmt.Errorf("restocking product %s by %d: %w", id, short, err)
			}
			if r.StatusCode() != http.StatusOK {
				return fmt.Errorf("restocking product %s by %d: status %d: %.300s", id, short, r.StatusCode(), r.Body)
			}
		}
	}
	return nil
}

// retryLimited calls do until its answer is not 429, waiting what
// Retry-After says (the setup's registrations and logins share one
// address's allowance at the gateway), for up to two minutes.
func retryLimited(ctx context.Context, do func() (*http.Response, error)) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := do()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			return nil
		}
		wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if time.Now().Add(time.Duration(wait) * time.Second).After(deadline) {
			return errors.New("still rate limited (429) after two minutes")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(max(wait, 1)) * time.Second):
		}
	}
}

// acknowledge records an order the platform answered 201 to.
func (s *shop) acknowledge(o Order) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders = append(s.orders, o)
}

// anOrder is a random acknowledged order with its owner, if there is one.
func (s *shop) anOrder() (Order, *shopper, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.orders) == 0 {
		return Order{}, nil, false
	}
	o := s.orders[randN(len(s.orders))]
	return o, s.byShopper[o.UserID], true
}

// acknowledged is a copy of the acknowledged orders.
func (s *shop) acknowledged() []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Order(nil), s.orders...)
}

// newEmail is a fresh address for the account scenario's registrations.
func (s *shop) newEmail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registered++
	return fmt.Sprintf("load-%s-new-%d@example.com", s.runID, s.registered)
}
