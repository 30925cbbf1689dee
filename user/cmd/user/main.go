// Command user runs one instance of the user service: registration, login
// and tokens, profiles and addresses. Several instances may run side by side;
// each registers itself in Consul under "user".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mercato-dev/mercato/shared/app"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/user"
	"github.com/mercato-dev/mercato/user/postgres"
)

func main() { app.Main("user", run) }

// run serves until ctx is done. It is main without the process: tests run it
// in-process.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	fs := app.NewFlagSet(app.Command{Name: user.ServiceName, What: "Mercato's user service",
		EnvExample: "MERCATO_DATABASE_URL", Addr: "127.0.0.1:3001", NeedDB: true})
	var (
		adminEmail      = fs.String("admin-email", "", "email of the admin account ensured at start (with -admin-password)")
		adminPassword   = fs.Secret("admin-password", "password of that admin account (8-72 bytes); it replaces the account's password if it differs")
		accessTokenTTL  = fs.Duration("access-token-ttl", 15*time.Minute, "lifetime of access tokens (JWT)")
		refreshTokenTTL = fs.Duration("refresh-token-ttl", 720*time.Hour, "lifetime of refresh tokens")
		bcryptCost      = fs.Int("bcrypt-cost", 10, "bcrypt cost of password hashes (4-31); 10 takes about 60 ms, 12 about 230 ms")
	)
	cfg, err := fs.Parse(args)
	if err != nil {
		return err
	}
	if (*adminEmail == "") != (*adminPassword == "") {
		return errors.New("-admin-email and -admin-password (MERCATO_ADMIN_EMAIL, MERCATO_ADMIN_PASSWORD) go together: set both or neither")
	}

	// Logging, metrics, PostgreSQL brought up to the current schema, Redis
	// (the event stream) and Consul. The start-up deadline also bounds the
	// admin bootstrap.
	in, err := app.Start(ctx, cfg, logOutput, app.Options{Migrate: postgres.Schema.Migrate})
	if err != nil {
		return err
	}
	defer in.Close()
	logger, reg, db := in.Logger, in.Registry, in.DB

	// Outbox relay: publishes the events the service commits.
	in.RelayOutbox()

	// Service, with its middlewares.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), *accessTokenTTL)
	if err != nil {
		return err
	}
	// Logout revokes access tokens in the denylist; the service refuses
	// revoked ones too, not only the gateway.
	denylist := auth.NewDenylist(in.Redis, logger)
	tokens = tokens.WithDenylist(denylist)
	repo := postgres.New(db)
	opts := user.Options{BcryptCost: *bcryptCost, RefreshTokenTTL: *refreshTokenTTL, Revoker: denylist}
	svc, err := user.NewService(repo, tokens, opts)
	if err != nil {
		return err
	}
	// Failed logins slow further tries on the account down (Redis, shared
	// by the instances); innermost, so logs and metrics see throttled tries.
	throttle, err := user.NewLoginThrottle(in.Redis, user.ThrottleOptions{}, logger)
	if err != nil {
		return err
	}
	svc = user.ThrottlingMiddleware(throttle)(svc)
	svc = user.LoggingMiddleware(logger)(svc)
	svc = user.InstrumentingMiddleware(user.NewMetrics(reg))(svc)

	// Bootstrap admin: idempotent, and safe when instances start together.
	if *adminEmail != "" {
		if err := user.EnsureAdmin(in.StartContext(), repo, opts, *adminEmail, *adminPassword); err != nil {
			return fmt.Errorf("ensure admin: %w", err)
		}
	}

	// Background loop, stopped (and waited for) before run returns: the
	// clean-up of long-expired refresh tokens.
	in.Go("refresh token janitor", repo.TokenJanitor(logger).Run)

	// Routes.
	router := in.Router()
	user.MakeHTTPHandler(router, user.MakeServerEndpoints(svc, tokens), logger)

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return in.Serve(ctx, router)
}
