package user

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func newTestService(t *testing.T) (Service, *fakeRepo, *auth.Tokens) {
	t.Helper()
	tokens, err := auth.NewTokens([]byte(testSecret), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	repo := newFakeRepo()
	svc, err := NewService(repo, tokens, Options{BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	return svc, repo, tokens
}

func mustRegister(t *testing.T, svc Service, email string) User {
	t.Helper()
	u, err := svc.Register(context.Background(), Registration{Email: email, Password: "password123", FirstName: "Ada", LastName: "Lovelace"})
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	return u
}

func TestRegister(t *testing.T) {
	ctx := context.Background()
	svc, repo, _ := newTestService(t)

	u, err := svc.Register(ctx, Registration{Email: "  Ada@Example.COM ", Password: "password123", FirstName: " Ada ", LastName: "Lovelace", Phone: " +44 20 "})
	if err != nil {
		t.Fatal(err)
	}
	want := User{ID: u.ID, Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Phone: "+44 20",
		Role: auth.RoleCustomer, IsActive: true, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
	if u != want {
		t.Errorf("registered user = %+v, want %+v", u, want)
	}
	if _, err := uuid.Parse(u.ID); err != nil {
		t.Errorf("id %q is not a UUID", u.ID)
	}
	_, hash, _ := repo.Credentials(ctx, "ada@example.com")
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("password123")) != nil {
		t.Error("stored hash does not match the password")
	}

	// The created event carries the contact data.
	if got := repo.eventTypes(); !slices.Equal(got, []string{events.UserCreated}) {
		t.Fatalf("events = %v, want [user.created]", got)
	}
	var data map[string]string
	if err := repo.events[0].Decode(&data); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"user_id": u.ID, "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"} {
		if data[k] != v {
			t.Errorf("event data %s = %q, want %q", k, data[k], v)
		}
	}
	if repo.events[0].Source != ServiceName {
		t.Errorf("event source = %q", repo.events[0].Source)
	}

	// The same address in another spelling is taken, and writes no event.
	for _, email := range []string{"ada@example.com", "ADA@example.com", " ada@EXAMPLE.com"} {
		if _, err := svc.Register(ctx, Registration{Email: email, Password: "password123", FirstName: "A", LastName: "B"}); !errors.Is(err, ErrEmailTaken) {
			t.Errorf("register %q again: err = %v, want ErrEmailTaken", email, err)
		}
	}
	if n := len(repo.eventTypes()); n != 1 {
		t.Errorf("%d events after duplicates, want 1", n)
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	svc, repo, tokens := newTestService(t)
	u := mustRegister(t, svc, "ada@example.com")
	inactive := mustRegister(t, svc, "gone@example.com")
	repo.setActive(inactive.ID, false)

	tests := []struct {
		name, email, password string
		wantErr               error
	}{
		{"correct", "ada@example.com", "password123", nil},
		{"email in another case", "  ADA@Example.com", "password123", nil},
		{"wrong password", "ada@example.com", "password124", ErrInvalidCredentials},
		{"unknown email", "nobody@example.com", "password123", ErrInvalidCredentials},
		{"empty password", "ada@example.com", "", ErrInvalidCredentials},
		{"deactivated", "gone@example.com", "password123", ErrUserInactive},
		{"deactivated, wrong password", "gone@example.com", "nope-nope", ErrInvalidCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pair, err := svc.Login(ctx, tc.email, tc.password)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if pair != (TokenPair{}) {
					t.Errorf("failed login returned tokens: %+v", pair)
				}
				return
			}
			if pair.TokenType != "Bearer" || pair.ExpiresIn != 900 || len(pair.RefreshToken) != 43 {
				t.Errorf("pair = %+v", pair)
			}
			id, err := tokens.Verify(pair.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if id != (auth.Identity{UserID: u.ID, Email: u.Email, Role: auth.RoleCustomer}) {
				t.Errorf("identity = %+v", id)
			}
			// Only the hash is stored.
			if _, err := repo.RefreshTokenByHash(ctx, []byte(pair.RefreshToken)); !errors.Is(err, ErrNotFound) {
				t.Error("refresh token stored in the clear")
			}
			if _, err := repo.RefreshTokenByHash(ctx, hashToken(pair.RefreshToken)); err != nil {
				t.Errorf("refresh token hash not stored: %v", err)
			}
		})
	}
}

func TestRefreshRotation(t *testing.T) {
	ctx := context.Background()
	svc, repo, _ := newTestService(t)
	mustRegister(t, svc, "ada@example.com")
	first, err := svc.Login(ctx, "ada@example.com", "password123")
	if err != nil {
		t.Fatal(err)
	}

	second, err := svc.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == "" {
		t.Fatalf("refresh did not rotate: %+v", second)
	}
	old, _ := repo.RefreshTokenByHash(ctx, hashToken(first.RefreshToken))
	next, _ := repo.RefreshTokenByHash(ctx, hashToken(second.RefreshToken))
	if old.RevokedAt == nil || old.ReplacedBy != next.ID || old.FamilyID != next.FamilyID {
		t.Errorf("old token %+v not revoked and replaced by %+v in its family", old, next)
	}

	third, err := svc.Refresh(ctx, second.RefreshToken)
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}

	// The first token comes back: reuse. The whole family dies, the live
	// token included.
	if _, err := svc.Refresh(ctx, first.RefreshToken); !errors.Is(err, ErrRefreshTokenReused) {
		t.Fatalf("reuse: err = %v, want ErrRefreshTokenReused", err)
	}
	if _, err := svc.Refresh(ctx, third.RefreshToken); !errors.Is(err, ErrRefreshTokenReused) {
		t.Errorf("live token after reuse: err = %v, want ErrRefreshTokenReused", err)
	}

	// Another login is another family, untouched by that.
	other, err := svc.Login(ctx, "ada@example.com", "password123")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Refresh(ctx, other.RefreshToken); err != nil {
		t.Errorf("refresh of another session: %v", err)
	}
}

func TestRefreshRejects(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		setup   func(*fakeRepo, User)
		token   func(TokenPair) string
		wantErr error
	}{
		{"unknown token", nil, func(TokenPair) string { return "not-a-token-we-issued" }, ErrInvalidRefreshToken},
		{"empty token", nil, func(TokenPair) string { return "" }, ErrInvalidRefreshToken},
		{"access token instead", nil, func(p TokenPair) string { return p.AccessToken }, ErrInvalidRefreshToken},
		{"expired", func(r *fakeRepo, _ User) { r.expireTokens() }, func(p TokenPair) string { return p.RefreshToken }, ErrInvalidRefreshToken},
		{"deactivated user", func(r *fakeRepo, u User) { r.setActive(u.ID, false) }, func(p TokenPair) string { return p.RefreshToken }, ErrUserInactive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc, repo, _ := newTestService(t)
			u := mustRegister(t, svc, "ada@example.com")
			pair, err := svc.Login(ctx, "ada@example.com", "password123")
			if err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(repo, u)
			}
			if _, err := svc.Refresh(ctx, tc.token(pair)); !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newTestService(t)
	ada := mustRegister(t, svc, "ada@example.com")
	bob := mustRegister(t, svc, "bob@example.com")
	adaPair, _ := svc.Login(ctx, "ada@example.com", "password123")
	bobPair, _ := svc.Login(ctx, "bob@example.com", "password123")

	// Bob cannot end Ada's session, and learns nothing about her token.
	if err := svc.Logout(ctx, bob.ID, auth.AccessToken{}, adaPair.RefreshToken); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("logout with another user's token: err = %v, want ErrInvalidRefreshToken", err)
	}
	if err := svc.Logout(ctx, ada.ID, auth.AccessToken{}, "unknown"); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("logout with unknown token: err = %v, want ErrInvalidRefreshToken", err)
	}

	if err := svc.Logout(ctx, ada.ID, auth.AccessToken{}, adaPair.RefreshToken); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if _, err := svc.Refresh(ctx, adaPair.RefreshToken); err == nil {
		t.Error("refresh token still works after logout")
	}
	if _, err := svc.Refresh(ctx, bobPair.RefreshToken); err != nil {
		t.Errorf("Bob's session ended by Ada's logout: %v", err)
	}
}

