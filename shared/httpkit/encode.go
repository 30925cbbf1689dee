package httpkit

import (
	"context"
	"net/http"

	"github.com/go-kit/kit/endpoint"
	httptransport "github.com/go-kit/kit/transport/http"
)

// EncodeResponse returns the go-kit response encoder every service uses. A
// response whose Failed() is non-nil goes to encodeError, so business errors
// travel in responses and never count against breakers; anything else is
// JSON, with the status and headers the response declares (StatusCoder,
// Headerer) and no body for 204.
func EncodeResponse(encodeError httptransport.ErrorEncoder) httptransport.EncodeResponseFunc {
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		if f, ok := response.(endpoint.Failer); ok && f.Failed() != nil {
			encodeError(ctx, f.Failed(), w)
			return nil
		}
		return httptransport.EncodeJSONResponse(ctx, w, response)
	}
}
