package httpkit

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mercato-dev/mercato/shared/endpointkit"
)

// DefaultPageSize is the page size of a list request that names none.
const DefaultPageSize = 20

// DecodePage reads ?page=&page_size= (API.md's list convention), defaulting
// to the first page of DefaultPageSize. A value that is not an integer is a
// 422 naming the field; the bounds are the endpoint's to check.
func DecodePage(q url.Values) (page, pageSize int, err error) {
	page, pageSize = 1, DefaultPageSize
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
