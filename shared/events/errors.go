package events

import "errors"

// A HandlerFunc's error tells the Consumer what to do with the event. A
// plain error is retried and, once the event has been delivered MaxAttempts
// times, dead-lettered. Two marks change that:
//
//   - Permanent: retrying cannot help (the event contradicts what its source
//     says happened, it names something that does not exist). The event is
//     dead-lettered at once, with the error as the reason.
//   - Transient: something the handler depends on is down and will come
//     back (an upstream service unreachable). The event is retried for as
//     long as that takes and never dead-lettered for it, so an outage longer
//     than MaxAttempts retries does not throw genuine events away.

// Permanent marks err as a failure no retry can fix. Permanent(nil) is nil.
func Permanent(err error) error { return mark(err, true) }

// Transient marks err as the failure of a dependency that is expected to
// recover. Transient(nil) is nil.
func Transient(err error) error { return mark(err, false) }

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var c *classified
	return errors.As(err, &c) && c.permanent
}

// IsTransient reports whether err, or an error it wraps, was marked Transient.
func IsTransient(err error) bool {
	var c *classified
	return errors.As(err, &c) && !c.permanent
}

// classified is an error marked by Permanent or Transient; it reads as the
// error it marks, so the dead-letter reason and the logs are unchanged.
type classified struct {
	err       error
	permanent bool
}

func mark(err error, permanent bool) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, permanent: permanent}
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }
