// Package load drives a Mercato platform through its gateway the way a
// crowd of shoppers would, at a fixed rate, and reports what it saw: per
// scenario and route the count, rate, latency quantiles and error codes, a
// per-second timeline, the orders the platform acknowledged, and — given
// the databases — whether the platform's invariants held afterwards.
//
// The traffic is open-loop (vegeta's attacker and constant pacer): requests
// leave on schedule whether or not earlier ones were answered, so a slow
// platform shows up as latency and errors instead of being hidden by
// clients that wait their turn (coordinated omission). Each scenario is an
// attack of its own at its share of the rate, so the mix holds exactly.
//
//	report, err := load.Run(ctx, load.Config{Target: "http://127.0.0.1:3000", Rate: 50, Duration: 30 * time.Second})
//	report.WriteTable(os.Stdout)
//
// cmd/load is the command over it (make load); e2e's TestLoadShort runs it
// against the e2e platform and the chaos suite drives the same mix while
// it injects faults.
package load

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario names one kind of shopper activity.
type Scenario string

// The scenarios, each a stream of requests of its own.
const (
	// Browse lists a category's products with filters and a sort, a page
	// at a time, and now and then the category tree.
	Browse Scenario = "browse"
	// Search is full-text search on words of the catalogue's names.
	Search Scenario = "search"
	// Product reads one product's detail.
	Product Scenario = "product"
	// Account registers new shoppers and logs the known ones in.
	Account Scenario = "account"
	// Checkout places orders with the sandbox cards: most succeed, some are
	// declined, some fail for insufficient funds (both end cancelled).
	Checkout Scenario = "checkout"
	// Orders reads a shopper's order history and single orders.
	Orders Scenario = "orders"
)

// Scenarios are every scenario, in the order reports list them.
var Scenarios = []Scenario{Browse, Search, Product, Account, Checkout, Orders}

// DefaultMix is the shopper mix: weights, not percentages.
func DefaultMix() map[Scenario]int {
	return map[Scenario]int{Browse: 30, Search: 15, Product: 25, Account: 5, Checkout: 15, Orders: 10}
}

// Limits keep a run bounded whatever the flags say.
const (
	MaxRate     = 5000             // requests per second
	MaxDuration = 10 * time.Minute // access tokens live 15 minutes; a run never outlives its shoppers' tokens
	MaxUsers    = 1000
)

// Config says what to run against, how hard and for how long.
type Config struct {
	// Target is the gateway's base URL: http://127.0.0.1:3000.
	Target string
	// Targets, when set, are the base URLs of every gateway the requests
	// are spread over, in turn (Target among them or not); setup and the
	// reads after the run go to Target alone. The chaos suite runs two
	// gateways and kills one.
	Targets []string
	// AllowRemote lets Target be an address that is not loopback.
	AllowRemote bool
	// Rate is requests per second over all scenarios; Duration how long the
	// requests are sent (answers still in flight are awaited).
	Rate     float64
	Duration time.Duration
	// Users is how many shoppers are registered and signed in before the
	// run; every request but register and login carries one's token, so
	// each shopper has the gateway's per-user rate limit to itself.
	Users int
	// Mix weighs the scenarios; nil is DefaultMix. A scenario alone is
	// {Checkout: 1}.
	Mix map[Scenario]int
	// Cards weighs the sandbox cards of checkouts; nil is DefaultCards.
	Cards map[string]int
	// Timeout bounds every request; MaxWorkers the requests in flight.
	Timeout    time.Duration
	MaxWorkers int
	// Admin, when set, signs in as an admin before the run to top up the
	// stock of the products the checkouts buy, through the stock ledger,
	// so a run does not sell the catalogue out.
	Admin *Credentials
	// Settle is how long to wait after the run for every acknowledged
	// order to reach a final state (0: DefaultSettle).
	Settle time.Duration
	// Databases, when set, are read after the run for the invariants.
	Databases *Databases
	// Progress receives a line a second while the run goes (nil: none);
	// ProgressEvery changes that interval.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Label names the run in its report and chart.
	Label string
	// OnStart, when set, is called with Report.Started as the first
	// requests leave, after the setup (the chaos suite times its faults
	// from it).
	OnStart func(time.Time)
}

// Credentials are an account's email and password.
type Credentials struct{ Email, Password string }

// Defaults of Config's zero fields.
const (
	DefaultRate     = 50
	DefaultDuration = 30 * time.Second
	DefaultUsers    = 20
	DefaultTimeout  = 10 * time.Second
	DefaultWorkers  = 1000
	DefaultSettle   = 60 * time.Second
	DefaultTarget   = "http://127.0.0.1:3000"
)

