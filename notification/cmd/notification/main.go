// Command notification runs one instance of the notification service: it
// consumes the platform's events, sends email, SMS and push messages, and
// serves users their notification log and preferences. Several instances
// may run side by side; each registers itself in Consul under
// "notification", and they share the event stream (one consumer group) and
// the sending (row claims).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-kit/log"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/notification/postgres"
	"github.com/mercato-dev/mercato/shared/app"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/user"
)

func main() { app.Main("notification", run) }

// run serves until ctx is done. It is main without the process: tests run it
// in-process.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	fs := app.NewFlagSet(app.Command{Name: notification.ServiceName, What: "Mercato's notification service",
		EnvExample: "MERCATO_DATABASE_URL", Addr: "127.0.0.1:3005", NeedDB: true})
	var (
		smtpAddr    = fs.String("smtp-addr", "127.0.0.1:1025", "SMTP server email is sent through (host:port); STARTTLS is used when offered")
		smtpFrom    = fs.String("smtp-from", "Mercato <no-reply@mercato.local>", "From address of every email")
		smtpUser    = fs.String("smtp-username", "", "SMTP AUTH user name (optional)")
		smtpPass    = fs.Secret("smtp-password", "SMTP AUTH password (optional)")
		smsURL      = fs.String("sms-url", "", "base URL of the Twilio-like SMS API (POST {url}/Accounts/{sid}/Messages.json); empty disables SMS")
		smsSID      = fs.String("sms-account-sid", "", "SMS API account SID (basic auth user)")
		smsToken    = fs.Secret("sms-auth-token", "SMS API auth token (basic auth password)")
		smsFrom     = fs.String("sms-from", "", "sender number of text messages")
		pushURL     = fs.String("push-url", "", "send endpoint of the FCM-like push API; empty disables push")
		pushKey     = fs.Secret("push-key", "bearer key of the push API")
		workers     = fs.Int("send-workers", 4, "notifications sent concurrently by this instance on each channel (email, SMS, push)")
		maxAttempts = fs.Int("send-max-attempts", 10, "attempts before a notification is recorded as failed")
		backoff     = fs.Duration("send-backoff", 2*time.Second, "wait after the first failed attempt; doubles after each")
		maxBackoff  = fs.Duration("send-max-backoff", 5*time.Minute, "longest wait between attempts")
		sendTimeout = fs.Duration("send-timeout", 30*time.Second, "bound on one attempt (contact lookup, provider call); a crashed attempt is taken over after about twice this")
		poll        = fs.Duration("send-poll-interval", 500*time.Millisecond, "how often idle senders look for due notifications")
	)
	cfg, err := fs.Parse(args)
	if err != nil {
		return err
	}
	if *workers < 1 || *maxAttempts < 1 || *backoff <= 0 || *maxBackoff < *backoff || *sendTimeout <= 0 || *poll <= 0 {
		return errors.New("-send-workers and -send-max-attempts must be at least 1, and -send-backoff <= -send-max-backoff, -send-timeout and -send-poll-interval positive")
	}

	// Channels: email always; SMS and push when their provider is set.
	email, err := notification.NewEmailSender(notification.EmailConfig{
		Addr: *smtpAddr, From: *smtpFrom, Username: *smtpUser, Password: *smtpPass, Timeout: *sendTimeout})
	if err != nil {
		return fmt.Errorf("-smtp-addr/-smtp-from: %w", err)
	}
	senders := map[notification.Channel]notification.Sender{notification.ChannelEmail: email}
	if *smsURL != "" {
		sms, err := notification.NewSMSSender(notification.SMSConfig{
			URL: *smsURL, AccountSID: *smsSID, AuthToken: *smsToken, From: *smsFrom, Timeout: *sendTimeout})
		if err != nil {
			return fmt.Errorf("-sms-*: %w", err)
		}
		senders[notification.ChannelSMS] = sms
	}
	if *pushURL != "" {
		push, err := notification.NewPushSender(notification.PushConfig{URL: *pushURL, Key: *pushKey, Timeout: *sendTimeout})
		if err != nil {
			return fmt.Errorf("-push-*: %w", err)
		}
		senders[notification.ChannelPush] = push
	}
	var channels []notification.Channel
	for _, ch := range []notification.Channel{notification.ChannelEmail, notification.ChannelSMS, notification.ChannelPush} {
		if senders[ch] != nil {
			channels = append(channels, ch)
		}
	}
	renderer, err := notification.NewRenderer()
	if err != nil {
		return err
	}

	// Logging, metrics, PostgreSQL brought up to the current schema, Redis
	// (the event stream; the read timeout outlasts the consumer's blocking
	// reads) and Consul.
	in, err := app.Start(ctx, cfg, logOutput, app.Options{
		Migrate: postgres.Schema.Migrate,
		Redis:   redis.Options{ReadTimeout: 5 * time.Second},
	})
	if err != nil {
		return err
	}
	defer in.Close()
	logger, reg, db := in.Logger, in.Registry, in.DB
	store := postgres.New(db)

	// The user service, found in Consul (contact data).
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 5*time.Minute)
	if err != nil {
		return err
	}
	// Logged-out tokens are refused here too, not only at the gateway.
	tokens = tokens.WithDenylist(auth.NewDenylist(in.Redis, logger))
	users := user.NewClient(in.Instancer(user.ServiceName), logger, discovery.Options{Timeout: 5 * time.Second, Metrics: discovery.NewMetrics(reg)})

	// Background work, stopped (and waited for) before run returns: the
	// event consumer records notifications, the dispatcher sends them. No
	// outbox relay: this service publishes no events, so the inbox has a
	// janitor of its own in place of the relay's housekeeping.
	in.Go("inbox janitor", events.InboxJanitor(db, logger).Run)
	eventHandler := notification.NewEventHandler(store, channels)
	in.Consume("event consumer", "event_consumer", events.Consumer{
		Types: eventHandler.EventTypes(), Handler: eventHandler.Handle})
	in.Go("dispatcher", (&notification.Dispatcher{Store: store, Contacts: notification.UserServiceContacts(users, tokens),
		Senders: senders, Renderer: renderer, Workers: *workers, PollInterval: *poll, AttemptTimeout: *sendTimeout,
		MaxAttempts: *maxAttempts, Backoff: *backoff, MaxBackoff: *maxBackoff,
		Logger: log.With(logger, "component", "dispatcher"), Metrics: notification.NewDispatchMetrics(reg)}).Run)

	// Service, with its middlewares.
	svc := notification.NewService(store)
	svc = notification.LoggingMiddleware(logger)(svc)
	svc = notification.InstrumentingMiddleware(notification.NewMetrics(reg))(svc)

	// Routes.
	router := in.Router()
	notification.MakeHTTPHandler(router, notification.MakeServerEndpoints(svc, tokens), logger)

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return in.Serve(ctx, router)
}
