package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"golang.org/x/crypto/bcrypt"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
	"github.com/mercato-dev/mercato/user"
	"github.com/mercato-dev/mercato/user/postgres"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func newRepo(t *testing.T) (*postgres.Repository, *sqlx.DB) {
	t.Helper()
	db := testkit.Postgres(t)
	ctx := context.Background()
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// A second run is a no-op: every instance migrates at start.
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	return postgres.New(db), db
}

func newUser(email string) user.User {
	return user.User{ID: uuid.NewString(), Email: email, FirstName: "Ada", LastName: "Lovelace", Role: auth.RoleCustomer, IsActive: true}
}

func event(t *testing.T, typ string, u user.User) events.Envelope {
	t.Helper()
	e, err := events.New(context.Background(), user.ServiceName, typ, map[string]string{"user_id": u.ID, "email": u.Email})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func count(t *testing.T, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)

	u := newUser("ada@example.com")
	u.Phone = "+44 20"
	created, err := repo.CreateUser(ctx, u, "hash-1", event(t, events.UserCreated, u))
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != u.ID || created.Email != u.Email || created.Phone != "+44 20" || created.Role != auth.RoleCustomer ||
		!created.IsActive || created.IsVerified || created.CreatedAt.IsZero() || created.CreatedAt.Location() != time.UTC {
		t.Errorf("created = %+v", created)
	}

	got, err := repo.UserByID(ctx, u.ID)
	if err != nil || got != created {
		t.Errorf("UserByID = %+v, %v; want %+v", got, err, created)
	}
	got, hash, err := repo.Credentials(ctx, "ada@example.com")
	if err != nil || got.ID != u.ID || hash != "hash-1" {
		t.Errorf("Credentials = %+v, %q, %v", got, hash, err)
	}

	// Clearing the phone stores NULL, the seed's "none".
	updated, err := repo.UpdateUser(ctx, u.ID, func(u user.User) (user.User, events.Envelope, error) {
		u.FirstName, u.Phone = "Augusta", ""
		return u, event(t, events.UserUpdated, u), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.FirstName != "Augusta" || updated.Phone != "" || !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("updated = %+v", updated)
	}
	if n := count(t, db, `SELECT count(*) FROM users WHERE id = $1 AND phone IS NULL`, u.ID); n != 1 {
		t.Error("empty phone not stored as NULL")
	}

	if err := repo.MakeAdmin(ctx, u.ID, "hash-2", event(t, events.UserUpdated, u)); err != nil {
		t.Fatal(err)
	}
	got, hash, _ = repo.Credentials(ctx, "ada@example.com")
	if got.Role != auth.RoleAdmin || hash != "hash-2" {
		t.Errorf("after MakeAdmin: role %q hash %q", got.Role, hash)
	}

	missing := uuid.NewString()
	if _, err := repo.UserByID(ctx, missing); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("UserByID(missing): %v", err)
	}
	if _, _, err := repo.Credentials(ctx, "nobody@example.com"); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("Credentials(missing): %v", err)
	}
	unchanged := func(u user.User) (user.User, events.Envelope, error) { return u, event(t, events.UserUpdated, u), nil }
	if _, err := repo.UpdateUser(ctx, missing, unchanged); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("UpdateUser(missing): %v", err)
	}
	if err := repo.MakeAdmin(ctx, missing, "h", event(t, events.UserUpdated, u)); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("MakeAdmin(missing): %v", err)
	}

	// Only "no rows" is not found: a failing query is a failure.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := repo.UserByID(cancelled, u.ID); err == nil || errors.Is(err, user.ErrNotFound) {
		t.Errorf("UserByID with a cancelled context: err = %v, want a failure that is not ErrNotFound", err)
	}

	// The events went to the outbox with their changes: created, updated twice.
	if n := count(t, db, `SELECT count(*) FROM outbox`); n != 3 {
		t.Errorf("outbox holds %d rows, want 3", n)
	}
}

