package endpointkit

// Failure is the business error a response carries. Embedded in a response
// type, it makes the type an endpoint.Failer, and it never appears in the
// response's JSON.
type Failure struct {
	Err error `json:"-"`
}

// Failed implements endpoint.Failer.
func (f Failure) Failed() error { return f.Err }

func (f *Failure) setErr(err error) { f.Err = err }

// Failing is the constraint of a response type R with an embedded Failure:
// *R can be given its business error.
type Failing[R any] interface {
	*R
	setErr(error)
}

// Respond returns resp carrying err as its business error (none if nil).
func Respond[Resp any, P Failing[Resp]](resp Resp, err error) Resp {
	P(&resp).setErr(err)
	return resp
}

// Fail returns a Resp holding only err: the answer to a request that never
// reached the service, or a client's reading of an error body.
func Fail[Resp any, P Failing[Resp]](err error) Resp {
	var zero Resp
	return Respond[Resp, P](zero, err)
}
