// Package auth issues and verifies the short-lived JWT access tokens of
// Mercato, carries the verified identity in the request context, and
// provides go-kit endpoint middleware that requires a user or a role.
// The user service signs tokens; the gateway and every service verify them
// with the same key, so services check the identity they are given instead
// of trusting a header.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Role is what a user may do.
type Role string

const (
	RoleCustomer Role = "customer"
	RoleAdmin    Role = "admin"
	// RoleService is another Mercato service calling an internal route on
	// its own behalf (an event handler, a sweeper), not for a user. Only
	// services hold the signing key, so only they can mint such a token.
	RoleService Role = "service"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleCustomer || r == RoleAdmin || r == RoleService }

// Identity is the verified caller of a request.
type Identity struct {
	UserID string
	Email  string
	Role   Role
}

// IsAdmin reports whether the caller has the admin role.
func (i Identity) IsAdmin() bool { return i.Role == RoleAdmin }

// Error is an authentication or authorisation failure. It carries its HTTP
// status and code, which the shared error encoder honours.
type Error struct {
	status int
	code   string
	msg    string
}

func (e *Error) Error() string     { return e.msg }
func (e *Error) StatusCode() int   { return e.status }
func (e *Error) ErrorCode() string { return e.code }

var (
	// ErrUnauthenticated: no token, or one that does not verify.
	ErrUnauthenticated = &Error{http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required"}
	// ErrTokenExpired: a token that verified once but is past its expiry.
	ErrTokenExpired = &Error{http.StatusUnauthorized, "token_expired", "the access token has expired"}
	// ErrTokenRevoked: a token that verifies but was revoked (its session
	// logged out) before its expiry.
	ErrTokenRevoked = &Error{http.StatusUnauthorized, "token_revoked", "the access token has been revoked; log in again"}
	// ErrForbidden: a verified caller without the rights for this action.
	ErrForbidden = &Error{http.StatusForbidden, "forbidden", "you are not allowed to do this"}
)

const issuer = "mercato"

// MinKeyBytes is the shortest signing key accepted (HS256 wants 256 bits).
const MinKeyBytes = 32

// Tokens issues and verifies HS256 access tokens.
type Tokens struct {
	key      []byte
	ttl      time.Duration
	now      func() time.Time
	denylist *Denylist       // nil: Check does not look for revoked tokens
	cache    *verifiedTokens // nil: every token is verified afresh
}

// AccessToken is what identifies one verified access token apart from whom
// it names: its id (the JWT's jti) and its expiry, which revoking it needs.
// Tokens issued before ids were added have none and cannot be revoked; they
// expire within one TTL of the change.
type AccessToken struct {
	ID        string
	ExpiresAt time.Time
}

// NewTokens returns Tokens signing with key; tokens live for ttl.
func NewTokens(key []byte, ttl time.Duration) (*Tokens, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("auth: signing key must be at least %d bytes, got %d", MinKeyBytes, len(key))
	}
	if ttl <= 0 {
		return nil, errors.New("auth: token lifetime must be positive")
	}
	return &Tokens{key: key, ttl: ttl, now: time.Now}, nil
}

// TTL is how long an issued token lives.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// WithDenylist returns Tokens like t whose Check (and so Authenticate) also
// refuses tokens revoked in d, with ErrTokenRevoked.
func (t *Tokens) WithDenylist(d *Denylist) *Tokens {
	c := *t
	c.denylist = d
	return &c
}

type claims struct {
	Email string `json:"email"`
	Role  Role   `json:"role"`
	jwt.RegisteredClaims
}

