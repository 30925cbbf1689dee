// Package defaults fills in the unset fields of Mercato's option structs.
// Zero-is-unset fields need no helper: cmp.Or does that.
package defaults

import "github.com/go-kit/log"

// Positive returns v, or def when v is zero or negative: for counts and
// durations, where a value below one would stall or panic the code using it.
func Positive[T ~int | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Logger is l, or a logger that discards everything when l is nil: the
// default of every optional Logger field.
func Logger(l log.Logger) log.Logger {
	if l == nil {
		return log.NewNopLogger()
	}
	return l
}

// Deref is *p, or T's zero value when p is nil: an optional field read
// where absent and empty mean the same.
func Deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
