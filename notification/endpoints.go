package notification

import (
	"context"
	"net/http"

	"github.com/go-kit/kit/endpoint"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/endpointkit"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Endpoints collects one endpoint per Service method, built by
// MakeServerEndpoints around a Service. Unlike user's, product's and
// payment's, they do not double as a client: only the gateway calls the
// notification service, and it proxies HTTP, so a client would be code
// nothing runs.
type Endpoints struct {
	ListNotificationsEndpoint endpoint.Endpoint
	GetPreferencesEndpoint    endpoint.Endpoint
	UpdatePreferencesEndpoint endpoint.Endpoint
	SetPushTokenEndpoint      endpoint.Endpoint
	DeletePushTokenEndpoint   endpoint.Endpoint
}

// MakeServerEndpoints returns the endpoints of s, with authentication and
// authorisation applied here and nowhere else. Every route is a user's own
// data: customers and admins only, not other services.
func MakeServerEndpoints(s Service, tokens *auth.Tokens) Endpoints {
	user := endpoint.Chain(auth.Authenticate(tokens), auth.RequireRole(auth.RoleCustomer, auth.RoleAdmin))
	return Endpoints{
		ListNotificationsEndpoint: user(MakeListNotificationsEndpoint(s)),
		GetPreferencesEndpoint:    user(MakeGetPreferencesEndpoint(s)),
		UpdatePreferencesEndpoint: user(MakeUpdatePreferencesEndpoint(s)),
		SetPushTokenEndpoint:      user(MakeSetPushTokenEndpoint(s)),
		DeletePushTokenEndpoint:   user(MakeDeletePushTokenEndpoint(s)),
	}
}

// MakeListNotificationsEndpoint returns the endpoint of Service.ListNotifications for the caller.
func MakeListNotificationsEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(endpointkit.PageRequest.Validate, func(ctx context.Context, c auth.Identity, req endpointkit.PageRequest) (listNotificationsResponse, error) {
		p, err := s.ListNotifications(ctx, c.UserID, req.Page, req.PageSize)
		return listNotificationsResponse{Page: p}, err
	})
}

// MakeGetPreferencesEndpoint returns the endpoint of Service.GetPreferences for the caller.
func MakeGetPreferencesEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ServeCaller(func(ctx context.Context, c auth.Identity, _ getPreferencesRequest) (preferencesResponse, error) {
		p, err := s.GetPreferences(ctx, c.UserID)
		return preferencesResponse{Preferences: p}, err
	})
}

// MakeUpdatePreferencesEndpoint returns the endpoint of Service.UpdatePreferences for the caller.
func MakeUpdatePreferencesEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(updatePreferencesRequest.validate, func(ctx context.Context, c auth.Identity, req updatePreferencesRequest) (preferencesResponse, error) {
		p, err := s.UpdatePreferences(ctx, c.UserID, Preferences{Email: *req.Email, SMS: *req.SMS, Push: *req.Push})
		return preferencesResponse{Preferences: p}, err
	})
}

// MakeSetPushTokenEndpoint returns the endpoint of Service.SetPushToken for the caller.
func MakeSetPushTokenEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(setPushTokenRequest.validate, func(ctx context.Context, c auth.Identity, req setPushTokenRequest) (noContentResponse, error) {
		return noContentResponse{}, s.SetPushToken(ctx, c.UserID, req.Token)
	})
}

// MakeDeletePushTokenEndpoint returns the endpoint of Service.DeletePushToken for the caller.
func MakeDeletePushTokenEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ServeCaller(func(ctx context.Context, c auth.Identity, _ deletePushTokenRequest) (noContentResponse, error) {
		return noContentResponse{}, s.DeletePushToken(ctx, c.UserID)
	})
}

// Requests. Each validates itself; a failure is a 422 naming every bad field.

type getPreferencesRequest struct{}

// updatePreferencesRequest replaces the preferences whole (PUT): every
// channel must be given, so a client cannot switch one off by forgetting it.
type updatePreferencesRequest struct {
	Email *bool `json:"email"`
	SMS   *bool `json:"sms"`
	Push  *bool `json:"push"`
}

func (r updatePreferencesRequest) validate() error {
	p := validate.Problems{}
	for _, f := range []struct {
		name string
		v    *bool
	}{{"email", r.Email}, {"sms", r.SMS}, {"push", r.Push}} {
		if f.v == nil {
			p[f.name] = "is required (true or false)"
		}
	}
	return p.Err()
}

// maxPushTokenLength is generous: FCM registration tokens are about 160
// characters, APNs device tokens 64.
const maxPushTokenLength = 4096

type setPushTokenRequest struct {
	Token string `json:"token"`
}

func (r setPushTokenRequest) validate() error {
	p := validate.Problems{}
	p.Text("token", r.Token, maxPushTokenLength, true)
	return p.Err()
}

type deletePushTokenRequest struct{}

// Responses. Business errors travel in the embedded endpointkit.Failure
// (endpoint.Failer), so a client's circuit breaker never counts a 404 as a
// failure.

type listNotificationsResponse = endpointkit.PageResponse[Notification]

type preferencesResponse struct {
	Preferences Preferences `json:"preferences"`
	endpointkit.Failure
}

type noContentResponse struct {
	endpointkit.Failure
}

func (r noContentResponse) StatusCode() int { return http.StatusNoContent }