func TestListUsers(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	var ids []string
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"} {
		u := newUser(email)
		if _, err := repo.CreateUser(ctx, u, "h", event(t, events.UserCreated, u)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	tests := []struct {
		offset, limit int
		want          []string // newest first
	}{
		{0, 2, []string{ids[4], ids[3]}},
		{2, 2, []string{ids[2], ids[1]}},
		{4, 2, []string{ids[0]}},
		{10, 2, nil},
	}
	for _, tc := range tests {
		users, total, err := repo.ListUsers(ctx, tc.offset, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if total != 5 || len(users) != len(tc.want) {
			t.Fatalf("offset %d: %d users of %d, want %d of 5", tc.offset, len(users), total, len(tc.want))
		}
		for i, u := range users {
			if u.ID != tc.want[i] {
				t.Errorf("offset %d item %d = %s, want %s", tc.offset, i, u.Email, tc.want[i])
			}
		}
	}
}

func TestCreateUserOutboxIsTransactional(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)

	u := newUser("ada@example.com")
	evt := event(t, events.UserCreated, u)
	if _, err := repo.CreateUser(ctx, u, "h", evt); err != nil {
		t.Fatal(err)
	}
	var row struct {
		Type    string `db:"type"`
		Payload string `db:"payload"`
	}
	if err := db.Get(&row, `SELECT type, payload::text AS payload FROM outbox WHERE id = $1`, evt.ID); err != nil {
		t.Fatalf("outbox row of the registration: %v", err)
	}
	if row.Type != events.UserCreated {
		t.Errorf("outbox type = %q", row.Type)
	}

	// The user insert fails (duplicate email): its event must not exist.
	dup := newUser("ada@example.com")
	dupEvt := event(t, events.UserCreated, dup)
	if _, err := repo.CreateUser(ctx, dup, "h", dupEvt); !errors.Is(err, user.ErrEmailTaken) {
		t.Fatalf("duplicate email: err = %v, want ErrEmailTaken", err)
	}
	if n := count(t, db, `SELECT count(*) FROM outbox WHERE id = $1`, dupEvt.ID); n != 0 {
		t.Error("event of a failed registration is in the outbox")
	}

	// The event cannot be stored (an envelope id the outbox refuses): the
	// user must not exist either.
	lost := newUser("lost@example.com")
	bad := event(t, events.UserCreated, lost)
	bad.ID = "not-a-uuid"
	if _, err := repo.CreateUser(ctx, lost, "h", bad); err == nil {
		t.Fatal("registration with an unstorable event succeeded")
	}
	if n := count(t, db, `SELECT count(*) FROM users WHERE email = 'lost@example.com'`); n != 0 {
		t.Error("user committed without its event")
	}
	if n := count(t, db, `SELECT count(*) FROM outbox`); n != 1 {
		t.Errorf("outbox holds %d rows, want 1", n)
	}
}

func TestConcurrentRegistrationsOfOneEmail(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	const n = 8
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		ok, taken     int
		unexpectedErr []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := newUser("race@example.com")
			_, err := repo.CreateUser(ctx, u, "h", event(t, events.UserCreated, u))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, user.ErrEmailTaken):
				taken++
			default:
				unexpectedErr = append(unexpectedErr, err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || taken != n-1 || len(unexpectedErr) > 0 {
		t.Errorf("%d created, %d taken, errors %v; want 1 and %d", ok, taken, unexpectedErr, n-1)
	}
	if c := count(t, db, `SELECT count(*) FROM outbox`); c != 1 {
		t.Errorf("outbox holds %d rows, want 1", c)
	}
}

func TestSchemaConstraints(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	u := newUser("ada@example.com")
	if _, err := repo.CreateUser(ctx, u, "h", event(t, events.UserCreated, u)); err != nil {
		t.Fatal(err)
	}
	insertAddress := `INSERT INTO user_addresses (user_id, type, street, city, state, zip_code, country, is_default)
		VALUES ($1, $2, 's', 'c', 'st', 'z', 'co', $3)`
	if _, err := db.Exec(insertAddress, u.ID, "shipping", true); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		query      string
		args       []any
		constraint string
	}{
		{"second default of a type", insertAddress, []any{u.ID, "shipping", true}, "user_addresses_one_default_idx"},
		{"unknown address type", insertAddress, []any{u.ID, "home", false}, "user_addresses_type_check"},
		{"unknown role", `UPDATE users SET role = 'root' WHERE id = $1`, []any{u.ID}, "users_role_check"},
		{"email not normalised", `UPDATE users SET email = 'Ada@example.com' WHERE id = $1`, []any{u.ID}, "users_email_normalised"},
		{"short token hash", `INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) VALUES (gen_random_uuid(), $1, gen_random_uuid(), '\x00', now())`, []any{u.ID}, "refresh_tokens_token_hash_len"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Exec(tc.query, tc.args...)
			if !sharedpg.IsUniqueViolation(err, tc.constraint) && !sharedpg.IsCheckViolation(err, tc.constraint) {
				t.Errorf("err = %v, want a violation of %s", err, tc.constraint)
			}
		})
	}
	// A second non-default address of the same type is fine.
	if _, err := db.Exec(insertAddress, u.ID, "shipping", false); err != nil {
		t.Errorf("non-default address: %v", err)
	}
}

