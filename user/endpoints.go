package user

import (
	"context"

	"github.com/go-kit/kit/endpoint"

	"github.com/mercato-dev/mercato/shared/auth"
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

// forCaller makes an endpoint of serve, which acts on the caller's own data:
// the caller is the verified user auth.Authenticate put in ctx, never anyone
// the request names, and its absence is a wiring mistake answered with 401.
func forCaller[Req any](serve func(ctx context.Context, userID string, req Req) any) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		id, ok := auth.FromContext(ctx)
		if !ok {
			return nil, auth.ErrUnauthenticated
		}
		req, _ := request.(Req) // the bodiless requests are not even looked at
		return serve(ctx, id.UserID, req), nil
	}
}

// MakeRegisterEndpoint returns the endpoint of Service.Register.
func MakeRegisterEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(registerRequest)
		if err := req.validate(); err != nil {
			return registerResponse{Err: err}, nil
		}
		u, err := s.Register(ctx, Registration(req))
		return registerResponse{User: u, Err: err}, nil
	}
}

// MakeLoginEndpoint returns the endpoint of Service.Login.
func MakeLoginEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(loginRequest)
		if err := req.validate(); err != nil {
			return tokenResponse{Err: err}, nil
		}
		pair, err := s.Login(ctx, req.Email, req.Password)
		return tokenResponse{TokenPair: pair, Err: err}, nil
	}
}

// MakeRefreshEndpoint returns the endpoint of Service.Refresh.
func MakeRefreshEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(refreshRequest)
		if err := req.validate(); err != nil {
			return tokenResponse{Err: err}, nil
		}
		pair, err := s.Refresh(ctx, req.RefreshToken)
		return tokenResponse{TokenPair: pair, Err: err}, nil
	}
}

// MakeLogoutEndpoint returns the endpoint of Service.Logout for the caller.
func MakeLogoutEndpoint(s Service) endpoint.Endpoint {
	return forCaller(func(ctx context.Context, userID string, req refreshRequest) any {
		if err := req.validate(); err != nil {
			return logoutResponse{Err: err}
		}
		return logoutResponse{Err: s.Logout(ctx, userID, req.RefreshToken)}
	})
}

// MakeGetProfileEndpoint returns the endpoint of Service.GetProfile for the caller.
func MakeGetProfileEndpoint(s Service) endpoint.Endpoint {
	return forCaller(func(ctx context.Context, userID string, _ getProfileRequest) any {
		u, err := s.GetProfile(ctx, userID)
		return userResponse{User: u, Err: err}
	})
}

// MakeUpdateProfileEndpoint returns the endpoint of Service.UpdateProfile for the caller.
func MakeUpdateProfileEndpoint(s Service) endpoint.Endpoint {
	return forCaller(func(ctx context.Context, userID string, req updateProfileRequest) any {
		if err := req.validate(); err != nil {
			return userResponse{Err: err}
		}
		u, err := s.UpdateProfile(ctx, userID, ProfileUpdate(req))
		return userResponse{User: u, Err: err}
	})
}

// MakeListAddressesEndpoint returns the endpoint of Service.ListAddresses for the caller.
func MakeListAddressesEndpoint(s Service) endpoint.Endpoint {
	return forCaller(func(ctx context.Context, userID string, _ listAddressesRequest) any {
		addrs, err := s.ListAddresses(ctx, userID)
		return addressesResponse{Items: addrs, Err: err}
	})
}

// MakeAddAddressEndpoint returns the endpoint of Service.AddAddress for the caller.
func MakeAddAddressEndpoint(s Service) endpoint.Endpoint {
	return forCaller(func(ctx context.Context, userID string, req addAddressRequest) any {
		if err := req.validate(); err != nil {
			return addAddressResponse{Err: err}
		}
		a, err := s.AddAddress(ctx, userID, Address{
			Type: req.Type, Street: req.Street, City: req.City, State: req.State,
			ZipCode: req.ZipCode, Country: req.Country, IsDefault: req.IsDefault,
		})
		return addAddressResponse{Address: a, Err: err}
	})
}

// MakeUpdateAddressEndpoint returns the endpoint of Service.UpdateAddress for the caller.
func MakeUpdateAddressEndpoint(s Service) endpoint.Endpoint {
	return forCaller(func(ctx context.Context, userID string, req updateAddressRequest) any {
		if err := req.validate(); err != nil {
			return addressResponse{Err: err}
		}
		a, err := s.UpdateAddress(ctx, userID, req.ID, AddressUpdate(req.addressPatch))
		return addressResponse{Address: a, Err: err}
	})
}

// MakeDeleteAddressEndpoint returns the endpoint of Service.DeleteAddress for the caller.
func MakeDeleteAddressEndpoint(s Service) endpoint.Endpoint {
	return forCaller(func(ctx context.Context, userID string, req deleteAddressRequest) any {
		return deleteAddressResponse{Err: s.DeleteAddress(ctx, userID, req.ID)}
	})
}

