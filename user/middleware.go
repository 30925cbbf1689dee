package user

import (
	"context"
	"errors"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/logging"
	sharedmetrics "github.com/mercato-dev/mercato/shared/metrics"
)

// Middleware decorates a Service.
type Middleware func(Service) Service

// LoggingMiddleware logs one line per call with its outcome and duration,
// at error level only for failures (isBusinessError, transport_http.go).
// It logs ids only: never passwords, tokens or email addresses.
func LoggingMiddleware(logger log.Logger) Middleware {
	return func(next Service) Service {
		return &loggingMiddleware{next: next, Method: logging.Method{Logger: logger, Business: isBusinessError}}
	}
}

type loggingMiddleware struct {
	next Service
	logging.Method
}

var _ Service = (*loggingMiddleware)(nil)

func (mw *loggingMiddleware) Register(ctx context.Context, r Registration) (u User, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "Register", begin, err, "user_id", u.ID) }(time.Now())
	return mw.next.Register(ctx, r)
}

func (mw *loggingMiddleware) Login(ctx context.Context, email, password string) (p TokenPair, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "Login", begin, err) }(time.Now())
	return mw.next.Login(ctx, email, password)
}

func (mw *loggingMiddleware) Refresh(ctx context.Context, refreshToken string) (p TokenPair, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "Refresh", begin, err) }(time.Now())
	return mw.next.Refresh(ctx, refreshToken)
}

func (mw *loggingMiddleware) Logout(ctx context.Context, userID string, access auth.AccessToken, refreshToken string) (err error) {
	defer func(begin time.Time) { mw.Log(ctx, "Logout", begin, err, "user_id", userID) }(time.Now())
	return mw.next.Logout(ctx, userID, access, refreshToken)
}

func (mw *loggingMiddleware) GetProfile(ctx context.Context, userID string) (u User, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "GetProfile", begin, err, "user_id", userID) }(time.Now())
	return mw.next.GetProfile(ctx, userID)
}

func (mw *loggingMiddleware) UpdateProfile(ctx context.Context, userID string, p ProfileUpdate) (u User, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "UpdateProfile", begin, err, "user_id", userID) }(time.Now())
	return mw.next.UpdateProfile(ctx, userID, p)
}

func (mw *loggingMiddleware) ListAddresses(ctx context.Context, userID string) (as []Address, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "ListAddresses", begin, err, "user_id", userID, "count", len(as))
	}(time.Now())
	return mw.next.ListAddresses(ctx, userID)
}

func (mw *loggingMiddleware) AddAddress(ctx context.Context, userID string, a Address) (out Address, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "AddAddress", begin, err, "user_id", userID, "address_id", out.ID)
	}(time.Now())
	return mw.next.AddAddress(ctx, userID, a)
}

func (mw *loggingMiddleware) UpdateAddress(ctx context.Context, userID, addressID string, p AddressUpdate) (a Address, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "UpdateAddress", begin, err, "user_id", userID, "address_id", addressID)
	}(time.Now())
	return mw.next.UpdateAddress(ctx, userID, addressID, p)
}

func (mw *loggingMiddleware) DeleteAddress(ctx context.Context, userID, addressID string) (err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "DeleteAddress", begin, err, "user_id", userID, "address_id", addressID)
	}(time.Now())
	return mw.next.DeleteAddress(ctx, userID, addressID)
}

func (mw *loggingMiddleware) ListUsers(ctx context.Context, page, pageSize int) (p UserPage, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "ListUsers", begin, err, "page", page, "page_size", pageSize)
	}(time.Now())
	return mw.next.ListUsers(ctx, page, pageSize)
}

func (mw *loggingMiddleware) GetUser(ctx context.Context, id string) (u User, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "GetUser", begin, err, "user_id", id) }(time.Now())
	return mw.next.GetUser(ctx, id)
}

// Metrics are the user service's business metrics.
type Metrics struct {
	Registrations metrics.Counter              // users_registered_total
	Logins        metrics.Counter              // logins_total{result}
	Refreshes     metrics.Counter              // token_refreshes_total{result}
	Duration      sharedmetrics.MethodDuration // user_service_duration_seconds{method,success}
}

