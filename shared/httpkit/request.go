package httpkit

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/validate"
)

// The go-kit request decoders of the services, built on DecodeJSON, and
// what they take from the path.

// DecodeJSONRequest is a go-kit DecodeRequestFunc for a route whose
// request is its JSON body: a T decoded with DecodeJSON.
func DecodeJSONRequest[T any](_ context.Context, r *http.Request) (any, error) {
	var req T
	if err := DecodeJSON(r, &req); err != nil {
		return nil, err
	}
	return req, nil
}

// DecodeEmptyRequest is a go-kit DecodeRequestFunc for a route that takes
// nothing from the request: the zero T.
func DecodeEmptyRequest[T any](context.Context, *http.Request) (any, error) {
	var req T
	return req, nil
}

// DecodeIDRequest is a go-kit DecodeRequestFunc for a route whose request
// is the {id} of its path (PathUUID): a T holding it in canonical form.
func DecodeIDRequest[T ~struct{ ID string }](_ context.Context, r *http.Request) (any, error) {
	id, err := PathUUID(r, "id")
	if err != nil {
		return nil, err
	}
	return T{ID: id}, nil
}

// DecodeRequest is a go-kit DecodeRequestFunc for a route whose request
// is a T that fill sets from r: the zero T, filled, or fill's error.
func DecodeRequest[T any](fill func(r *http.Request, req *T) error) func(context.Context, *http.Request) (any, error) {
	return func(_ context.Context, r *http.Request) (any, error) {
		var req T
		if err := fill(r, &req); err != nil {
			return nil, err
		}
		return req, nil
	}
}

// PathAndBody sets *id from the route variable name (PathUUID), then
// decodes the body into body with decode (DecodeJSON, DecodeOptionalJSON):
// an unknown id is a 404 before the body is looked at.
func PathAndBody(r *http.Request, name string, id *string, body any, decode func(*http.Request, any) error) error {
	var err error
	if *id, err = PathUUID(r, name); err != nil {
		return err
	}
	return decode(r, body)
}

// PathUUID returns the route variable name (an {id} of the path) in
// canonical form (validate.ParseUUID). Something that is no UUID names
// nothing, so it is a 404 like any unknown id, never a query PostgreSQL
// would reject.
func PathUUID(r *http.Request, name string) (string, error) {
	id, ok := validate.ParseUUID(mux.Vars(r)[name])
	if !ok {
		return "", NewError(http.StatusNotFound, "not_found", "no such resource: the id is not a UUID")
	}
	return id, nil
}

// AddressBlock is what a per-client allowance counts addr under: an IPv4
// address as it is, an IPv6 address by its /64. A subscriber is given a
// whole /64 (often more), so counting IPv6 clients per address would let
// one of them take a fresh allowance with every request. An IPv4-mapped
// address counts as the IPv4 address, and a zone is dropped.
func AddressBlock(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}
