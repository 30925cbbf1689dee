package notification

import (
	"net/http"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/discovery"
)

// NewClient returns the notification service as seen from another process: every
// method is load-balanced over the instances instancer reports (one shared
// Consul instancer, from discovery.NewInstancer), with per-instance circuit
// breakers and safe retries (discovery.NewEndpoint). Business errors come
// back as the domain errors (ErrNotFound, …) or *httpkit.Error, 5xx answers
// as *discovery.UpstreamError, no instance at all as discovery.ErrNoInstances.
//
// The caller's bearer token (auth.HTTPToContext put it in ctx) and request id
// travel with every call.
func NewClient(instancer sd.Instancer, logger log.Logger, opts discovery.Options) Service {
	c := client{instancer: instancer, logger: logger, opts: opts, http: discovery.NewHTTPClient()}
	return Endpoints{
		ListNotificationsEndpoint: c.endpoint(http.MethodGet, encodeListNotificationsRequest,
			decodeResponse(func(err error) listNotificationsResponse { return listNotificationsResponse{Err: err} })),
		GetPreferencesEndpoint: c.endpoint(http.MethodGet, encodePath("/notifications/preferences"),
			decodeResponse(func(err error) preferencesResponse { return preferencesResponse{Err: err} })),
		UpdatePreferencesEndpoint: c.endpoint(http.MethodPut, encodeJSONRequest("/notifications/preferences"),
			decodeResponse(func(err error) preferencesResponse { return preferencesResponse{Err: err} })),
		SetPushTokenEndpoint: c.endpoint(http.MethodPut, encodeJSONRequest("/notifications/push-token"),
			decodeResponse(func(err error) noContentResponse { return noContentResponse{Err: err} })),
		DeletePushTokenEndpoint: c.endpoint(http.MethodDelete, encodePath("/notifications/push-token"),
			decodeResponse(func(err error) noContentResponse { return noContentResponse{Err: err} })),
	}
}

type client struct {
	instancer sd.Instancer
	logger    log.Logger
	opts      discovery.Options
	http      *http.Client
}

// endpoint builds the load-balanced endpoint of one method. Reads may go to
// another instance after a timeout or a broken connection; writes are only
// retried where nothing was sent.
func (c client) endpoint(method string, enc httptransport.EncodeRequestFunc, dec httptransport.DecodeResponseFunc) endpoint.Endpoint {
	var idempotent func(any) bool
	if method == http.MethodGet {
		idempotent = discovery.Always
	}
	return discovery.NewEndpoint(c.instancer, ServiceName, discovery.HTTPFactory(c.http, method, enc, dec, idempotent), c.logger, c.opts)
}