// NewMetrics registers the business metrics on reg (built in main).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		Registrations: sharedmetrics.NewCounter(reg, "users_registered_total", "Users who registered."),
		Logins:        sharedmetrics.NewCounter(reg, "logins_total", "Login attempts by result.", "result"),
		Refreshes:     sharedmetrics.NewCounter(reg, "token_refreshes_total", "Refresh token uses by result.", "result"),
		Duration: sharedmetrics.NewMethodDuration(reg, "user_service_duration_seconds",
			"Time spent in user service methods, in seconds."),
	}
}

// InstrumentingMiddleware records m for every call.
func InstrumentingMiddleware(m *Metrics) Middleware {
	return func(next Service) Service { return &instrumentingMiddleware{next: next, m: m} }
}

type instrumentingMiddleware struct {
	next Service
	m    *Metrics
}

var _ Service = (*instrumentingMiddleware)(nil)

// result names the outcome of a login or refresh for the result label.
func result(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, ErrInvalidCredentials):
		return "invalid_credentials"
	case errors.Is(err, ErrInvalidRefreshToken):
		return "invalid_token"
	case errors.Is(err, ErrRefreshTokenReused):
		return "reused"
	case errors.Is(err, ErrUserInactive):
		return "inactive"
	case errors.Is(err, ErrLoginThrottled):
		return "throttled"
	default:
		return "error"
	}
}

func (mw *instrumentingMiddleware) Register(ctx context.Context, r Registration) (u User, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("Register", begin, err)
		if err == nil {
			mw.m.Registrations.Add(1)
		}
	}(time.Now())
	return mw.next.Register(ctx, r)
}

func (mw *instrumentingMiddleware) Login(ctx context.Context, email, password string) (p TokenPair, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("Login", begin, err)
		mw.m.Logins.With("result", result(err)).Add(1)
	}(time.Now())
	return mw.next.Login(ctx, email, password)
}

func (mw *instrumentingMiddleware) Refresh(ctx context.Context, refreshToken string) (p TokenPair, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("Refresh", begin, err)
		mw.m.Refreshes.With("result", result(err)).Add(1)
	}(time.Now())
	return mw.next.Refresh(ctx, refreshToken)
}

func (mw *instrumentingMiddleware) Logout(ctx context.Context, userID string, access auth.AccessToken, refreshToken string) (err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("Logout", begin, err) }(time.Now())
	return mw.next.Logout(ctx, userID, access, refreshToken)
}

func (mw *instrumentingMiddleware) GetProfile(ctx context.Context, userID string) (u User, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("GetProfile", begin, err) }(time.Now())
	return mw.next.GetProfile(ctx, userID)
}

func (mw *instrumentingMiddleware) UpdateProfile(ctx context.Context, userID string, p ProfileUpdate) (u User, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("UpdateProfile", begin, err) }(time.Now())
	return mw.next.UpdateProfile(ctx, userID, p)
}

func (mw *instrumentingMiddleware) ListAddresses(ctx context.Context, userID string) (as []Address, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("ListAddresses", begin, err) }(time.Now())
	return mw.next.ListAddresses(ctx, userID)
}

func (mw *instrumentingMiddleware) AddAddress(ctx context.Context, userID string, a Address) (out Address, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("AddAddress", begin, err) }(time.Now())
	return mw.next.AddAddress(ctx, userID, a)
}

func (mw *instrumentingMiddleware) UpdateAddress(ctx context.Context, userID, addressID string, p AddressUpdate) (a Address, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("UpdateAddress", begin, err) }(time.Now())
	return mw.next.UpdateAddress(ctx, userID, addressID, p)
}

func (mw *instrumentingMiddleware) DeleteAddress(ctx context.Context, userID, addressID string) (err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("DeleteAddress", begin, err) }(time.Now())
	return mw.next.DeleteAddress(ctx, userID, addressID)
}

func (mw *instrumentingMiddleware) ListUsers(ctx context.Context, page, pageSize int) (p UserPage, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("ListUsers", begin, err) }(time.Now())
	return mw.next.ListUsers(ctx, page, pageSize)
}

func (mw *instrumentingMiddleware) GetUser(ctx context.Context, id string) (u User, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("GetUser", begin, err) }(time.Now())
	return mw.next.GetUser(ctx, id)
}
