// Package user is the user service of Mercato: registration, login with
// short-lived access tokens and rotating refresh tokens, profiles and
// addresses, and the admin's view of users. The go-kit layers sit in their
// own files: service.go (this file: interface, domain types and errors, the
// implementation of accounts and tokens), addresses.go, admin.go (the admin
// bootstrap main runs) and validation.go; endpoints.go, requests.go,
// responses.go, transport_http.go and client.go; middleware.go. The
// PostgreSQL repository lives in package user/postgres.
package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/paging"
	"github.com/mercato-dev/mercato/shared/validate"
)

// ServiceName is the name the service registers in Consul under and puts in
// the source of its events.
const ServiceName = "user"

// Service is what the user service does. Methods acting on "own" data take
// the caller's user id explicitly; the transport fills it from the verified
// token, never from the request body.
type Service interface {
	Register(ctx context.Context, r Registration) (User, error)
	Login(ctx context.Context, email, password string) (TokenPair, error)
	Refresh(ctx context.Context, refreshToken string) (TokenPair, error)
	// Logout ends the caller's session: the refresh token's and the access
	// token the caller presented (access), which stops working at once.
	Logout(ctx context.Context, userID string, access auth.AccessToken, refreshToken string) error

	GetProfile(ctx context.Context, userID string) (User, error)
	UpdateProfile(ctx context.Context, userID string, p ProfileUpdate) (User, error)

	ListAddresses(ctx context.Context, userID string) ([]Address, error)
	AddAddress(ctx context.Context, userID string, a Address) (Address, error)
	UpdateAddress(ctx context.Context, userID, addressID string, p AddressUpdate) (Address, error)
	DeleteAddress(ctx context.Context, userID, addressID string) error

	ListUsers(ctx context.Context, page, pageSize int) (UserPage, error)
	GetUser(ctx context.Context, id string) (User, error)
}

// User is an account. The password hash never leaves the repository.
type User struct {
	ID         string    `json:"id"`
	Email      string    `json:"email"`
	FirstName  string    `json:"first_name"`
	LastName   string    `json:"last_name"`
	Phone      string    `json:"phone,omitempty"`
	Role       auth.Role `json:"role"`
	IsActive   bool      `json:"is_active"`
	IsVerified bool      `json:"is_verified"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Registration is what a new customer gives.
type Registration struct {
	Email     string
	Password  string
	FirstName string
	LastName  string
	Phone     string
}

// ProfileUpdate changes the fields that are not nil. An empty Phone clears it.
type ProfileUpdate struct {
	FirstName *string
	LastName  *string
	Phone     *string
}

// Address types.
const (
	AddressBilling  = "billing"
	AddressShipping = "shipping"
)

// Address is a billing or shipping address of a user; at most one of each
// type is the default. Its db tags name the columns of user/postgres, which
// reads it as it is: every field is stored as the API shows it.
type Address struct {
	ID        string    `json:"id" db:"id"`
	UserID    string    `json:"user_id" db:"user_id"`
	Type      string    `json:"type" db:"type"`
	Street    string    `json:"street" db:"street"`
	City      string    `json:"city" db:"city"`
	State     string    `json:"state" db:"state"`
	ZipCode   string    `json:"zip_code" db:"zip_code"`
	Country   string    `json:"country" db:"country"`
	IsDefault bool      `json:"is_default" db:"is_default"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
	UpdatedAt time.Time `json:"updated_at" db:"updated_at"`
}

// AddressUpdate changes the fields that are not nil.
type AddressUpdate struct {
	Type      *string
	Street    *string
	City      *string
	State     *string
	ZipCode   *string
	Country   *string
	IsDefault *bool
}

// UserPage is one page of users, newest first.
type UserPage = paging.Page[User]

// TokenPair is what login and refresh hand out.
type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"` // seconds until the access token expires
}

// RefreshToken is the stored form of a refresh token: only its SHA-256 hash
// is kept, so a database leak yields no usable tokens. Tokens issued from one
// login share a family; rotation revokes a token and issues its successor in
// the same family.
type RefreshToken struct {
	ID         string
	UserID     string
	FamilyID   string
	Hash       []byte
	ExpiresAt  time.Time
	RevokedAt  *time.Time
	ReplacedBy string
	CreatedAt  time.Time
}

