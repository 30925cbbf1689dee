package user_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/testkit"
	"github.com/mercato-dev/mercato/user"
	"github.com/mercato-dev/mercato/user/postgres"
)

// withToken is the context of a request that arrived with this bearer token,
// as auth.HTTPToContext leaves it; the client forwards the token.
func withToken(token string) context.Context {
	r := &http.Request{Header: http.Header{"Authorization": {"Bearer " + token}}}
	return auth.HTTPToContext(context.Background(), r)
}

func TestClient(t *testing.T) {
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	// Two instances of the service on one database.
	a, b := newStackOn(t, db), newStackOn(t, db)
	adaID := a.register(t, "ada@example.com")
	adaToken, _ := a.login(t, "ada@example.com", "password123")
	adminToken := a.admin(t)
	a.hits.Store(0)

	// Sorted: every endpointer sorts the instance list it is sent in place,
	// and a FixedInstancer sends all of them the same slice, so an unsorted
	// one is a data race (Consul's instancer sends sorted lists).
	instances := []string{a.srv.Listener.Addr().String(), b.srv.Listener.Addr().String()}
	slices.Sort(instances)
	client := user.NewClient(sd.FixedInstancer(instances), log.NewNopLogger(), discovery.Options{Timeout: 5 * time.Second})
	asAdmin, asAda := withToken(adminToken), withToken(adaToken)

	for range 4 {
		u, err := client.GetUser(asAdmin, adaID)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		if u.ID != adaID || u.Email != "ada@example.com" || u.Role != auth.RoleCustomer || u.CreatedAt.IsZero() {
			t.Errorf("GetUser = %+v", u)
		}
	}
	if a.hits.Load() == 0 || b.hits.Load() == 0 {
		t.Errorf("calls not balanced: %d and %d", a.hits.Load(), b.hits.Load())
	}

	tests := []struct {
		name       string
		ctx        context.Context
		id         string
		wantErr    error
		wantStatus int // of an *httpkit.Error, when wantErr is nil
	}{
		{"unknown id", asAdmin, uuid.NewString(), user.ErrNotFound, 0},
		{"invalid id", asAdmin, "not-a-uuid", user.ErrNotFound, 0},
		{"another user's record", asAda, uuid.NewString(), nil, http.StatusForbidden},
		{"no token", context.Background(), adaID, nil, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.GetUser(tc.ctx, tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			var coded httpkit.Coded
			if !errors.As(err, &coded) || coded.StatusCode() != tc.wantStatus {
				t.Errorf("err = %v, want a %d error", err, tc.wantStatus)
			}
		})
	}

	// The other methods travel the same way.
	if _, err := client.Register(context.Background(), user.Registration{Email: "ADA@example.com", Password: "password123", FirstName: "A", LastName: "L"}); !errors.Is(err, user.ErrEmailTaken) {
		t.Errorf("Register duplicate: %v", err)
	}
	if _, err := client.Login(context.Background(), "ada@example.com", "wrong-password"); !errors.Is(err, user.ErrInvalidCredentials) {
		t.Errorf("Login with a wrong password: %v", err)
	}
	pair, err := client.Login(context.Background(), "ada@example.com", "password123")
	if err != nil || pair.TokenType != "Bearer" || pair.RefreshToken == "" {
		t.Fatalf("Login = %+v, %v", pair, err)
	}
	if _, err := client.Refresh(context.Background(), pair.RefreshToken); err != nil {
		t.Errorf("Refresh: %v", err)
	}
	if _, err := client.Refresh(context.Background(), pair.RefreshToken); !errors.Is(err, user.ErrRefreshTokenReused) {
		t.Errorf("Refresh reuse: %v", err)
	}
	if me, err := client.GetProfile(asAda, ""); err != nil || me.ID != adaID {
		t.Errorf("GetProfile = %+v, %v", me, err)
	}
	added, err := client.AddAddress(asAda, "", user.Address{Type: user.AddressShipping, Street: "1 Main St", City: "London", State: "LDN", ZipCode: "N1", Country: "UK", IsDefault: true})
	if err != nil || added.ID == "" || added.UserID != adaID {
		t.Fatalf("AddAddress = %+v, %v", added, err)
	}
	city := "Paris"
	if got, err := client.UpdateAddress(asAda, "", added.ID, user.AddressUpdate{City: &city}); err != nil || got.City != "Paris" {
		t.Errorf("UpdateAddress = %+v, %v", got, err)
	}
	if list, err := client.ListAddresses(asAda, ""); err != nil || len(list) != 1 {
		t.Errorf("ListAddresses = %+v, %v", list, err)
	}
	if err := client.DeleteAddress(asAda, "", added.ID); err != nil {
		t.Errorf("DeleteAddress: %v", err)
	}
	if err := client.DeleteAddress(asAda, "", added.ID); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("DeleteAddress twice: %v", err)
	}
	if page, err := client.ListUsers(asAdmin, 1, 10); err != nil || page.Total != 2 || len(page.Items) != 2 {
		t.Errorf("ListUsers = %+v, %v", page, err)
	}
	if _, err := client.ListUsers(asAda, 1, 10); err == nil {
		t.Error("ListUsers as a customer succeeded")
	}
}

func TestClientUpstreamFailures(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpkit.WriteError(w, httpkit.Internal())
	}))
	t.Cleanup(broken.Close)

	client := user.NewClient(sd.FixedInstancer{broken.Listener.Addr().String()}, log.NewNopLogger(), discovery.Options{Timeout: 2 * time.Second})
	_, err := client.GetUser(withToken("t"), uuid.NewString())
	var upstream *discovery.UpstreamError
	if !errors.As(err, &upstream) || upstream.StatusCode != http.StatusInternalServerError {
		t.Errorf("5xx: err = %v, want *discovery.UpstreamError with 500", err)
	}

	none := user.NewClient(sd.FixedInstancer{}, log.NewNopLogger(), discovery.Options{Timeout: 2 * time.Second})
	if _, err := none.GetUser(withToken("t"), uuid.NewString()); !errors.Is(err, discovery.ErrNoInstances) {
		t.Errorf("no instances: err = %v, want ErrNoInstances", err)
	}
}
