package httpkit

import (
	"context"
	"net/http"

	"github.com/go-kit/kit/endpoint"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/validate"
)

// Routes adds a service's go-kit HTTP servers to a router, every one built
// the same way: answers encoded by EncodeResponse, errors by ErrorEncoder
// over the service's one error table, and the before functions (the bearer
// token into the context, at least) run on every request.
type Routes struct {
	router  *mux.Router
	prefix  string
	encode  httptransport.EncodeResponseFunc
	options []httptransport.ServerOption
}

// NewRoutes returns Routes adding to r under prefix ("" for none), mapping
// errors with mappings.
func NewRoutes(r *mux.Router, prefix string, logger log.Logger, mappings []ErrorMapping, before ...httptransport.RequestFunc) Routes {
	encodeError := ErrorEncoder(logger, mappings...)
	return Routes{
		router: r,
		prefix: prefix,
		encode: EncodeResponse(encodeError),
		options: []httptransport.ServerOption{
			httptransport.ServerBefore(before...),
			httptransport.ServerErrorEncoder(encodeError),
		},
	}
}

// Handle serves method and prefix+path with e, its requests decoded by dec
// once CheckRequest passes: the rules on strings are the same on every route.
func (rt Routes) Handle(method, path string, e endpoint.Endpoint, dec httptransport.DecodeRequestFunc) {
	rt.router.Methods(method).Path(rt.prefix + path).Handler(httptransport.NewServer(e, Checked(dec), rt.encode, rt.options...))
}

// Checked is dec run only on a request CheckRequest passes.
func Checked(dec httptransport.DecodeRequestFunc) httptransport.DecodeRequestFunc {
	return func(ctx context.Context, r *http.Request) (any, error) {
		if err := CheckRequest(r); err != nil {
			return nil, err
		}
		return dec(ctx, r)
	}
}

// CheckRequest refuses what no route takes from a client, before any
// decoder sees it: a query that does not parse, or holds NUL or bytes that
// are not UTF-8 (Query), and a path variable ({id}, {slug}, {provider})
// holding either, which names nothing (404, as an unknown id is). PostgreSQL
// would refuse such a string with an error that would otherwise be a 500.
func CheckRequest(r *http.Request) error {
	if _, err := Query(r); err != nil {
		return err
	}
	for _, v := range mux.Vars(r) {
		if validate.StringProblem(v) != "" {
			return NewError(http.StatusNotFound, "not_found", "no such resource")
		}
	}
	return nil
}

// APIPrefix is where every public route of every service lives (API.md's
// versioned base path); servers mount their routes under it and clients
// build their paths on it.
const APIPrefix = "/api/v1"
