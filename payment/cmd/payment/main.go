// Command payment runs one instance of the payment service: charges through
// the built-in sandbox processor, its signed webhooks, refunds, and the
// payment side of the checkout saga. Several instances may run side by side;
// each registers itself in Consul under "payment".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/go-kit/log"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/postgres"
	"github.com/mercato-dev/mercato/payment/sandbox"
	"github.com/mercato-dev/mercato/shared/app"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/metrics"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

func main() { app.Main("payment", run) }

// run serves until ctx is done. It is main without the process: tests run it
// in-process.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	fs := app.NewFlagSet(app.Command{Name: payment.ServiceName, What: "Mercato's payment service",
		EnvExample: "MERCATO_WEBHOOK_SECRET", Addr: "127.0.0.1:3004", NeedDB: true})
	var (
		webhookURL    = fs.String("webhook-url", "http://127.0.0.1:3000/api/v1/webhooks/payments/sandbox", "where the sandbox processor posts its webhooks: the payment service's webhook route, normally through the gateway")
		webhookSecret = fs.Secret("webhook-secret", "HMAC key of the sandbox's webhooks, at least 32 bytes, the same on every instance")
		webhookDelay  = fs.Duration("webhook-delay", 200*time.Millisecond, "how long the sandbox processor takes before it first sends a charge's webhook")
	)
	cfg, err := fs.Parse(args)
	if err != nil {
		return err
	}
	if len(*webhookSecret) < payment.MinWebhookSecretBytes {
		return errors.New("-webhook-secret (MERCATO_WEBHOOK_SECRET) must be at least 32 bytes")
	}
	if u, err := url.Parse(*webhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-webhook-url (MERCATO_WEBHOOK_URL) must be an http(s) URL, got %q", *webhookURL)
	}
	if *webhookDelay < 0 {
		return errors.New("-webhook-delay (MERCATO_WEBHOOK_DELAY) must not be negative")
	}

	// Logging, metrics, PostgreSQL brought up to the current schema, Redis
	// (the event stream; the read timeout outlasts the consumer's blocking
	// reads) and Consul. The sandbox processor gets a pool of its own, as an
	// external processor shares no connections with the service.
	in, err := app.Start(ctx, cfg, logOutput, app.Options{
		Migrate: postgres.Schema.Migrate,
		Redis:   redis.Options{ReadTimeout: 5 * time.Second},
	})
	if err != nil {
		return err
	}
	defer in.Close()
	logger, reg, db := in.Logger, in.Registry, in.DB
	sandboxDB, err := in.OpenPostgres(sharedpg.PoolOptions{MaxOpen: 10, MaxIdle: 4}, sandbox.Migrate)
	if err != nil {
		return err
	}

	// Service, with its middlewares, charging through the sandbox.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 15*time.Minute) // verifies only; the TTL is unused
	if err != nil {
		return err
	}
	// Logged-out tokens are refused here too, not only at the gateway.
	tokens = tokens.WithDenylist(auth.NewDenylist(in.Redis, logger))
	repo, provider := postgres.New(db), sandbox.New(sandboxDB, *webhookDelay)
	svc, err := payment.NewService(repo, provider, payment.Options{WebhookSecret: []byte(*webhookSecret)})
	if err != nil {
		return err
	}
	paymentMetrics := payment.NewMetrics(reg, sandbox.FailureCodes()...)
	svc = payment.LoggingMiddleware(logger)(svc)
	svc = payment.InstrumentingMiddleware(paymentMetrics)(svc)

	// Background loops, stopped (and waited for) before run returns: the
	// outbox relay, the order.cancelled consumer, the sandbox's webhook
	// dispatcher, the recovery of provider calls left without an answer and
	// the clean-up of old webhook event ids.
	in.RelayOutbox()
	eventHandler := payment.NewEventHandler(svc)
	in.Consume("order.cancelled consumer", "consumer", events.Consumer{
		Types: eventHandler.EventTypes(), Handler: eventHandler.Handle})
	in.Go("webhook dispatcher", (&sandbox.Dispatcher{DB: sandboxDB, URL: *webhookURL, Wake: provider.Due(),
		Secret: []byte(*webhookSecret), Client: webhookClient(),
		Logger: log.With(logger, "component", "sandbox_webhooks"),
		Deliveries: metrics.NewCounter(reg, "sandbox_webhook_deliveries_total",
			"Webhook delivery attempts of the sandbox processor, by result.", "result")}).Run)
	in.Go("payment recovery", (&payment.Recovery{Repo: repo, Provider: provider,
		Logger: log.With(logger, "component", "payment_recovery"), Metrics: paymentMetrics}).Run)
	in.Go("webhook event janitor", repo.WebhookJanitor(logger).Run)

	// Routes.
	router := in.Router()
	payment.MakeHTTPHandler(router, payment.MakeServerEndpoints(svc, tokens), logger)

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return in.Serve(ctx, router)
}

// webhookClient is the sandbox processor's HTTP client: a hard timeout per
// delivery, so one stuck receiver cannot stall the dispatcher.
func webhookClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.ResponseHeaderTimeout = 10 * time.Second
	return &http.Client{Timeout: 15 * time.Second, Transport: t}
}
