package user

import (
	"context"

	"github.com/go-kit/kit/endpoint"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/endpointkit"
)

// Endpoints collects one endpoint per Service method. On the server they are
// built by MakeServerEndpoints around a Service; in a client (NewClient) they
// call a remote instance. Either way Endpoints is itself a Service.
//
// As a client, the methods acting on the caller's own data (Logout,
// GetProfile, UpdateProfile and the address methods) act for the user whose
// bearer token ctx carries (auth.ContextToHTTP forwards it); their userID
// argument is not sent, because the server never takes the caller's identity
// from anything but the token.
type Endpoints struct {
	RegisterEndpoint      endpoint.Endpoint
	LoginEndpoint         endpoint.Endpoint
	RefreshEndpoint       endpoint.Endpoint
	LogoutEndpoint        endpoint.Endpoint
	GetProfileEndpoint    endpoint.Endpoint
	UpdateProfileEndpoint endpoint.Endpoint
	ListAddressesEndpoint endpoint.Endpoint
	AddAddressEndpoint    endpoint.Endpoint
	UpdateAddressEndpoint endpoint.Endpoint
	DeleteAddressEndpoint endpoint.Endpoint
	ListUsersEndpoint     endpoint.Endpoint
	GetUserEndpoint       endpoint.Endpoint
}

var _ Service = Endpoints{}

// MakeServerEndpoints returns the endpoints of s, with authentication and
// authorisation applied here and nowhere else.
func MakeServerEndpoints(s Service, tokens *auth.Tokens) Endpoints {
	user := auth.Authenticate(tokens)
	admin := endpoint.Chain(user, auth.RequireRole(auth.RoleAdmin))
	selfAdminOrService := endpoint.Chain(user, selfAdminOrService)
	return Endpoints{
		RegisterEndpoint:      MakeRegisterEndpoint(s),
		LoginEndpoint:         MakeLoginEndpoint(s),
		RefreshEndpoint:       MakeRefreshEndpoint(s),
		LogoutEndpoint:        user(MakeLogoutEndpoint(s)),
		GetProfileEndpoint:    user(MakeGetProfileEndpoint(s)),
		UpdateProfileEndpoint: user(MakeUpdateProfileEndpoint(s)),
		ListAddressesEndpoint: user(MakeListAddressesEndpoint(s)),
		AddAddressEndpoint:    user(MakeAddAddressEndpoint(s)),
		UpdateAddressEndpoint: user(MakeUpdateAddressEndpoint(s)),
		DeleteAddressEndpoint: user(MakeDeleteAddressEndpoint(s)),
		ListUsersEndpoint:     admin(MakeListUsersEndpoint(s)),
		GetUserEndpoint:       selfAdminOrService(MakeGetUserEndpoint(s)),
	}
}

// selfAdminOrService lets a caller read a user by id when it is that user,
// an admin, or another service (the notification service looks up contact
// data). Placed after auth.Authenticate.
func selfAdminOrService(next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		id, ok := auth.FromContext(ctx)
		if !ok {
			return nil, auth.ErrUnauthenticated
		}
		if req, _ := request.(getUserRequest); !id.IsAdmin() && id.Role != auth.RoleService && req.ID != id.UserID {
			return nil, auth.ErrForbidden
		}
		return next(ctx, request)
	}
}

// MakeRegisterEndpoint returns the endpoint of Service.Register.
func MakeRegisterEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(registerRequest.validate, func(ctx context.Context, req registerRequest) (registerResponse, error) {
		u, err := s.Register(ctx, Registration(req))
		return registerResponse{User: u}, err
	})
}

// MakeLoginEndpoint returns the endpoint of Service.Login.
func MakeLoginEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(loginRequest.validate, func(ctx context.Context, req loginRequest) (tokenResponse, error) {
		pair, err := s.Login(ctx, req.Email, req.Password)
		return tokenResponse{TokenPair: pair}, err
	})
}

// MakeRefreshEndpoint returns the endpoint of Service.Refresh.
func MakeRefreshEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(refreshRequest.validate, func(ctx context.Context, req refreshRequest) (tokenResponse, error) {
		pair, err := s.Refresh(ctx, req.RefreshToken)
		return tokenResponse{TokenPair: pair}, err
	})
}

// MakeLogoutEndpoint returns the endpoint of Service.Logout for the caller.
func MakeLogoutEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(refreshRequest.validate, func(ctx context.Context, c auth.Identity, req refreshRequest) (logoutResponse, error) {
		access, _ := auth.AccessTokenFromContext(ctx) // Authenticate put it there with the caller
		return logoutResponse{}, s.Logout(ctx, c.UserID, access, req.RefreshToken)
	})
}

// MakeGetProfileEndpoint returns the endpoint of Service.GetProfile for the caller.
func MakeGetProfileEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ServeCaller(func(ctx context.Context, c auth.Identity, _ getProfileRequest) (userResponse, error) {
		u, err := s.GetProfile(ctx, c.UserID)
		return userResponse{User: u}, err
	})
}

// MakeUpdateProfileEndpoint returns the endpoint of Service.UpdateProfile for the caller.
func MakeUpdateProfileEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(updateProfileRequest.validate, func(ctx context.Context, c auth.Identity, req updateProfileRequest) (userResponse, error) {
		u, err := s.UpdateProfile(ctx, c.UserID, ProfileUpdate(req))
		return userResponse{User: u}, err
	})
}

// MakeListAddressesEndpoint returns the endpoint of Service.ListAddresses for the caller.
func MakeListAddressesEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ServeCaller(func(ctx context.Context, c auth.Identity, _ listAddressesRequest) (addressesResponse, error) {
		addrs, err := s.ListAddresses(ctx, c.UserID)
		return addressesResponse{Items: addrs}, err
	})
}

