// Package defaults fills in the unset fields of Mercato's option structs.
// Zero-is-unset fields need no helper: cmp.Or does that.
package defaults

// Positive returns v, or def when v is zero or negative: for counts and
// durations, where a value below one would stall or panic the code using it.
func Positive[T ~int | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
