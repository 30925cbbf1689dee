package user

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/validate"
)

// The address book of a user: the Service's address methods.

func (s *service) ListAddresses(ctx context.Context, userID string) ([]Address, error) {
	userID, ok := validate.ParseUUID(userID)
	if !ok {
		return nil, ErrNotFound
	}
	return s.repo.ListAddresses(ctx, userID)
}

// AddAddress stores a for userID; a's ID, UserID and timestamps are ignored.
func (s *service) AddAddress(ctx context.Context, userID string, a Address) (Address, error) {
	userID, ok := validate.ParseUUID(userID)
	if !ok {
		return Address{}, ErrNotFound
	}
	a = trimAddress(a)
	a.ID, a.UserID = uuid.NewString(), userID
	return s.repo.CreateAddress(ctx, a)
}

func (s *service) UpdateAddress(ctx context.Context, userID, addressID string, p AddressUpdate) (Address, error) {
	userID, ok1 := validate.ParseUUID(userID)
	addressID, ok2 := validate.ParseUUID(addressID)
	if !ok1 || !ok2 {
		return Address{}, ErrNotFound
	}
	return s.repo.UpdateAddress(ctx, userID, addressID, func(a Address) Address {
		patch(&a.Type, p.Type)
		patch(&a.Street, p.Street)
		patch(&a.City, p.City)
		patch(&a.State, p.State)
		patch(&a.ZipCode, p.ZipCode)
		patch(&a.Country, p.Country)
		if p.IsDefault != nil {
			a.IsDefault = *p.IsDefault
		}
		return a
	})
}

func (s *service) DeleteAddress(ctx context.Context, userID, addressID string) error {
	userID, ok1 := validate.ParseUUID(userID)
	addressID, ok2 := validate.ParseUUID(addressID)
	if !ok1 || !ok2 {
		return ErrNotFound
	}
	return s.repo.DeleteAddress(ctx, userID, addressID)
}

func trimAddress(a Address) Address {
	for _, f := range []*string{&a.Type, &a.Street, &a.City, &a.State, &a.ZipCode, &a.Country} {
		*f = strings.TrimSpace(*f)
	}
	return a
}