// fakeRevoker records revoked access tokens, or fails with err.
type fakeRevoker struct {
	revoked []auth.AccessToken
	err     error
}

func (f *fakeRevoker) Revoke(_ context.Context, at auth.AccessToken) error {
	if f.err != nil {
		return f.err
	}
	f.revoked = append(f.revoked, at)
	return nil
}

// TestLogoutRevokesAccessToken: the access token presented is revoked with
// the session, and a revocation that cannot be recorded fails the logout
// before the session ends, so the client retries instead of trusting it.
func TestLogoutRevokesAccessToken(t *testing.T) {
	ctx := context.Background()
	tokens, _ := auth.NewTokens([]byte(testSecret), 15*time.Minute)
	revoker := &fakeRevoker{}
	svc, err := NewService(newFakeRepo(), tokens, Options{BcryptCost: bcrypt.MinCost, Revoker: revoker})
	if err != nil {
		t.Fatal(err)
	}
	ada := mustRegister(t, svc, "ada@example.com")
	pair, _ := svc.Login(ctx, "ada@example.com", "password123")
	access := auth.AccessToken{ID: "jti-1", ExpiresAt: time.Now().Add(time.Minute)}

	revoker.err = auth.ErrRevocationUnavailable
	if err := svc.Logout(ctx, ada.ID, access, pair.RefreshToken); !errors.Is(err, auth.ErrRevocationUnavailable) {
		t.Fatalf("logout while the denylist is down: err = %v, want ErrRevocationUnavailable", err)
	}
	if len(revoker.revoked) != 0 {
		t.Fatalf("revoked %v although the revoker failed", revoker.revoked)
	}
	next, err := svc.Refresh(ctx, pair.RefreshToken)
	if err != nil {
		t.Fatalf("a failed logout ended the session: %v", err)
	}

	revoker.err = nil
	if err := svc.Logout(ctx, ada.ID, access, next.RefreshToken); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if !slices.Equal(revoker.revoked, []auth.AccessToken{access}) {
		t.Errorf("revoked %v, want [%v]", revoker.revoked, access)
	}
}

