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
