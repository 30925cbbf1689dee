package user

import (
	"net/mail"
	"strings"

	"github.com/mercato-dev/mercato/shared/validate"
)

// The user service's own checks, on top of validate.Problems. They are
// domain rules, not HTTP ones: the requests of endpoints.go apply them, and
// so does the admin bootstrap, whose credentials come from configuration.

// maxPasswordBytes is bcrypt's limit: it ignores (newer versions reject)
// anything longer.
const maxPasswordBytes = 72

// validate checks a registration against the rules every account meets; a
// failure is a *validate.Error naming every bad field.
func (r Registration) validate() error {
	p := validate.Problems{}
	checkEmail(p, "email", r.Email)
	checkPassword(p, "password", r.Password)
	p.Text("first_name", r.FirstName, 100, true)
	p.Text("last_name", r.LastName, 100, true)
	p.Text("phone", r.Phone, 20, false)
	return p.Err()
}

func checkEmail(p validate.Problems, field, v string) {
	v = strings.TrimSpace(v)
	if v == "" {
		p[field] = "is required"
		return
	}
	// net/mail takes every non-ASCII character for text (RFC 6532), so
	// "ada\u200b@example.com" would be an account of its own that reads as
	// ada@example.com's, in a list of users and in the mail it is sent.
	if strings.ContainsFunc(v, validate.Invisible) {
		p[field] = "must not contain invisible, formatting or control characters"
		return
	}
	// ParseAddress accepts "Name <a@b>" too; only a bare address is an email.
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v || len(v) > 255 {
		p[field] = "must be a valid email address"
	}
}

func checkPassword(p validate.Problems, field, v string) {
	if len(v) < 8 || len(v) > maxPasswordBytes {
		p[field] = "must be 8 to 72 bytes long"
	}
}

func checkAddressType(p validate.Problems, field, v string) {
	if v != AddressBilling && v != AddressShipping {
		p[field] = "must be billing or shipping"
	}
}