// Domain errors. The transport maps them to status codes with errors.Is.
var (
	ErrNotFound            = errors.New("not found")
	ErrEmailTaken          = errors.New("a user with this email already exists")
	ErrInvalidCredentials  = errors.New("invalid email or password")
	ErrInvalidRefreshToken = errors.New("invalid or expired refresh token")
	ErrRefreshTokenReused  = errors.New("refresh token was already used; the session has been revoked")
	ErrUserInactive        = errors.New("the account is deactivated")
)

// Repository stores users, refresh tokens and addresses. Methods that take an
// event write it to the outbox in the same transaction as the change, so the
// event exists if and only if the change commits. Lookups of missing rows
// return ErrNotFound.
type Repository interface {
	// CreateUser fails with ErrEmailTaken when the email is in use.
	CreateUser(ctx context.Context, u User, passwordHash string, created events.Envelope) (User, error)
	UserByID(ctx context.Context, id string) (User, error)
	// Credentials returns the user with this (normalised) email and the
	// password hash.
	Credentials(ctx context.Context, email string) (User, string, error)
	// UpdateUser applies change to the user with this id while it holds the
	// user's row, then stores the profile fields (names, phone) of the user
	// change returns and the event with them. Holding the row means two
	// concurrent updates of different fields both keep theirs.
	UpdateUser(ctx context.Context, id string, change func(User) (User, events.Envelope, error)) (User, error)
	// MakeAdmin gives the user the admin role, activates it, sets its
	// password hash and revokes its refresh tokens.
	MakeAdmin(ctx context.Context, userID, passwordHash string, updated events.Envelope) error
	ListUsers(ctx context.Context, offset, limit int) ([]User, int, error)

	// CreateRefreshToken stores t, the first token of a login's family,
	// only while the user's password hash is still passwordHash, the one
	// the login checked the password against. It fails with
	// ErrInvalidCredentials when the hash changed since (MakeAdmin) or the
	// user is gone: a login that raced the change must not start a session
	// the change was to end.
	CreateRefreshToken(ctx context.Context, t RefreshToken, passwordHash string) error
	RefreshTokenByHash(ctx context.Context, hash []byte) (RefreshToken, error)
	// RotateRefreshToken revokes oldID and stores next in one transaction.
	// It fails with ErrRefreshTokenReused when oldID is no longer active
	// (a concurrent refresh won the race).
	RotateRefreshToken(ctx context.Context, oldID string, next RefreshToken) error
	RevokeRefreshTokenFamily(ctx context.Context, familyID string) error

	ListAddresses(ctx context.Context, userID string) ([]Address, error)
	// CreateAddress and UpdateAddress clear the previous default of the same
	// type in the same transaction when the address they store is the
	// default.
	CreateAddress(ctx context.Context, a Address) (Address, error)
	// UpdateAddress applies change to address id of userID while it holds
	// the user's row, as UpdateUser does, and stores what change returns
	// but its ID and UserID. Other users' addresses are ErrNotFound.
	UpdateAddress(ctx context.Context, userID, id string, change func(Address) Address) (Address, error)
	DeleteAddress(ctx context.Context, userID, id string) error
}

// Options tune the service. Zero values take the defaults.
type Options struct {
	// BcryptCost defaults to bcrypt.DefaultCost (10): about 60 ms per hash on
	// one core of the 2-core development machines, against about 230 ms for
	// 12. Tests use bcrypt.MinCost.
	BcryptCost int
	// RefreshTokenTTL defaults to 30 days.
	RefreshTokenTTL time.Duration
	// Revoker records the access tokens that logouts revoke (main gives the
	// *auth.Denylist the gateway and the services check). Nil leaves access
	// tokens working until they expire, as tests of other things may.
	Revoker Revoker
}

// Revoker revokes access tokens before their expiry (*auth.Denylist).
type Revoker interface {
	Revoke(ctx context.Context, at auth.AccessToken) error
}