// MakeAddAddressEndpoint returns the endpoint of Service.AddAddress for the caller.
func MakeAddAddressEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(addAddressRequest.validate, func(ctx context.Context, c auth.Identity, req addAddressRequest) (addAddressResponse, error) {
		a, err := s.AddAddress(ctx, c.UserID, Address{
			Type: req.Type, Street: req.Street, City: req.City, State: req.State,
			ZipCode: req.ZipCode, Country: req.Country, IsDefault: req.IsDefault,
		})
		return addAddressResponse{Address: a}, err
	})
}

// MakeUpdateAddressEndpoint returns the endpoint of Service.UpdateAddress for the caller.
func MakeUpdateAddressEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(updateAddressRequest.validate, func(ctx context.Context, c auth.Identity, req updateAddressRequest) (addressResponse, error) {
		a, err := s.UpdateAddress(ctx, c.UserID, req.ID, AddressUpdate(req.addressPatch))
		return addressResponse{Address: a}, err
	})
}

// MakeDeleteAddressEndpoint returns the endpoint of Service.DeleteAddress for the caller.
func MakeDeleteAddressEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ServeCaller(func(ctx context.Context, c auth.Identity, req deleteAddressRequest) (deleteAddressResponse, error) {
		return deleteAddressResponse{}, s.DeleteAddress(ctx, c.UserID, req.ID)
	})
}

// MakeListUsersEndpoint returns the endpoint of Service.ListUsers.
func MakeListUsersEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(endpointkit.PageRequest.Validate, func(ctx context.Context, req endpointkit.PageRequest) (listUsersResponse, error) {
		p, err := s.ListUsers(ctx, req.Page, req.PageSize)
		return listUsersResponse{Page: p}, err
	})
}

// MakeGetUserEndpoint returns the endpoint of Service.GetUser.
func MakeGetUserEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Serve(func(ctx context.Context, req getUserRequest) (userResponse, error) {
		u, err := s.GetUser(ctx, req.ID)
		return userResponse{User: u}, err
	})
}

// Service implementation, so Endpoints doubles as a client.

func (e Endpoints) Register(ctx context.Context, r Registration) (User, error) {
	out, err := endpointkit.Call[registerResponse](ctx, e.RegisterEndpoint, registerRequest(r))
	return out.User, err
}

func (e Endpoints) Login(ctx context.Context, email, password string) (TokenPair, error) {
	out, err := endpointkit.Call[tokenResponse](ctx, e.LoginEndpoint, loginRequest{Email: email, Password: password})
	return out.TokenPair, err
}

func (e Endpoints) Refresh(ctx context.Context, refreshToken string) (TokenPair, error) {
	out, err := endpointkit.Call[tokenResponse](ctx, e.RefreshEndpoint, refreshRequest{RefreshToken: refreshToken})
	return out.TokenPair, err
}

// Logout ends the session of the bearer token ctx carries; that token is the
// one the server revokes, so access is not sent.
func (e Endpoints) Logout(ctx context.Context, _ string, _ auth.AccessToken, refreshToken string) error {
	_, err := endpointkit.Call[logoutResponse](ctx, e.LogoutEndpoint, refreshRequest{RefreshToken: refreshToken})
	return err
}

func (e Endpoints) GetProfile(ctx context.Context, _ string) (User, error) {
	out, err := endpointkit.Call[userResponse](ctx, e.GetProfileEndpoint, getProfileRequest{})
	return out.User, err
}

func (e Endpoints) UpdateProfile(ctx context.Context, _ string, p ProfileUpdate) (User, error) {
	out, err := endpointkit.Call[userResponse](ctx, e.UpdateProfileEndpoint, updateProfileRequest(p))
	return out.User, err
}

func (e Endpoints) ListAddresses(ctx context.Context, _ string) ([]Address, error) {
	out, err := endpointkit.Call[addressesResponse](ctx, e.ListAddressesEndpoint, listAddressesRequest{})
	return out.Items, err
}

func (e Endpoints) AddAddress(ctx context.Context, _ string, a Address) (Address, error) {
	out, err := endpointkit.Call[addAddressResponse](ctx, e.AddAddressEndpoint, addAddressRequest{
		Type: a.Type, Street: a.Street, City: a.City, State: a.State,
		ZipCode: a.ZipCode, Country: a.Country, IsDefault: a.IsDefault,
	})
	return out.Address, err
}

func (e Endpoints) UpdateAddress(ctx context.Context, _ string, addressID string, p AddressUpdate) (Address, error) {
	out, err := endpointkit.Call[addressResponse](ctx, e.UpdateAddressEndpoint, updateAddressRequest{ID: addressID, addressPatch: addressPatch(p)})
	return out.Address, err
}

func (e Endpoints) DeleteAddress(ctx context.Context, _ string, addressID string) error {
	_, err := endpointkit.Call[deleteAddressResponse](ctx, e.DeleteAddressEndpoint, deleteAddressRequest{ID: addressID})
	return err
}

func (e Endpoints) ListUsers(ctx context.Context, page, pageSize int) (UserPage, error) {
	out, err := endpointkit.Call[listUsersResponse](ctx, e.ListUsersEndpoint, endpointkit.PageRequest{Page: page, PageSize: pageSize})
	return out.Page, err
}

func (e Endpoints) GetUser(ctx context.Context, id string) (User, error) {
	out, err := endpointkit.Call[userResponse](ctx, e.GetUserEndpoint, getUserRequest{ID: id})
	return out.User, err
}
