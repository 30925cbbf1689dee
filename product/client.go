package product

import (
	"net/http"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/endpointkit"
)

// NewClient returns the product service's inventory as seen from another
// process (the order service reserves stock with it): every method is
// load-balanced over the instances instancer reports (one shared Consul
// instancer, from discovery.NewInstancer), with per-instance circuit
// breakers and safe retries (discovery.NewEndpoint). Business errors come
// back as the domain errors (ErrNotFound, ErrReservationReleased, …;
// out_of_stock and unknown_product as a *LineError with the line's details,
// matching errors.Is(err, ErrOutOfStock)) or *httpkit.Error, 5xx answers as
// *discovery.UpstreamError, no instance at all as discovery.ErrNoInstances.
//
// The caller's bearer token travels with every call: the service's own
// (auth.NewTokenContext with tokens.ServiceToken) or an admin's. The
// reservation routes want one of those.
func NewClient(instancer sd.Instancer, logger log.Logger, opts discovery.Options) Inventory {
	// The read may go to another instance after a timeout or a broken
	// connection; so may a commit or a release, which the service answers
	// like the first when repeated for an order. A reserve is retried only
	// where nothing was sent.
	c := discovery.NewClient(instancer, ServiceName, logger, opts, discovery.NewHTTPClient())
	reservation := decodeResponse(endpointkit.Fail[reservationResponse])
	return Endpoints{
		ReserveEndpoint: c.Endpoint(http.MethodPost, encodeJSON(fixed(internalPrefix+"/reservations"), nil),
			decodeResponse(endpointkit.Fail[reservationResponse],
				func(r *reservationResponse, resp *http.Response) { r.Created = resp.StatusCode == http.StatusCreated }), nil),
		CommitReservationEndpoint:  c.Endpoint(http.MethodPost, encodePath(reservationPath("/commit")), reservation, discovery.Always),
		ReleaseReservationEndpoint: c.Endpoint(http.MethodPost, encodePath(reservationPath("/release")), reservation, discovery.Always),
		GetReservationEndpoint:     c.Endpoint(http.MethodGet, encodePath(reservationPath("")), reservation, nil),
	}
}
