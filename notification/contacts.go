package notification

import (
	"context"
	"errors"
	"fmt"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/user"
)

// Contact is where a user can be reached, as the user service knows it now.
type Contact struct {
	Email     string
	FirstName string
	LastName  string
	Phone     string // "" when the user gave none
}

// Contacts looks up a user's contact data. ErrUnknownUser means the user
// does not exist (any more); other errors are worth retrying.
type Contacts interface {
	Contact(ctx context.Context, userID string) (Contact, error)
}

// ErrUnknownUser is a lookup of a user the user service does not know.
var ErrUnknownUser = errors.New("unknown user")

// UserServiceContacts returns Contacts backed by the user service (a client
// from user.NewClient, over Consul). Each lookup is made on the notification
// service's own behalf, with a service token, since no user's request is
// being served.
func UserServiceContacts(users user.Service, tokens *auth.Tokens) Contacts {
	return userServiceContacts{users: users, tokens: tokens}
}

type userServiceContacts struct {
	users  user.Service
	tokens *auth.Tokens
}

func (c userServiceContacts) Contact(ctx context.Context, userID string) (Contact, error) {
	// Issued per lookup: it costs one HMAC, and can never be used expired.
	token, err := c.tokens.ServiceToken(ServiceName)
	if err != nil {
		return Contact{}, fmt.Errorf("service token: %w", err)
	}
	u, err := c.users.GetUser(auth.NewTokenContext(ctx, token), userID)
	switch {
	case errors.Is(err, user.ErrNotFound):
		return Contact{}, ErrUnknownUser
	case err != nil:
		return Contact{}, fmt.Errorf("user service: %w", err)
	}
	return Contact{Email: u.Email, FirstName: u.FirstName, LastName: u.LastName, Phone: u.Phone}, nil
}
