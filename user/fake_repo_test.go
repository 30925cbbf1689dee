package user

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
)

// fakeRepo is an in-memory Repository that keeps the rules the PostgreSQL
// one enforces with constraints: unique emails, one default address per
// type, conditional rotation. events records what would be in the outbox.
type fakeRepo struct {
	mu        sync.Mutex
	users     map[string]fakeUser // by id
	tokens    map[string]RefreshToken
	addresses map[string]Address
	events    []events.Envelope
}

type fakeUser struct {
	User
	hash string
}

func newFakeRepo() *fakeRepo {
	return &fakeRepo{users: map[string]fakeUser{}, tokens: map[string]RefreshToken{}, addresses: map[string]Address{}}
}

var _ Repository = (*fakeRepo)(nil)

func (r *fakeRepo) CreateUser(_ context.Context, u User, hash string, evt events.Envelope) (User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.users {
		if o.Email == u.Email {
			return User{}, ErrEmailTaken
		}
	}
	u.CreatedAt, u.UpdatedAt = time.Now(), time.Now()
	r.users[u.ID] = fakeUser{u, hash}
	r.events = append(r.events, evt)
	return u, nil
}

func (r *fakeRepo) UserByID(_ context.Context, id string) (User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.users[id]
	if !ok {
		return User{}, ErrNotFound
	}
	return u.User, nil
}

func (r *fakeRepo) Credentials(_ context.Context, email string) (User, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.users {
		if u.Email == email {
			return u.User, u.hash, nil
		}
	}
	return User{}, "", ErrNotFound
}

func (r *fakeRepo) UpdateUser(_ context.Context, id string, change func(User) (User, events.Envelope, error)) (User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.users[id]
	if !ok {
		return User{}, ErrNotFound
	}
	u, evt, err := change(old.User)
	if err != nil {
		return User{}, err
	}
	old.FirstName, old.LastName, old.Phone, old.UpdatedAt = u.FirstName, u.LastName, u.Phone, time.Now()
	r.users[id] = old
	r.events = append(r.events, evt)
	return old.User, nil
}

func (r *fakeRepo) MakeAdmin(_ context.Context, userID, hash string, evt events.Envelope) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.users[userID]
	if !ok {
		return ErrNotFound
	}
	u.Role, u.IsActive, u.hash = auth.RoleAdmin, true, hash
	r.users[userID] = u
	now := time.Now()
	for k, t := range r.tokens {
		if t.UserID == userID && t.RevokedAt == nil {
			t.RevokedAt = &now
			r.tokens[k] = t
		}
	}
	r.events = append(r.events, evt)
	return nil
}

func (r *fakeRepo) ListUsers(_ context.Context, offset, limit int) ([]User, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []User
	for _, u := range r.users {
		all = append(all, u.User)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].CreatedAt.After(all[j].CreatedAt) })
	total := len(all)
	if offset > total {
		offset = total
	}
	return all[offset:min(offset+limit, total)], total, nil
}

func (r *fakeRepo) CreateRefreshToken(_ context.Context, t RefreshToken, passwordHash string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.users[t.UserID]; !ok || u.hash != passwordHash {
		return ErrInvalidCredentials
	}
	r.tokens[string(t.Hash)] = t
	return nil
}

func (r *fakeRepo) RefreshTokenByHash(_ context.Context, hash []byte) (RefreshToken, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tokens[string(hash)]
	if !ok {
		return RefreshToken{}, ErrNotFound
	}
	return t, nil
}

func (r *fakeRepo) RotateRefreshToken(_ context.Context, oldID string, next RefreshToken) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, t := range r.tokens {
		if t.ID == oldID {
			if t.RevokedAt != nil {
				return ErrRefreshTokenReused
			}
			now := time.Now()
			t.RevokedAt, t.ReplacedBy = &now, next.ID
			r.tokens[k] = t
			r.tokens[string(next.Hash)] = next
			return nil
		}
	}
	return ErrRefreshTokenReused
}

func (r *fakeRepo) RevokeRefreshTokenFamily(_ context.Context, familyID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for k, t := range r.tokens {
		if t.FamilyID == familyID && t.RevokedAt == nil {
			t.RevokedAt = &now
			r.tokens[k] = t
		}
	}
	return nil
}

func (r *fakeRepo) ListAddresses(_ context.Context, userID string) ([]Address, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Address
	for _, a := range r.addresses {
		if a.UserID == userID {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

func (r *fakeRepo) CreateAddress(_ context.Context, a Address) (Address, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.users[a.UserID]; !ok {
		return Address{}, ErrNotFound
	}
	r.clearDefault(a)
	a.CreatedAt, a.UpdatedAt = time.Now(), time.Now()
	r.addresses[a.ID] = a
	return a, nil
}

func (r *fakeRepo) UpdateAddress(_ context.Context, userID, id string, change func(Address) Address) (Address, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.addresses[id]
	if !ok || old.UserID != userID {
		return Address{}, ErrNotFound
	}
	a := change(old)
	a.ID, a.UserID = old.ID, old.UserID
	r.clearDefault(a)
	a.CreatedAt, a.UpdatedAt = old.CreatedAt, time.Now()
	r.addresses[a.ID] = a
	return a, nil
}

func (r *fakeRepo) clearDefault(a Address) {
	if !a.IsDefault {
		return
	}
	for id, o := range r.addresses {
		if id != a.ID && o.UserID == a.UserID && o.Type == a.Type && o.IsDefault {
			o.IsDefault = false
			r.addresses[id] = o
		}
	}
}

func (r *fakeRepo) DeleteAddress(_ context.Context, userID, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.addresses[id]
	if !ok || a.UserID != userID {
		return ErrNotFound
	}
	delete(r.addresses, id)
	return nil
}

func (r *fakeRepo) eventTypes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

// expireTokens moves every stored token's expiry into the past.
func (r *fakeRepo) expireTokens() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, t := range r.tokens {
		t.ExpiresAt = time.Now().Add(-time.Second)
		r.tokens[k] = t
	}
}

func (r *fakeRepo) setActive(id string, active bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.users[id]
	u.IsActive = active
	r.users[id] = u
}
