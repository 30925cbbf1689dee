package main

import (
	"fmt"
	"slices"
	"strings"
)

// serviceSpec describes one program of the platform that mercato-local runs
// from bin/<name>. Adding a service is one line in services (and its
// database one line in databases).
type serviceSpec struct {
	name string // binary bin/<name>, Consul service name and log file prefix
	// db is the database passed as -database-url; "" for none. It must be
	// listed in databases.
	db string
	// instances is a fixed instance count; 0 means the -instances flag.
	instances int
	// httpAddr is where an instance listens; "" means 127.0.0.1:0, where the
	// instance takes a free port and registers that port in Consul.
	httpAddr string
	// extraArgs returns the flags this service needs beyond the common ones
	// (-http-addr, -consul-addr, -redis-addr); never a secret.
	extraArgs func(secrets) []string
	// extraEnv returns the secrets this service needs beyond the common ones
	// (MERCATO_JWT_SECRET, MERCATO_DATABASE_URL, MERCATO_REDIS_PASSWORD,
	// MERCATO_CONSUL_TOKEN), as NAME=value.
	extraEnv func(secrets) []string
}

// services are the backend services, started before the gateway in this
// order. Each entry is one line so a new service joins by adding one.
var services = []serviceSpec{
	{name: "user", db: "user_db", extraArgs: adminArgs, extraEnv: adminEnv},
	{name: "product", db: "product_db", extraArgs: productArgs},
	{name: "payment", db: "payment_db", extraEnv: paymentEnv},
	{name: "order", db: "order_db", extraEnv: orderEnv},
	{name: "notification", db: "notification_db"},
}

// databases are created in PostgreSQL on every start when missing: one per
// service (DESIGN §5). A database may be listed before its service exists.
var databases = []string{
	"user_db",
	"product_db",
	"order_db",
	"payment_db",
	"notification_db",
}

// gateway is the public front door; it always runs, alone, on the seed's port.
// Its /ready and /metrics are on the admin listener only.
var gateway = serviceSpec{name: "gateway", instances: 1, httpAddr: gatewayAddr, extraArgs: gatewayArgs}

// gatewayArgs puts the gateway's admin listener on its fixed port, so the
// banner can name it (Prometheus and Consul find it in Consul anyway). The
// sandbox's webhooks come from 127.0.0.1, the address of every local client
// too, so their allowance (per address; by default the client's 600 a
// minute) is raised to what the sandbox may send: past 10 checkouts a
// second, webhooks answered 429 would wait for their retries and the orders
// stay pending meanwhile (make load at 150 req/s saw it).
func gatewayArgs(secrets) []string {
	return []string{"-admin-addr", gatewayAdminAddr, "-webhook-rate-limit", "60000", "-webhook-rate-burst", "1000"}
}

// adminArgs makes the user service ensure an admin account at start-up, so a
// fresh local platform can be administered right away; its password goes in
// the environment (adminEnv).
func adminArgs(s secrets) []string { return []string{"-admin-email", s.adminEmail} }

func adminEnv(s secrets) []string { return []string{"MERCATO_ADMIN_PASSWORD=" + s.adminPassword} }

// productArgs seeds the demo catalogue once, so a fresh platform has
// something to browse and buy.
func productArgs(secrets) []string { return []string{"-seed-demo"} }

// paymentEnv gives every payment instance the same webhook secret; its
// default webhook URL (through the gateway on :3000) suits a local run.
func paymentEnv(s secrets) []string { return []string{"MERCATO_WEBHOOK_SECRET=" + s.webhookSecret} }

// orderEnv gives every order instance the same key for its request hashes,
// so a repeat that reaches another instance is recognised.
func orderEnv(s secrets) []string { return []string{"MERCATO_IDEMPOTENCY_HASH_KEY=" + s.hashKey} }

// knownServiceNames lists the names -services accepts.
func knownServiceNames() []string {
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = s.name
	}
	return names
}

// selectServices returns the services named in the comma-separated list, in
// table order (dependencies first). An empty list selects none: only the
// gateway and the infrastructure run.
func selectServices(list string) ([]serviceSpec, error) {
	var want []string
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want = append(want, name)
		}
	}
	for _, name := range want {
		if !slices.Contains(knownServiceNames(), name) {
			return nil, fmt.Errorf("-services: unknown service %q (known: %s)", name, strings.Join(knownServiceNames(), ", "))
		}
	}
	var selected []serviceSpec
	for _, s := range services {
		if slices.Contains(want, s.name) {
			selected = append(selected, s)
		}
	}
	return selected, nil
}

// instanceCount is how many instances of s to run when the flag asks for n.
func (s serviceSpec) instanceCount(n int) int {
	if s.instances > 0 {
		return s.instances
	}
	return n
}

// args is the command line of one instance of s: everyone may read it
// (ps), so it holds no secret.
func (s serviceSpec) args(sec secrets) []string {
	addr := s.httpAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	args := []string{
		"-http-addr", addr,
		"-consul-addr", consulAddr,
		"-redis-addr", redisAddr,
	}
	if s.extraArgs != nil {
		args = append(args, s.extraArgs(sec)...)
	}
	return args
}

// env is what one instance of s gets in its environment beyond
// mercato-local's own: its secrets, as NAME=value.
func (s serviceSpec) env(databaseURL string, sec secrets) []string {
	// Its own Redis ACL user, named like it (-redis-username's default).
	// Its own Consul token: register its own name, read the catalogue.
	env := []string{"MERCATO_JWT_SECRET=" + sec.jwtSecret, "MERCATO_REDIS_PASSWORD=" + sec.redisPassword(s.name),
		"MERCATO_CONSUL_TOKEN=" + sec.consulToken(s.name)}
	if s.db != "" {
		env = append(env, "MERCATO_DATABASE_URL="+databaseURL)
	}
	if s.extraEnv != nil {
		env = append(env, s.extraEnv(sec)...)
	}
	return env
}
