package user

import (
	"strings"

	"github.com/mercato-dev/mercato/shared/validate"
)

// Requests. Each validates itself; a failure is a 422 naming every bad field.

type registerRequest struct {
	Email     string `json:"email"`
	Password  string `json:"password"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Phone     string `json:"phone,omitempty"`
}

// validate applies the rules of every account (validation.go).
func (r registerRequest) validate() error { return Registration(r).validate() }

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (r loginRequest) validate() error {
	p := validate.Problems{}
	if strings.TrimSpace(r.Email) == "" {
		p["email"] = "is required"
	}
	switch {
	case r.Password == "":
		p["password"] = "is required"
	case len(r.Password) > maxPasswordBytes:
		p["password"] = "must be at most 72 bytes"
	}
	return p.Err()
}

// refreshRequest is the body of both refresh and logout.
type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (r refreshRequest) validate() error {
	p := validate.Problems{}
	switch {
	case r.RefreshToken == "":
		p["refresh_token"] = "is required"
	case len(r.RefreshToken) > 512: // ours are 43 bytes; a huge one is not worth hashing
		p["refresh_token"] = "is too long"
	}
	return p.Err()
}

type getProfileRequest struct{}

type updateProfileRequest struct {
	FirstName *string `json:"first_name,omitempty"`
	LastName  *string `json:"last_name,omitempty"`
	Phone     *string `json:"phone,omitempty"` // "" clears it
}

func (r updateProfileRequest) validate() error {
	p := validate.Problems{}
	if r.FirstName == nil && r.LastName == nil && r.Phone == nil {
		p["body"] = "nothing to update: give first_name, last_name or phone"
	}
	if r.FirstName != nil {
		p.Text("first_name", *r.FirstName, 100, true)
	}
	if r.LastName != nil {
		p.Text("last_name", *r.LastName, 100, true)
	}
	if r.Phone != nil {
		p.Text("phone", *r.Phone, 20, false)
	}
	return p.Err()
}

type listAddressesRequest struct{}

type addAddressRequest struct {
	Type      string `json:"type"`
	Street    string `json:"street"`
	City      string `json:"city"`
	State     string `json:"state"`
	ZipCode   string `json:"zip_code"`
	Country   string `json:"country"`
	IsDefault bool   `json:"is_default"`
}

func (r addAddressRequest) validate() error {
	p := validate.Problems{}
	checkAddressType(p, "type", r.Type)
	p.Text("street", r.Street, 255, true)
	p.Text("city", r.City, 100, true)
	p.Text("state", r.State, 100, true)
	p.Text("zip_code", r.ZipCode, 20, true)
	p.Text("country", r.Country, 100, true)
	return p.Err()
}

type updateAddressRequest struct {
	ID string `json:"-"` // from the path
	addressPatch
}

// addressPatch is the JSON form of AddressUpdate; absent fields stay as
// they are.
type addressPatch struct {
	Type      *string `json:"type,omitempty"`
	Street    *string `json:"street,omitempty"`
	City      *string `json:"city,omitempty"`
	State     *string `json:"state,omitempty"`
	ZipCode   *string `json:"zip_code,omitempty"`
	Country   *string `json:"country,omitempty"`
	IsDefault *bool   `json:"is_default,omitempty"`
}

func (r updateAddressRequest) validate() error {
	p := validate.Problems{}
	u := r.addressPatch
	if u == (addressPatch{}) {
		p["body"] = "nothing to update"
	}
	if u.Type != nil {
		checkAddressType(p, "type", *u.Type)
	}
	for _, f := range []struct {
		name string
		v    *string
		max  int
	}{{"street", u.Street, 255}, {"city", u.City, 100}, {"state", u.State, 100}, {"zip_code", u.ZipCode, 20}, {"country", u.Country, 100}} {
		if f.v != nil {
			p.Text(f.name, *f.v, f.max, true)
		}
	}
	return p.Err()
}

type deleteAddressRequest struct {
	ID string
}

type getUserRequest struct {
	ID string
}