func TestUpdateProfile(t *testing.T) {
	ctx := context.Background()
	svc, repo, _ := newTestService(t)
	u := mustRegister(t, svc, "ada@example.com")

	first, phone := " Augusta ", "+1 555"
	got, err := svc.UpdateProfile(ctx, u.ID, ProfileUpdate{FirstName: &first, Phone: &phone})
	if err != nil {
		t.Fatal(err)
	}
	if got.FirstName != "Augusta" || got.LastName != "Lovelace" || got.Phone != "+1 555" || got.Email != u.Email {
		t.Errorf("updated = %+v", got)
	}
	if types := repo.eventTypes(); !slices.Equal(types, []string{events.UserCreated, events.UserUpdated}) {
		t.Errorf("events = %v", types)
	}
	if _, err := svc.UpdateProfile(ctx, uuid.NewString(), ProfileUpdate{FirstName: &first}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: err = %v, want ErrNotFound", err)
	}
}

func TestAddresses(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newTestService(t)
	ada := mustRegister(t, svc, "ada@example.com")
	bob := mustRegister(t, svc, "bob@example.com")

	add := func(owner User, typ string, def bool) Address {
		t.Helper()
		a, err := svc.AddAddress(ctx, owner.ID, Address{Type: typ, Street: "1 Main St", City: "London", State: "LDN", ZipCode: "N1", Country: "UK", IsDefault: def})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	defaults := func(owner User) map[string]string {
		t.Helper()
		list, err := svc.ListAddresses(ctx, owner.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, a := range list {
			if a.IsDefault {
				if prev, dup := out[a.Type]; dup {
					t.Fatalf("two default %s addresses: %s and %s", a.Type, prev, a.ID)
				}
				out[a.Type] = a.ID
			}
		}
		return out
	}

	ship1 := add(ada, AddressShipping, true)
	bill := add(ada, AddressBilling, true)
	ship2 := add(ada, AddressShipping, true)
	if got := defaults(ada); got[AddressShipping] != ship2.ID || got[AddressBilling] != bill.ID {
		t.Errorf("after second default shipping: defaults = %v, want shipping %s billing %s", got, ship2.ID, bill.ID)
	}

	yes := true
	if _, err := svc.UpdateAddress(ctx, ada.ID, ship1.ID, AddressUpdate{IsDefault: &yes}); err != nil {
		t.Fatal(err)
	}
	if got := defaults(ada); got[AddressShipping] != ship1.ID || got[AddressBilling] != bill.ID {
		t.Errorf("after making ship1 default: defaults = %v", got)
	}

	// Moving the default shipping address to billing takes over that default.
	billing := AddressBilling
	if _, err := svc.UpdateAddress(ctx, ada.ID, ship1.ID, AddressUpdate{Type: &billing}); err != nil {
		t.Fatal(err)
	}
	if got := defaults(ada); got[AddressBilling] != ship1.ID || got[AddressShipping] != "" {
		t.Errorf("after retyping ship1: defaults = %v", got)
	}

	// Bob's address is not Ada's: every way of reaching it is "not found".
	bobs := add(bob, AddressShipping, true)
	street := "2 Other St"
	if _, err := svc.UpdateAddress(ctx, ada.ID, bobs.ID, AddressUpdate{Street: &street}); !errors.Is(err, ErrNotFound) {
		t.Errorf("update another user's address: err = %v, want ErrNotFound", err)
	}
	if err := svc.DeleteAddress(ctx, ada.ID, bobs.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete another user's address: err = %v, want ErrNotFound", err)
	}
	if list, _ := svc.ListAddresses(ctx, bob.ID); len(list) != 1 || list[0].Street != "1 Main St" {
		t.Errorf("Bob's addresses changed: %+v", list)
	}
	if list, _ := svc.ListAddresses(ctx, ada.ID); len(list) != 3 {
		t.Errorf("Ada sees %d addresses, want 3", len(list))
	}

	if err := svc.DeleteAddress(ctx, ada.ID, ship2.ID); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteAddress(ctx, ada.ID, ship2.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"", "not-a-uuid", "1"} {
		if err := svc.DeleteAddress(ctx, ada.ID, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete %q: err = %v, want ErrNotFound", id, err)
		}
	}
}

func TestGetUserAndList(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newTestService(t)
	var ids []string
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		ids = append(ids, mustRegister(t, svc, e).ID)
		time.Sleep(time.Millisecond) // distinct creation times for the ordering
	}
	got, err := svc.GetUser(ctx, ids[1])
	if err != nil || got.Email != "b@example.com" {
		t.Errorf("GetUser = %+v, %v", got, err)
	}
	for _, id := range []string{uuid.NewString(), "nope", ""} {
		if _, err := svc.GetUser(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetUser(%q): err = %v, want ErrNotFound", id, err)
		}
	}

	page, err := svc.ListUsers(ctx, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 3 || len(page.Items) != 2 || page.Items[0].ID != ids[2] || page.Page != 1 || page.PageSize != 2 {
		t.Errorf("page 1 = %+v", page)
	}
	page, _ = svc.ListUsers(ctx, 2, 2)
	if len(page.Items) != 1 || page.Items[0].ID != ids[0] {
		t.Errorf("page 2 = %+v", page)
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	svc, repo, tokens := newTestService(t)
	opts := Options{BcryptCost: bcrypt.MinCost}

	if err := EnsureAdmin(ctx, repo, opts, "Root@Example.com", "admin-password"); err != nil {
		t.Fatal(err)
	}
	pair, err := svc.Login(ctx, "root@example.com", "admin-password")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tokens.Verify(pair.AccessToken); id.Role != auth.RoleAdmin {
		t.Errorf("role = %q, want admin", id.Role)
	}

	// Again with the same credentials: nothing changes, the session lives.
	if err := EnsureAdmin(ctx, repo, opts, "root@example.com", "admin-password"); err != nil {
		t.Fatal(err)
	}
	if types := repo.eventTypes(); !slices.Equal(types, []string{events.UserCreated}) {
		t.Errorf("events after second EnsureAdmin = %v", types)
	}
	if _, err := svc.Refresh(ctx, pair.RefreshToken); err != nil {
		t.Errorf("idempotent EnsureAdmin ended a session: %v", err)
	}

	// Someone registered the admin address first, as a customer, with a
	// password of their own: they must not inherit admin rights.
	mustRegister(t, svc, "boss@example.com")
	squatter, err := svc.Login(ctx, "boss@example.com", "password123")
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureAdmin(ctx, repo, opts, "boss@example.com", "the-real-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Login(ctx, "boss@example.com", "password123"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("squatter's password still works: %v", err)
	}
	if _, err := svc.Refresh(ctx, squatter.RefreshToken); err == nil {
		t.Error("squatter's session survived the promotion")
	}
	boss, err := svc.Login(ctx, "boss@example.com", "the-real-password")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tokens.Verify(boss.AccessToken); id.Role != auth.RoleAdmin {
		t.Errorf("role = %q, want admin", id.Role)
	}

	for _, bad := range [][2]string{{"not-an-email", "admin-password"}, {"a@example.com", "short"}, {"root\u200b@example.com", "admin-password"}} {
		if err := EnsureAdmin(ctx, repo, opts, bad[0], bad[1]); err == nil {
			t.Errorf("EnsureAdmin(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestNewServiceOptions(t *testing.T) {
	tokens, _ := auth.NewTokens([]byte(testSecret), time.Minute)
	for _, opts := range []Options{{BcryptCost: 3}, {BcryptCost: 32}, {BcryptCost: 4, RefreshTokenTTL: -time.Second}} {
		if _, err := NewService(newFakeRepo(), tokens, opts); err == nil {
			t.Errorf("NewService(%+v) accepted", opts)
		}
	}
}
