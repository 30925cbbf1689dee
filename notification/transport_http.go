package notification

import (
	"net/http"

	"github.com/go-kit/log"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// errorMappings is the one table from domain errors to HTTP: the error
// encoder answers with it, and the logging middleware tells business errors
// by it.
var errorMappings = []httpkit.ErrorMapping{
	{Err: ErrNotFound, Status: http.StatusNotFound, Code: "not_found"},
}

// isBusinessError reports whether err is an expected answer (a domain error
// or a client mistake, answered with a 4xx) rather than a failure worth an
// error-level log line. It lives here, beside the table it reads, so the
// logging middleware never needs to know HTTP.
func isBusinessError(err error) bool { return httpkit.IsClientError(err, errorMappings...) }

// MakeHTTPHandler adds the notification service's routes to r.
func MakeHTTPHandler(r *mux.Router, e Endpoints, logger log.Logger) {
	routes := httpkit.NewRoutes(r, httpkit.APIPrefix, logger, errorMappings, auth.HTTPToContext)

	routes.Handle(http.MethodGet, "/notifications", e.ListNotificationsEndpoint, httpkit.DecodePageRequest)
	routes.Handle(http.MethodGet, "/notifications/preferences", e.GetPreferencesEndpoint, httpkit.DecodeEmptyRequest[getPreferencesRequest])
	routes.Handle(http.MethodPut, "/notifications/preferences", e.UpdatePreferencesEndpoint, httpkit.DecodeJSONRequest[updatePreferencesRequest])
	routes.Handle(http.MethodPut, "/notifications/push-token", e.SetPushTokenEndpoint, httpkit.DecodeJSONRequest[setPushTokenRequest])
	routes.Handle(http.MethodDelete, "/notifications/push-token", e.DeletePushTokenEndpoint, httpkit.DecodeEmptyRequest[deletePushTokenRequest])
}