// Issue returns a signed access token for id.
func (t *Tokens) Issue(id Identity) (string, error) {
	now := t.now()
	c := claims{Email: id.Email, Role: id.Role, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   id.UserID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		ID:        uuid.NewString(), // what a logout revokes (Denylist)
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
}

// Verify checks token's signature, algorithm, issuer and expiry and returns
// the identity it carries. It does not look at the denylist: Check does.
func (t *Tokens) Verify(token string) (Identity, error) {
	id, _, err := t.verify(token)
	return id, err
}

// Check verifies token as Verify does and then, when t has a denylist
// (WithDenylist), refuses it with ErrTokenRevoked if it was revoked. It is
// what the gateway and Authenticate call before letting a request through.
// When the denylist cannot be read, Check lets the token through (see
// Denylist.Revoked for why), and the denylist logs it.
func (t *Tokens) Check(ctx context.Context, token string) (Identity, AccessToken, error) {
	id, at, err := t.verify(token)
	if err != nil {
		return Identity{}, AccessToken{}, err
	}
	if err := t.Revoked(ctx, at); err != nil {
		return Identity{}, AccessToken{}, err
	}
	return id, at, nil
}

// VerifyAccess is Check's first half, Verify with the token's id and
// expiry: a caller that overlaps the denylist's look-up with other work
// (the gateway, for reads) calls Revoked itself.
func (t *Tokens) VerifyAccess(token string) (Identity, AccessToken, error) {
	return t.verify(token)
}

// Revoked is Check's second half: ErrTokenRevoked when t has a denylist
// and at was revoked, nil otherwise.
func (t *Tokens) Revoked(ctx context.Context, at AccessToken) error {
	if t.denylist != nil && t.denylist.Revoked(ctx, at.ID) {
		return ErrTokenRevoked
	}
	return nil
}

func (t *Tokens) verify(token string) (Identity, AccessToken, error) {
	if t.cache == nil {
		return t.verifySignature(token)
	}
	if v, ok := t.cache.get(token); ok {
		if t.now().Before(v.at.ExpiresAt) {
			return v.id, v.at, nil
		}
		t.cache.drop(token)
		return Identity{}, AccessToken{}, ErrTokenExpired
	}
	id, at, err := t.verifySignature(token)
	if err == nil {
		t.cache.put(token, verified{id, at})
	}
	return id, at, err
}

func (t *Tokens) verifySignature(token string) (Identity, AccessToken, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Identity{}, AccessToken{}, ErrTokenExpired
	case err != nil:
		return Identity{}, AccessToken{}, ErrUnauthenticated
	case c.Subject == "" || !c.Role.Valid():
		return Identity{}, AccessToken{}, ErrUnauthenticated
	}
	return Identity{UserID: c.Subject, Email: c.Email, Role: c.Role},
		AccessToken{ID: c.ID, ExpiresAt: c.ExpiresAt.Time}, nil
}

type tokenKey struct{}
type identityKey struct{}
type accessTokenKey struct{}

// BearerToken extracts the token of an "Authorization: Bearer …" header.
func BearerToken(h http.Header) string {
	v := h.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// HTTPToContext is a go-kit ServerBefore function that moves the bearer token
// into the context for Authenticate to verify.
func HTTPToContext(ctx context.Context, r *http.Request) context.Context {
	if tok := BearerToken(r.Header); tok != "" {
		return context.WithValue(ctx, tokenKey{}, tok)
	}
	return ctx
}

// ContextToHTTP is a go-kit ClientBefore function that forwards the caller's
// token to the upstream service, which verifies it again.
func ContextToHTTP(ctx context.Context, r *http.Request) context.Context {
	if tok, _ := ctx.Value(tokenKey{}).(string); tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return ctx
}

// NewTokenContext returns ctx carrying token, for ContextToHTTP to send: the
// way a service calls another with its own ServiceToken.
func NewTokenContext(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

// ServiceToken issues a token identifying the calling service itself
// (UserID "service:<name>", RoleService). It lives as long as t's tokens;
// callers re-issue it per call or cache it for less than TTL.
func (t *Tokens) ServiceToken(service string) (string, error) {
	return t.Issue(Identity{UserID: "service:" + service, Role: RoleService})
}

// NewContext returns ctx carrying a verified identity.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the verified identity of the caller, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// AccessTokenFromContext returns the verified access token of the request,
// as Authenticate stored it: what a logout revokes.
func AccessTokenFromContext(ctx context.Context) (AccessToken, bool) {
	at, ok := ctx.Value(accessTokenKey{}).(AccessToken)
	return at, ok
}

// Authenticate is endpoint middleware that checks the token HTTPToContext
// put in the context (Tokens.Check: signature, expiry and, with a denylist,
// revocation) and stores the identity and the token's AccessToken; without
// a valid token the endpoint is not called.
func Authenticate(t *Tokens) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			tok, _ := ctx.Value(tokenKey{}).(string)
			if tok == "" {
				return nil, ErrUnauthenticated
			}
			id, at, err := t.Check(ctx, tok)
			if err != nil {
				return nil, err
			}
			return next(context.WithValue(NewContext(ctx, id), accessTokenKey{}, at), request)
		}
	}
}

// RequireRole is endpoint middleware, placed after Authenticate, that lets
// only callers with one of roles through.
func RequireRole(roles ...Role) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			id, ok := FromContext(ctx)
			if !ok {
				return nil, ErrUnauthenticated
			}
			for _, r := range roles {
				if id.Role == r {
					return next(ctx, request)
				}
			}
			return nil, ErrForbidden
		}
	}
}