// MakeListUsersEndpoint returns the endpoint of Service.ListUsers.
func MakeListUsersEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(listUsersRequest)
		if err := req.validate(); err != nil {
			return listUsersResponse{Err: err}, nil
		}
		p, err := s.ListUsers(ctx, req.Page, req.PageSize)
		return listUsersResponse{Items: p.Items, Page: p.Page, PageSize: p.PageSize, Total: p.Total, Err: err}, nil
	}
}

// MakeGetUserEndpoint returns the endpoint of Service.GetUser.
func MakeGetUserEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(getUserRequest)
		u, err := s.GetUser(ctx, req.ID)
		return userResponse{User: u, Err: err}, nil
	}
}

// Service implementation, so Endpoints doubles as a client.

func (e Endpoints) Register(ctx context.Context, r Registration) (User, error) {
	resp, err := e.RegisterEndpoint(ctx, registerRequest(r))
	if err != nil {
		return User{}, err
	}
	out := resp.(registerResponse)
	return out.User, out.Err
}

func (e Endpoints) Login(ctx context.Context, email, password string) (TokenPair, error) {
	resp, err := e.LoginEndpoint(ctx, loginRequest{Email: email, Password: password})
	if err != nil {
		return TokenPair{}, err
	}
	out := resp.(tokenResponse)
	return out.TokenPair, out.Err
}

func (e Endpoints) Refresh(ctx context.Context, refreshToken string) (TokenPair, error) {
	resp, err := e.RefreshEndpoint(ctx, refreshRequest{RefreshToken: refreshToken})
	if err != nil {
		return TokenPair{}, err
	}
	out := resp.(tokenResponse)
	return out.TokenPair, out.Err
}

func (e Endpoints) Logout(ctx context.Context, _ string, refreshToken string) error {
	resp, err := e.LogoutEndpoint(ctx, refreshRequest{RefreshToken: refreshToken})
	if err != nil {
		return err
	}
	return resp.(logoutResponse).Err
}

func (e Endpoints) GetProfile(ctx context.Context, _ string) (User, error) {
	resp, err := e.GetProfileEndpoint(ctx, getProfileRequest{})
	if err != nil {
		return User{}, err
	}
	out := resp.(userResponse)
	return out.User, out.Err
}

func (e Endpoints) UpdateProfile(ctx context.Context, _ string, p ProfileUpdate) (User, error) {
	resp, err := e.UpdateProfileEndpoint(ctx, updateProfileRequest(p))
	if err != nil {
		return User{}, err
	}
	out := resp.(userResponse)
	return out.User, out.Err
}

func (e Endpoints) ListAddresses(ctx context.Context, _ string) ([]Address, error) {
	resp, err := e.ListAddressesEndpoint(ctx, listAddressesRequest{})
	if err != nil {
		return nil, err
	}
	out := resp.(addressesResponse)
	return out.Items, out.Err
}

func (e Endpoints) AddAddress(ctx context.Context, _ string, a Address) (Address, error) {
	resp, err := e.AddAddressEndpoint(ctx, addAddressRequest{
		Type: a.Type, Street: a.Street, City: a.City, State: a.State,
		ZipCode: a.ZipCode, Country: a.Country, IsDefault: a.IsDefault,
	})
	if err != nil {
		return Address{}, err
	}
	out := resp.(addAddressResponse)
	return out.Address, out.Err
}

func (e Endpoints) UpdateAddress(ctx context.Context, _ string, addressID string, p AddressUpdate) (Address, error) {
	resp, err := e.UpdateAddressEndpoint(ctx, updateAddressRequest{ID: addressID, addressPatch: addressPatch(p)})
	if err != nil {
		return Address{}, err
	}
	out := resp.(addressResponse)
	return out.Address, out.Err
}

func (e Endpoints) DeleteAddress(ctx context.Context, _ string, addressID string) error {
	resp, err := e.DeleteAddressEndpoint(ctx, deleteAddressRequest{ID: addressID})
	if err != nil {
		return err
	}
	return resp.(deleteAddressResponse).Err
}

func (e Endpoints) ListUsers(ctx context.Context, page, pageSize int) (UserPage, error) {
	resp, err := e.ListUsersEndpoint(ctx, listUsersRequest{Page: page, PageSize: pageSize})
	if err != nil {
		return UserPage{}, err
	}
	out := resp.(listUsersResponse)
	return UserPage{Items: out.Items, Page: out.Page, PageSize: out.PageSize, Total: out.Total}, out.Err
}

func (e Endpoints) GetUser(ctx context.Context, id string) (User, error) {
	resp, err := e.GetUserEndpoint(ctx, getUserRequest{ID: id})
	if err != nil {
		return User{}, err
	}
	out := resp.(userResponse)
	return out.User, out.Err
}
