package httpkit

import (
	"github.com/go-kit/kit/endpoint"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"
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

// Handle serves method and prefix+path with e, its requests decoded by dec.
func (rt Routes) Handle(method, path string, e endpoint.Endpoint, dec httptransport.DecodeRequestFunc) {
	rt.router.Methods(method).Path(rt.prefix + path).Handler(httptransport.NewServer(e, dec, rt.encode, rt.options...))
}

// APIPrefix is where every public route of every service lives (API.md's
// versioned base path); servers mount their routes under it and clients
// build their paths on it.
const APIPrefix = "/api/v1"