// withDefaults fills in the zero values and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.DefaultCost
	}
	if o.BcryptCost < bcrypt.MinCost || o.BcryptCost > bcrypt.MaxCost {
		return Options{}, fmt.Errorf("user: bcrypt cost %d outside %d..%d", o.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if o.RefreshTokenTTL == 0 {
		o.RefreshTokenTTL = 30 * 24 * time.Hour
	}
	if o.RefreshTokenTTL < 0 {
		return Options{}, errors.New("user: refresh token lifetime must be positive")
	}
	return o, nil
}

type service struct {
	repo       Repository
	tokens     *auth.Tokens
	cost       int
	refreshTTL time.Duration
	revoker    Revoker // nil: access tokens outlive a logout until they expire
	// dummyHash is compared against when the email is unknown, so a login
	// takes as long for a missing account as for a wrong password and does
	// not reveal which emails are registered.
	dummyHash []byte
}

// NewService returns the service backed by repo, issuing access tokens with
// tokens.
func NewService(repo Repository, tokens *auth.Tokens, opts Options) (Service, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("no account has this password"), opts.BcryptCost)
	if err != nil {
		return nil, err
	}
	return &service{repo: repo, tokens: tokens, cost: opts.BcryptCost, refreshTTL: opts.RefreshTokenTTL,
		revoker: opts.Revoker, dummyHash: dummy}, nil
}

// NormalizeEmail is the form emails are stored and looked up in.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// newUserEvent builds user.created or user.updated for u.
func newUserEvent(ctx context.Context, typ string, u User) (events.Envelope, error) {
	return events.New(ctx, ServiceName, typ, events.UserPayload{
		UserID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		Phone: u.Phone, Role: string(u.Role),
	})
}

func (s *service) Register(ctx context.Context, r Registration) (User, error) {
	return s.createUser(ctx, r, auth.RoleCustomer)
}

func (s *service) createUser(ctx context.Context, r Registration, role auth.Role) (User, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), s.cost)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	u := User{
		ID:        uuid.NewString(),
		Email:     NormalizeEmail(r.Email),
		FirstName: strings.TrimSpace(r.FirstName),
		LastName:  strings.TrimSpace(r.LastName),
		Phone:     strings.TrimSpace(r.Phone),
		Role:      role,
		IsActive:  true,
	}
	evt, err := newUserEvent(ctx, events.UserCreated, u)
	if err != nil {
		return User{}, err
	}
	return s.repo.CreateUser(ctx, u, string(hash), evt)
}

func (s *service) Login(ctx context.Context, email, password string) (TokenPair, error) {
	u, hash, err := s.repo.Credentials(ctx, NormalizeEmail(email))
	if errors.Is(err, ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return TokenPair{}, ErrInvalidCredentials
	}
	if err != nil {
		return TokenPair{}, err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return TokenPair{}, ErrInvalidCredentials
	}
	// Only after the password is proven, so the answer reveals nothing to
	// someone guessing.
	if !u.IsActive {
		return TokenPair{}, ErrUserInactive
	}
	refresh, stored, err := s.newRefreshToken(u.ID, uuid.NewString())
	if err != nil {
		return TokenPair{}, err
	}
	if err := s.repo.CreateRefreshToken(ctx, stored, hash); err != nil {
		return TokenPair{}, err
	}
	return s.pair(u, refresh)
}

func (s *service) Refresh(ctx context.Context, refreshToken string) (TokenPair, error) {
	old, err := s.repo.RefreshTokenByHash(ctx, hashToken(refreshToken))
	if errors.Is(err, ErrNotFound) {
		return TokenPair{}, ErrInvalidRefreshToken
	}
	if err != nil {
		return TokenPair{}, err
	}
	if old.RevokedAt != nil {
		// A rotated or revoked token coming back means it was copied: either
		// the thief or the user holds the live one. Ending the whole session
		// locks both out until the user logs in again.
		return TokenPair{}, s.reused(ctx, old.FamilyID)
	}
	if !time.Now().Before(old.ExpiresAt) {
		return TokenPair{}, ErrInvalidRefreshToken
	}
	u, err := s.repo.UserByID(ctx, old.UserID)
	if err != nil {
		return TokenPair{}, err
	}
	if !u.IsActive {
		return TokenPair{}, ErrUserInactive
	}
	refresh, next, err := s.newRefreshToken(u.ID, old.FamilyID)
	if err != nil {
		return TokenPair{}, err
	}
	if err := s.repo.RotateRefreshToken(ctx, old.ID, next); err != nil {
		if errors.Is(err, ErrRefreshTokenReused) {
			return TokenPair{}, s.reused(ctx, old.FamilyID)
		}
		return TokenPair{}, err
	}
	return s.pair(u, refresh)
}