// Checked is c with its zero fields set to their defaults, or why c
// cannot run: a bound exceeded, an unknown scenario or card, a target that
// is not loopback when remote targets are not allowed. Run checks c so.
func (c Config) Checked() (Config, error) {
	c.Target = strings.TrimSuffix(cmp.Or(c.Target, DefaultTarget), "/")
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.Users = cmp.Or(c.Users, DefaultUsers)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.MaxWorkers = cmp.Or(c.MaxWorkers, DefaultWorkers)
	c.Settle = cmp.Or(c.Settle, DefaultSettle)
	c.ProgressEvery = cmp.Or(c.ProgressEvery, time.Second)
	if c.Mix == nil {
		c.Mix = DefaultMix()
	}
	if c.Cards == nil {
		c.Cards = DefaultCards()
	}
	var errs []error
	if c.Rate < 0 || c.Rate > MaxRate {
		errs = append(errs, fmt.Errorf("rate %g/s: want 0 < rate ≤ %d", c.Rate, MaxRate))
	}
	if c.Duration < 0 || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("duration %s: want 0 < duration ≤ %s", c.Duration, MaxDuration))
	}
	if c.Users < 1 || c.Users > MaxUsers {
		errs = append(errs, fmt.Errorf("users %d: want 1 to %d", c.Users, MaxUsers))
	}
	if c.MaxWorkers < 1 {
		errs = append(errs, fmt.Errorf("max workers %d: want at least 1", c.MaxWorkers))
	}
	total := 0
	for s, w := range c.Mix {
		if !slices.Contains(Scenarios, s) {
			errs = append(errs, fmt.Errorf("mix: unknown scenario %q (known: %s)", s, scenarioList()))
		}
		if w < 0 {
			errs = append(errs, fmt.Errorf("mix: %s has a negative weight", s))
		}
		total += w
	}
	if total == 0 {
		errs = append(errs, errors.New("mix: no scenario has a weight"))
	}
	cardTotal := 0
	for card, w := range c.Cards {
		if _, ok := cardOutcomes[card]; !ok || w < 0 {
			errs = append(errs, fmt.Errorf("cards: %q is not a sandbox card with a weight ≥ 0", card))
		}
		cardTotal += w
	}
	if cardTotal == 0 {
		errs = append(errs, errors.New("cards: no card has a weight"))
	}
	if err := checkTarget(c.Target, c.AllowRemote); err != nil {
		errs = append(errs, err)
	}
	c.Targets = slices.Clone(c.Targets)
	for i, t := range c.Targets {
		c.Targets[i] = strings.TrimSuffix(t, "/")
		if err := checkTarget(c.Targets[i], c.AllowRemote); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

// checkTarget refuses a target that is not an http(s) URL, and one whose
// host is not loopback unless remote targets are allowed: a load test sent
// to the wrong address is an attack on someone else's server.
func checkTarget(target string, allowRemote bool) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("target %q: want an http:// or https:// URL of the gateway", target)
	}
	if u.Path != "" || u.RawQuery != "" {
		return fmt.Errorf("target %q: want the gateway's base URL, without a path (the API is under /api/v1)", target)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q is not a loopback address; refusing to send load there unless remote targets are allowed explicitly", target)
}

// ParseMix reads a mix: "checkout" (that scenario alone), or weights as
// "browse=30,search=15,checkout=15".
func ParseMix(s string) (map[Scenario]int, error) {
	mix := map[Scenario]int{}
	for part := range strings.SplitSeq(s, ",") {
		name, weight, hasWeight := strings.Cut(strings.TrimSpace(part), "=")
		sc := Scenario(strings.TrimSpace(name))
		if !slices.Contains(Scenarios, sc) {
			return nil, fmt.Errorf("mix %q: unknown scenario %q (known: %s)", s, name, scenarioList())
		}
		w := 1
		if hasWeight {
			var err error
			if w, err = strconv.Atoi(strings.TrimSpace(weight)); err != nil || w < 0 {
				return nil, fmt.Errorf("mix %q: weight of %s must be a whole number ≥ 0", s, sc)
			}
		}
		if _, dup := mix[sc]; dup {
			return nil, fmt.Errorf("mix %q: %s given twice", s, sc)
		}
		mix[sc] = w
	}
	return mix, nil
}

// FormatMix writes a mix the way ParseMix reads it, in report order.
func FormatMix(mix map[Scenario]int) string {
	var parts []string
	for _, s := range Scenarios {
		if w, ok := mix[s]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", s, w))
		}
	}
	return strings.Join(parts, ",")
}

func scenarioList() string {
	names := make([]string, len(Scenarios))
	for i, s := range Scenarios {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// rates splits the total rate among the scenarios by weight.
func rates(total float64, mix map[Scenario]int) map[Scenario]float64 {
	sum := 0
	for _, w := range mix {
		sum += w
	}
	out := map[Scenario]float64{}
	for _, s := range slices.Sorted(maps.Keys(mix)) {
		if mix[s] > 0 {
			out[s] = total * float64(mix[s]) / float64(sum)
		}
	}
	return out
}