func TestAddresses(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	ada, bob := newUser("ada@example.com"), newUser("bob@example.com")
	for _, u := range []user.User{ada, bob} {
		if _, err := repo.CreateUser(ctx, u, "h", event(t, events.UserCreated, u)); err != nil {
			t.Fatal(err)
		}
	}
	addr := func(owner user.User, typ string, def bool) user.Address {
		return user.Address{ID: uuid.NewString(), UserID: owner.ID, Type: typ, Street: "1 Main St", City: "London",
			State: "LDN", ZipCode: "N1", Country: "UK", IsDefault: def}
	}
	defaultOf := func(owner user.User, typ string) []string {
		var ids []string
		if err := db.Select(&ids, `SELECT id FROM user_addresses WHERE user_id = $1 AND type = $2 AND is_default`, owner.ID, typ); err != nil {
			t.Fatal(err)
		}
		return ids
	}

	first, err := repo.CreateAddress(ctx, addr(ada, user.AddressShipping, true))
	if err != nil {
		t.Fatal(err)
	}
	if first.CreatedAt.IsZero() || first.UserID != ada.ID || !first.IsDefault {
		t.Errorf("created = %+v", first)
	}
	second, err := repo.CreateAddress(ctx, addr(ada, user.AddressShipping, true))
	if err != nil {
		t.Fatalf("second default: %v", err)
	}
	if got := defaultOf(ada, user.AddressShipping); len(got) != 1 || got[0] != second.ID {
		t.Errorf("default shipping = %v, want [%s]", got, second.ID)
	}
	billing, err := repo.CreateAddress(ctx, addr(ada, user.AddressBilling, true))
	if err != nil {
		t.Fatal(err)
	}

	updated, err := repo.UpdateAddress(ctx, ada.ID, first.ID, func(a user.Address) user.Address {
		a.IsDefault, a.City = true, "Paris"
		return a
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.City != "Paris" || !updated.UpdatedAt.After(updated.CreatedAt) {
		t.Errorf("updated = %+v", updated)
	}
	if got := defaultOf(ada, user.AddressShipping); len(got) != 1 || got[0] != first.ID {
		t.Errorf("default shipping = %v, want [%s]", got, first.ID)
	}
	if got := defaultOf(ada, user.AddressBilling); len(got) != 1 || got[0] != billing.ID {
		t.Errorf("default billing = %v, want [%s]", got, billing.ID)
	}

	// Concurrent "make me the default" writes queue on the user's row lock
	// instead of failing on the unique index.
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := repo.CreateAddress(ctx, addr(ada, user.AddressShipping, true))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent default address: %v", err)
		}
	}
	if got := defaultOf(ada, user.AddressShipping); len(got) != 1 {
		t.Errorf("%d default shipping addresses", len(got))
	}

	list, err := repo.ListAddresses(ctx, ada.ID)
	if err != nil || len(list) != 9 {
		t.Fatalf("ListAddresses = %d, %v; want 9", len(list), err)
	}

	// Another user's address does not exist for Ada.
	bobs, err := repo.CreateAddress(ctx, addr(bob, user.AddressShipping, false))
	if err != nil {
		t.Fatal(err)
	}
	steal := func(a user.Address) user.Address {
		a.UserID, a.Street = ada.ID, "stolen"
		return a
	}
	if _, err := repo.UpdateAddress(ctx, ada.ID, bobs.ID, steal); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("UpdateAddress of Bob's address as Ada: %v", err)
	}
	if err := repo.DeleteAddress(ctx, ada.ID, bobs.ID); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("DeleteAddress of Bob's address as Ada: %v", err)
	}
	// Nor can a change move an address to another user.
	if got, err := repo.UpdateAddress(ctx, bob.ID, bobs.ID, steal); err != nil || got.UserID != bob.ID {
		t.Errorf("UpdateAddress moving Bob's address to Ada = %+v, %v", got, err)
	}

	if err := repo.DeleteAddress(ctx, ada.ID, second.ID); err != nil {
		t.Fatal(err)
	}
	if err := repo.DeleteAddress(ctx, ada.ID, second.ID); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
	if _, err := repo.CreateAddress(ctx, addr(newUser("ghost@example.com"), user.AddressBilling, false)); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("address of a missing user: %v", err)
	}
}

