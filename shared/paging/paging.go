// Package paging is the one shape of a page of a list, as every service
// returns it from its Service and every list route answers it (API.md's
// list convention): the items, which page of what size, and how many there
// are in all.
package paging

// Page is one page of a list of T.
type Page[T any] struct {
	Items    []T `json:"items"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
	Total    int `json:"total"`
}
