package user

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
)

// EnsureAdmin makes sure an active admin with this email and password exists
// in repo, hashing with the cost opts give. It is idempotent and safe to run
// from several instances at once. It is a start-up task of the service's
// main, not something the service serves, so it is no Service method.
func EnsureAdmin(ctx context.Context, repo Repository, opts Options, email, password string) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	s := &service{repo: repo, cost: opts.BcryptCost}
	r := Registration{Email: email, Password: password, FirstName: "Admin", LastName: "Mercato"}
	// The credentials come from configuration, not a request, but must meet
	// the rules a registration meets, or the admin could never log in.
	if err := r.validate(); err != nil {
		return fmt.Errorf("admin credentials: %w", err)
	}
	_, err = s.createUser(ctx, r, auth.RoleAdmin)
	if !errors.Is(err, ErrEmailTaken) {
		return err // created, or failed
	}
	// The account exists: another instance created it a moment ago, or an
	// earlier start did, or someone registered the address as a customer.
	// The configured password is the truth, so whoever registered the address
	// first cannot inherit admin rights with a password of their own.
	u, hash, err := repo.Credentials(ctx, NormalizeEmail(email))
	if err != nil {
		return err
	}
	if u.Role == auth.RoleAdmin && u.IsActive && bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil {
		return nil
	}
	newHash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	u.Role, u.IsActive = auth.RoleAdmin, true
	evt, err := newUserEvent(ctx, events.UserUpdated, u)
	if err != nil {
		return err
	}
	return repo.MakeAdmin(ctx, u.ID, string(newHash), evt)
}