// newTokenFamily stores a user and returns it with the id of a new family
// of its refresh tokens and a maker of tokens of that family, whose hashes
// differ by b.
func newTokenFamily(t *testing.T, repo *postgres.Repository) (user.User, string, func(b byte) user.RefreshToken) {
	t.Helper()
	u := newUser("ada@example.com")
	if _, err := repo.CreateUser(context.Background(), u, "h", event(t, events.UserCreated, u)); err != nil {
		t.Fatal(err)
	}
	family := uuid.NewString()
	return u, family, func(b byte) user.RefreshToken {
		hash := make([]byte, 32)
		hash[0] = b
		return user.RefreshToken{ID: uuid.NewString(), UserID: u.ID, FamilyID: family, Hash: hash,
			ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)}
	}
}

func TestRefreshTokens(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	u, family, tok := newTokenFamily(t, repo)

	first := tok(1)
	if err := repo.CreateRefreshToken(ctx, first, "h"); err != nil {
		t.Fatal(err)
	}
	got, err := repo.RefreshTokenByHash(ctx, first.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != first.ID || got.FamilyID != family || got.RevokedAt != nil || !got.ExpiresAt.Equal(first.ExpiresAt) {
		t.Errorf("stored token = %+v, want %+v", got, first)
	}
	if _, err := repo.RefreshTokenByHash(ctx, tok(9).Hash); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}

	second := tok(2)
	if err := repo.RotateRefreshToken(ctx, first.ID, second); err != nil {
		t.Fatal(err)
	}
	got, _ = repo.RefreshTokenByHash(ctx, first.Hash)
	if got.RevokedAt == nil || got.ReplacedBy != second.ID {
		t.Errorf("rotated token = %+v", got)
	}
	// Rotating it again (a concurrent refresh that lost) is reuse, and
	// stores nothing.
	third := tok(3)
	if err := repo.RotateRefreshToken(ctx, first.ID, third); !errors.Is(err, user.ErrRefreshTokenReused) {
		t.Errorf("second rotation: %v", err)
	}
	if _, err := repo.RefreshTokenByHash(ctx, third.Hash); !errors.Is(err, user.ErrNotFound) {
		t.Error("the losing rotation stored its token")
	}

	other := tok(4)
	other.FamilyID = uuid.NewString()
	if err := repo.CreateRefreshToken(ctx, other, "h"); err != nil {
		t.Fatal(err)
	}
	if err := repo.RevokeRefreshTokenFamily(ctx, family); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL`, family); n != 0 {
		t.Errorf("%d tokens of the family still active", n)
	}
	if got, _ := repo.RefreshTokenByHash(ctx, other.Hash); got.RevokedAt != nil {
		t.Error("another family was revoked")
	}
	// The same hash twice is refused by the unique index.
	if err := repo.CreateRefreshToken(ctx, user.RefreshToken{ID: uuid.NewString(), UserID: u.ID, FamilyID: family, Hash: other.Hash, ExpiresAt: time.Now()}, "h"); !sharedpg.IsUniqueViolation(err, "refresh_tokens_token_hash_key") {
		t.Errorf("duplicate hash: %v", err)
	}
}

// TestTokenJanitorDeletesOnlyLongExpiredTokens: a token is kept for
// ExpiredTokenRetention after its expiry (a rotated one coming back still
// revokes its session), then deleted.
func TestTokenJanitorDeletesOnlyLongExpiredTokens(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	_, _, tok := newTokenFamily(t, repo)
	expiries := map[string]time.Time{
		"live":             time.Now().Add(time.Hour),
		"recently expired": time.Now().Add(-postgres.ExpiredTokenRetention + time.Hour),
		"long expired":     time.Now().Add(-postgres.ExpiredTokenRetention - time.Hour),
	}
	ids := map[string]string{}
	for i, name := range []string{"live", "recently expired", "long expired"} {
		rt := tok(byte(i + 1))
		rt.ExpiresAt = expiries[name]
		if err := repo.CreateRefreshToken(ctx, rt, "h"); err != nil {
			t.Fatal(err)
		}
		ids[name] = rt.ID
	}
	if n, err := repo.TokenJanitor(log.NewNopLogger()).Clean(ctx); err != nil || n != 1 {
		t.Fatalf("Clean = %d, %v; want the one long-expired token", n, err)
	}
	for name, id := range ids {
		if left := count(t, db, `SELECT count(*) FROM refresh_tokens WHERE id = $1`, id); (left == 1) != (name != "long expired") {
			t.Errorf("the %s token: %d rows left", name, left)
		}
	}
}

// A revocation that runs while a rotation of the same family is in flight
// must also revoke the successor that rotation is storing: otherwise the
// session a reuse (or a logout, or a promotion) ended lives on in it.
func TestRevocationWaitsForARotationInFlight(t *testing.T) {
	revocations := map[string]func(context.Context, *postgres.Repository, user.User, string) error{
		"family revoked": func(ctx context.Context, repo *postgres.Repository, _ user.User, family string) error {
			return repo.RevokeRefreshTokenFamily(ctx, family)
		},
		"user promoted": func(ctx context.Context, repo *postgres.Repository, u user.User, _ string) error {
			return repo.MakeAdmin(ctx, u.ID, "new-hash", event(t, events.UserUpdated, u))
		},
	}
	for name, revoke := range revocations {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			repo, db := newRepo(t)
			u, family, tok := newTokenFamily(t, repo)
			current := tok(1)
			if err := repo.CreateRefreshToken(ctx, current, "h"); err != nil {
				t.Fatal(err)
			}
			// Storing the successor takes a second, so the revocation
			// surely starts while the rotation's transaction is open.
			slowDown(t, db, "INSERT", "refresh_tokens")
			rotated := make(chan error, 1)
			go func() { rotated <- repo.RotateRefreshToken(ctx, current.ID, tok(2)) }()
			waitForSlowWrite(t, db)
			if err := revoke(ctx, repo, u, family); err != nil {
				t.Fatal(err)
			}
			if err := <-rotated; err != nil {
				t.Fatal(err)
			}
			if n := count(t, db, `SELECT count(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL`, family); n != 0 {
				t.Errorf("%d tokens of the family still active after the revocation", n)
			}
		})
	}
}

// slowDown makes every op (INSERT or UPDATE) of a row of table take a second,
// so a test can run a second write while the first one's transaction is open.
func slowDown(t *testing.T, db *sqlx.DB, op, table string) {
	t.Helper()
	db.MustExec(`
		CREATE OR REPLACE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$`)
	db.MustExec(`CREATE TRIGGER slow_write BEFORE ` + op + ` ON ` + table + `
		FOR EACH ROW EXECUTE FUNCTION slow_write()`)
}

// waitForSlowWrite returns once a write slowed down by slowDown is under way.
func waitForSlowWrite(t *testing.T, db *sqlx.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for count(t, db, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event = 'PgSleep'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first write never reached its slowed-down statement")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two PATCHes of different fields of one resource, the second sent while the
// first one's write is under way, both keep their field: the second must not
// write back what it read before the first committed.
func TestConcurrentPatchesKeepEachOthersFields(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	tokens, err := auth.NewTokens([]byte("a secret of at least thirty-two bytes"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := user.NewService(repo, tokens, user.Options{BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	ada, err := svc.Register(ctx, user.Registration{Email: "ada@example.com", Password: "correct horse battery",
		FirstName: "Ada", LastName: "Lovelace"})
	if err != nil {
		t.Fatal(err)
	}
	home, err := svc.AddAddress(ctx, ada.ID, user.Address{Type: user.AddressShipping, Street: "1 Main St",
		City: "London", ZipCode: "N1", Country: "UK"})
	if err != nil {
		t.Fatal(err)
	}
	// concurrently runs first, and second while first is writing.
	concurrently := func(table string, first, second func() error) {
		t.Helper()
		slowDown(t, db, "UPDATE", table)
		defer db.MustExec(`DROP TRIGGER slow_write ON ` + table)
		done := make(chan error, 1)
		go func() { done <- first() }()
		waitForSlowWrite(t, db)
		if err := second(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	name, phone := "Augusta", "+44 20 7946 0000"
	concurrently("users", func() error {
		_, err := svc.UpdateProfile(ctx, ada.ID, user.ProfileUpdate{FirstName: &name})
		return err
	}, func() error {
		_, err := svc.UpdateProfile(ctx, ada.ID, user.ProfileUpdate{Phone: &phone})
		return err
	})
	if got, err := svc.GetProfile(ctx, ada.ID); err != nil || got.FirstName != name || got.Phone != phone {
		t.Errorf("profile = %+v, %v; want first name %q and phone %q", got, err, name, phone)
	}

	city, street := "Paris", "2 Rue de Rivoli"
	concurrently("user_addresses", func() error {
		_, err := svc.UpdateAddress(ctx, ada.ID, home.ID, user.AddressUpdate{City: &city})
		return err
	}, func() error {
		_, err := svc.UpdateAddress(ctx, ada.ID, home.ID, user.AddressUpdate{Street: &street})
		return err
	})
	if got, err := svc.ListAddresses(ctx, ada.ID); err != nil || len(got) != 1 || got[0].City != city || got[0].Street != street {
		t.Errorf("addresses = %+v, %v; want city %q and street %q", got, err, city, street)
	}
}

// raceRepo runs before once, just before the first refresh token a login
// stores: by then the login has checked the password it was given.
type raceRepo struct {
	*postgres.Repository
	before func()
}

func (r *raceRepo) CreateRefreshToken(ctx context.Context, t user.RefreshToken, passwordHash string) error {
	if f := r.before; f != nil {
		r.before = nil
		f()
	}
	return r.Repository.CreateRefreshToken(ctx, t, passwordHash)
}

// Someone registered the admin's address first, with a password of their
// own, and logs in as the admin bootstrap takes the account over: a login
// that checked their password before the promotion must not start a session
// after it, or its refresh token would get them admin access tokens.
func TestLoginRacingAPromotionStartsNoSession(t *testing.T) {
	ctx := context.Background()
	pg, db := newRepo(t)
	repo := &raceRepo{Repository: pg}
	tokens, err := auth.NewTokens([]byte("a secret of at least thirty-two bytes"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	opts := user.Options{BcryptCost: bcrypt.MinCost}
	svc, err := user.NewService(repo, tokens, opts)
	if err != nil {
		t.Fatal(err)
	}
	squatter, err := svc.Register(ctx, user.Registration{Email: "root@example.com", Password: "squatter-password",
		FirstName: "Eve", LastName: "Squatter"})
	if err != nil {
		t.Fatal(err)
	}
	repo.before = func() {
		if err := user.EnsureAdmin(ctx, pg, opts, "root@example.com", "the-real-password"); err != nil {
			t.Fatal(err)
		}
	}
	pair, err := svc.Login(ctx, "root@example.com", "squatter-password")
	if err == nil {
		if next, err := svc.Refresh(ctx, pair.RefreshToken); err == nil {
			id, _ := tokens.Verify(next.AccessToken)
			t.Errorf("the squatter's login survived the promotion: its refresh token gives access tokens with role %q", id.Role)
		}
	} else if !errors.Is(err, user.ErrInvalidCredentials) {
		t.Errorf("login racing the promotion: err = %v, want ErrInvalidCredentials", err)
	}
	if n := count(t, db, `SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL`, squatter.ID); n != 0 {
		t.Errorf("%d active refresh tokens after the promotion", n)
	}
}

// TestMigrateAfterAnInterruptedIndexBuild: a concurrent index build that the
// start-up deadline cut short is built again at the next start. It left an
// INVALID index, which CREATE INDEX CONCURRENTLY IF NOT EXISTS took for the
// index, and the migration was recorded as applied without one.
func TestMigrateAfterAnInterruptedIndexBuild(t *testing.T) {
	testkit.MigrateInterrupted(t, testkit.Postgres(t), postgres.Schema.Migrate)
}
