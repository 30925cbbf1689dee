package endpointkit

import (
	"github.com/mercato-dev/mercato/shared/paging"
	"github.com/mercato-dev/mercato/shared/validate"
)

// PageRequest is the request of a list that takes nothing but its page
// (API.md's ?page=&page_size=, read by httpkit.DecodePageRequest).
type PageRequest struct {
	Page     int
	PageSize int
}

// Validate checks the page's bounds: a 422 naming each bad field.
func (r PageRequest) Validate() error {
	p := validate.Problems{}
	p.Page(r.Page, r.PageSize)
	return p.Err()
}

// PageResponse is one page of a list of T as every list route answers it
// (API.md's list convention), its business error in the embedded Failure.
type PageResponse[T any] struct {
	paging.Page[T]
	Failure
}
