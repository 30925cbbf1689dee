package httpkit

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mercato-dev/mercato/shared/endpointkit"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Query returns the query parameters of r, parsed strictly: a query that
// does not parse (a bad %-escape, a ';' separator) is a 400, where
// r.URL.Query() would drop the pair in silence, and a name or value that
// holds NUL or is not UTF-8 (validate.StringProblem) is a 422 naming it.
// Routes checks every request with it before its decoder runs, so every
// route refuses them, and decoders may read r.URL.Query() after.
func Query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, BadRequest("malformed_query", "the query string does not parse")
	}
	bad := map[string]string{}
	for name, values := range q {
		if reason := validate.StringProblem(name); reason != "" {
			bad["query"] = "has a parameter name that " + reason
			continue
		}
		for _, v := range values {
			if reason := validate.StringProblem(v); reason != "" {
				bad[name] = reason
			}
		}
	}
	if len(bad) > 0 {
		return nil, Invalid(bad)
	}
	return q, nil
}

// DecodePage reads ?page=&page_size= (API.md's list convention), defaulting
// to the first page of validate.DefaultPageSize. A value that is not an integer is a
// 422 naming the field; the bounds are the endpoint's to check
// (validate.Problems.Page, which also keeps the OFFSET from overflowing).
func DecodePage(q url.Values) (page, pageSize int, err error) {
	page, pageSize = 1, validate.DefaultPageSize
	bad := map[string]string{}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"page", &page}, {"page_size", &pageSize}} {
		if v := q.Get(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				bad[f.name] = "must be an integer"
				continue
			}
			*f.dst = n
		}
	}
	if len(bad) > 0 {
		return 0, 0, Invalid(bad)
	}
	return page, pageSize, nil
}

// DecodePageRequest is a go-kit DecodeRequestFunc for a list route that
// takes nothing but ?page=&page_size= (DecodePage): an
// endpointkit.PageRequest, whose bounds its endpoint checks.
func DecodePageRequest(_ context.Context, r *http.Request) (any, error) {
	page, size, err := DecodePage(r.URL.Query())
	if err != nil {
		return nil, err
	}
	return endpointkit.PageRequest{Page: page, PageSize: size}, nil
}