// reused revokes a token family and reports the reuse.
func (s *service) reused(ctx context.Context, familyID string) error {
	if err := s.repo.RevokeRefreshTokenFamily(ctx, familyID); err != nil {
		return fmt.Errorf("revoke reused refresh token family: %w", err)
	}
	return ErrRefreshTokenReused
}

// Logout ends the session the refresh token belongs to: its whole family, so
// no earlier or later token of that login keeps working, and the access token
// the caller presented. The access token is revoked first: if that cannot be
// recorded the logout fails and changes nothing, so the client knows to retry
// rather than believe a token it may have leaked is dead.
func (s *service) Logout(ctx context.Context, userID string, access auth.AccessToken, refreshToken string) error {
	t, err := s.repo.RefreshTokenByHash(ctx, hashToken(refreshToken))
	if errors.Is(err, ErrNotFound) {
		return ErrInvalidRefreshToken
	}
	if err != nil {
		return err
	}
	// Another user's token is answered like an unknown one: the caller must
	// not learn that it exists, let alone end that session.
	if t.UserID != userID {
		return ErrInvalidRefreshToken
	}
	if s.revoker != nil {
		if err := s.revoker.Revoke(ctx, access); err != nil {
			return err
		}
	}
	return s.repo.RevokeRefreshTokenFamily(ctx, t.FamilyID)
}

func (s *service) newRefreshToken(userID, familyID string) (string, RefreshToken, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", RefreshToken{}, fmt.Errorf("refresh token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	return tok, RefreshToken{
		ID:        uuid.NewString(),
		UserID:    userID,
		FamilyID:  familyID,
		Hash:      hashToken(tok),
		ExpiresAt: time.Now().Add(s.refreshTTL),
	}, nil
}

// hashToken is the stored form of a refresh token. SHA-256 without salt is
// enough: the token is 256 random bits, not a guessable password, and an
// unsalted hash can be looked up by a unique index.
func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

func (s *service) pair(u User, refresh string) (TokenPair, error) {
	access, err := s.tokens.Issue(auth.Identity{UserID: u.ID, Email: u.Email, Role: u.Role})
	if err != nil {
		return TokenPair{}, fmt.Errorf("issue access token: %w", err)
	}
	return TokenPair{
		AccessToken:  access,
		RefreshToken: refresh,
		TokenType:    "Bearer",
		ExpiresIn:    int(s.tokens.TTL().Seconds()),
	}, nil
}

func (s *service) GetProfile(ctx context.Context, userID string) (User, error) {
	return s.GetUser(ctx, userID)
}

func (s *service) UpdateProfile(ctx context.Context, userID string, p ProfileUpdate) (User, error) {
	userID, ok := validate.ParseUUID(userID)
	if !ok {
		return User{}, ErrNotFound
	}
	return s.repo.UpdateUser(ctx, userID, func(u User) (User, events.Envelope, error) {
		patch(&u.FirstName, p.FirstName)
		patch(&u.LastName, p.LastName)
		patch(&u.Phone, p.Phone)
		evt, err := newUserEvent(ctx, events.UserUpdated, u)
		return u, evt, err
	})
}

// patch sets *dst to *src, trimmed, when the PATCH request sent that field
// (src is not nil).
func patch(dst, src *string) {
	if src != nil {
		*dst = strings.TrimSpace(*src)
	}
}

func (s *service) ListUsers(ctx context.Context, page, pageSize int) (UserPage, error) {
	if page < 1 || pageSize < 1 {
		return UserPage{}, fmt.Errorf("user: page %d, size %d: both must be positive", page, pageSize)
	}
	users, total, err := s.repo.ListUsers(ctx, (page-1)*pageSize, pageSize)
	if err != nil {
		return UserPage{}, err
	}
	return UserPage{Items: users, Page: page, PageSize: pageSize, Total: total}, nil
}

func (s *service) GetUser(ctx context.Context, id string) (User, error) {
	id, ok := validate.ParseUUID(id)
	if !ok {
		return User{}, ErrNotFound
	}
	return s.repo.UserByID(ctx, id)
}
