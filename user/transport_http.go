package user

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/endpointkit"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// errorMappings is the one table from domain errors to HTTP. The client uses
// it backwards, to turn an error body into the domain error again.
var errorMappings = []httpkit.ErrorMapping{
	{Err: ErrNotFound, Status: http.StatusNotFound, Code: "not_found"},
	{Err: ErrEmailTaken, Status: http.StatusConflict, Code: "email_taken"},
	{Err: ErrInvalidCredentials, Status: http.StatusUnauthorized, Code: "invalid_credentials"},
	{Err: ErrInvalidRefreshToken, Status: http.StatusUnauthorized, Code: "invalid_refresh_token"},
	{Err: ErrRefreshTokenReused, Status: http.StatusUnauthorized, Code: "refresh_token_reused"},
	{Err: ErrUserInactive, Status: http.StatusForbidden, Code: "user_inactive"},
	{Err: ErrLoginThrottled, Status: http.StatusTooManyRequests, Code: "login_throttled"}, // with Retry-After
}

// isBusinessError reports whether err is an expected answer (a domain error
// or a client mistake, answered with a 4xx) rather than a failure worth an
// error-level log line. The logging middleware asks it, so the service layer
// need not know the table above.
func isBusinessError(err error) bool { return httpkit.IsClientError(err, errorMappings...) }

// MakeHTTPHandler adds the user service's routes to r.
func MakeHTTPHandler(r *mux.Router, e Endpoints, logger log.Logger) {
	routes := httpkit.NewRoutes(r, httpkit.APIPrefix, logger, errorMappings, auth.HTTPToContext, clientAddressToContext)

	routes.Handle(http.MethodPost, "/auth/register", e.RegisterEndpoint, httpkit.DecodeJSONRequest[registerRequest])
	routes.Handle(http.MethodPost, "/auth/login", e.LoginEndpoint, httpkit.DecodeJSONRequest[loginRequest])
	routes.Handle(http.MethodPost, "/auth/refresh", e.RefreshEndpoint, httpkit.DecodeJSONRequest[refreshRequest])
	routes.Handle(http.MethodPost, "/auth/logout", e.LogoutEndpoint, httpkit.DecodeJSONRequest[refreshRequest])
	routes.Handle(http.MethodGet, "/users/me", e.GetProfileEndpoint, httpkit.DecodeEmptyRequest[getProfileRequest])
	routes.Handle(http.MethodPatch, "/users/me", e.UpdateProfileEndpoint, httpkit.DecodeJSONRequest[updateProfileRequest])
	routes.Handle(http.MethodGet, "/users/me/addresses", e.ListAddressesEndpoint, httpkit.DecodeEmptyRequest[listAddressesRequest])
	routes.Handle(http.MethodPost, "/users/me/addresses", e.AddAddressEndpoint, httpkit.DecodeJSONRequest[addAddressRequest])
	routes.Handle(http.MethodPatch, "/users/me/addresses/{id}", e.UpdateAddressEndpoint, httpkit.DecodeRequest(decodeUpdateAddressRequest))
	routes.Handle(http.MethodDelete, "/users/me/addresses/{id}", e.DeleteAddressEndpoint, httpkit.DecodeIDRequest[deleteAddressRequest])
	routes.Handle(http.MethodGet, "/users", e.ListUsersEndpoint, httpkit.DecodePageRequest)
	routes.Handle(http.MethodGet, "/internal/users/{id}", e.GetUserEndpoint, httpkit.DecodeIDRequest[getUserRequest])
}

// clientAddressToContext is a go-kit ServerBefore function that puts the
// client's address, which the login throttle counts failures by, in the
// context: the last X-Forwarded-For entry, the one the gateway appended
// from the connection it accepted (earlier entries are whatever the client
// sent), else the connection's own address; an IPv6 address by its /64
// (httpkit.AddressBlock), as the gateway counts it. A caller that bypasses the
// gateway can choose the address it is counted under; the per-account
// ceiling of the throttle does not depend on it.
func clientAddressToContext(ctx context.Context, r *http.Request) context.Context {
	if fwd := r.Header.Values("X-Forwarded-For"); len(fwd) > 0 {
		last := fwd[len(fwd)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
			return WithClientAddress(ctx, httpkit.AddressBlock(a))
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return WithClientAddress(ctx, httpkit.AddressBlock(ap.Addr()))
	}
	return ctx
}

// Server decoders.

func decodeUpdateAddressRequest(r *http.Request, req *updateAddressRequest) error {
	return httpkit.PathAndBody(r, "id", &req.ID, &req.addressPatch, httpkit.DecodeJSON)
}

// Client encoders and decoders, used by NewClient.

// encodeJSONRequest sends request as the JSON body to path.
func encodeJSONRequest(path string) httptransport.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, request any) error {
		r.URL.Path = httpkit.APIPrefix + path
		return discovery.SetJSONBody(r, request)
	}
}

// encodePath sends a bodiless request to path.
func encodePath(path string) httptransport.EncodeRequestFunc {
	return func(_ context.Context, r *http.Request, _ any) error {
		r.URL.Path = httpkit.APIPrefix + path
		return nil
	}
}

func encodeUpdateAddressRequest(_ context.Context, r *http.Request, request any) error {
	req := request.(updateAddressRequest)
	r.URL.Path = httpkit.APIPrefix + "/users/me/addresses/" + url.PathEscape(req.ID)
	return discovery.SetJSONBody(r, req.addressPatch)
}

func encodeDeleteAddressRequest(_ context.Context, r *http.Request, request any) error {
	r.URL.Path = httpkit.APIPrefix + "/users/me/addresses/" + url.PathEscape(request.(deleteAddressRequest).ID)
	return nil
}

func encodeGetUserRequest(_ context.Context, r *http.Request, request any) error {
	r.URL.Path = httpkit.APIPrefix + "/internal/users/" + url.PathEscape(request.(getUserRequest).ID)
	return nil
}

func encodeListUsersRequest(_ context.Context, r *http.Request, request any) error {
	req := request.(endpointkit.PageRequest)
	r.URL.Path = httpkit.APIPrefix + "/users"
	r.URL.RawQuery = url.Values{"page": {strconv.Itoa(req.Page)}, "page_size": {strconv.Itoa(req.PageSize)}}.Encode()
	return nil
}

// decodeResponse decodes an instance's answer into T with discovery.DecodeResponse.
func decodeResponse[T any](fail func(error) T) httptransport.DecodeResponseFunc {
	return discovery.DecodeResponse(ServiceName, errorMappings, fail)
}
