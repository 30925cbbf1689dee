package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"syscall"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
)

// bodyError is the answer to a request whose body could not be read, and
// logs what happened. Only a body over the limit is 413. A body that stalled
// until the server's read timeout is 408. A body cut short (the client hung
// up, or half-closed its side) is 400: a client still listening learns what
// went wrong, and for one that is gone the answer is lost harmlessly, the
// log line saying what happened. Which of the two it was cannot be told, as
// net/http cancels the request's context on any failed read. Any other
// failure is 499 when the request's context is done (the client went away,
// as in upstreamError: nobody reads it, but the request's log line and
// metrics record it) and 400 otherwise.
func (g *Gateway) bodyError(ctx context.Context, err error) *httpkit.Error {
	logger := log.With(level.Info(logging.WithRequest(ctx, g.logger)), "err", err)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		logger.Log("msg", "request body over the limit; refused", "limit_bytes", tooLarge.Limit)
		return httpkit.NewError(http.StatusRequestEntityTooLarge, "body_too_large", "the body exceeds 1 MiB")
	case isTimeout(err):
		logger.Log("msg", "the request body did not arrive before the server's read timeout")
		return httpkit.NewError(http.StatusRequestTimeout, "request_timeout", "the request body did not arrive in time")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		logger.Log("msg", "the client hung up before sending the whole request body")
		return httpkit.BadRequest("incomplete_body", "the request body ended before it was complete")
	case ctx.Err() != nil:
		logger.Log("msg", "the client went away while sending the request body")
		return httpkit.ClientClosed()
	default:
		logger.Log("msg", "the request body could not be read")
		return httpkit.BadRequest("unreadable_body", "the request body could not be read")
	}
}

// withBufferedBody returns a shallow copy of r carrying body, which GetBody
// gives afresh to each attempt, sent with its length.
func withBufferedBody(r *http.Request, body []byte) *http.Request {
	r = r.WithContext(r.Context())
	r.ContentLength = int64(len(body))
	r.TransferEncoding, r.Trailer = nil, nil
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Body, _ = r.GetBody()
	return r
}
