package notification

import (
	"context"
	"net/http"

	"github.com/go-kit/kit/endpoint"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// apiPrefix is where every public route lives (API.md).
const apiPrefix = "/api/v1"

// errorMappings is the one table from domain errors to HTTP: the error
// encoder answers with it, and the logging middleware tells business errors
// by it.
var errorMappings = []httpkit.ErrorMapping{
	{Err: ErrNotFound, Status: http.StatusNotFound, Code: "not_found"},
}

// MakeHTTPHandler adds the notification service's routes to r.
func MakeHTTPHandler(r *mux.Router, e Endpoints, logger log.Logger) {
	encodeError := httpkit.ErrorEncoder(logger, errorMappings...)
	encode := httpkit.EncodeResponse(encodeError)
	options := []httptransport.ServerOption{
		httptransport.ServerBefore(auth.HTTPToContext),
		httptransport.ServerErrorEncoder(encodeError),
	}
	handle := func(method, path string, ep endpoint.Endpoint, dec httptransport.DecodeRequestFunc) {
		r.Methods(method).Path(apiPrefix + path).Handler(httptransport.NewServer(ep, dec, encode, options...))
	}

	handle(http.MethodGet, "/notifications", e.ListNotificationsEndpoint, decodeListNotificationsRequest)
	handle(http.MethodGet, "/notifications/preferences", e.GetPreferencesEndpoint, httpkit.DecodeEmptyRequest[getPreferencesRequest])
	handle(http.MethodPut, "/notifications/preferences", e.UpdatePreferencesEndpoint, httpkit.DecodeJSONRequest[updatePreferencesRequest])
	handle(http.MethodPut, "/notifications/push-token", e.SetPushTokenEndpoint, httpkit.DecodeJSONRequest[setPushTokenRequest])
	handle(http.MethodDelete, "/notifications/push-token", e.DeletePushTokenEndpoint, httpkit.DecodeEmptyRequest[deletePushTokenRequest])
}

// Server decoders.

// decodeListNotificationsRequest reads ?page=&page_size=, defaulting to the
// first page of 20; the endpoint checks the bounds.
func decodeListNotificationsRequest(_ context.Context, r *http.Request) (any, error) {
	page, size, err := httpkit.DecodePage(r.URL.Query())
	if err != nil {
		return nil, err
	}
	return listNotificationsRequest{Page: page, PageSize: size}, nil
}
