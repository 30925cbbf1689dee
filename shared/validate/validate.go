// Package validate is the request validation kit every Mercato service
// shares: a Problems collector (field → reason) with the checks the services
// have in common (free text, UUIDs, money amounts, cards, page bounds,
// idempotency keys), Optional for the fields of a partial update, and the
// Luhn checksum. Service-specific checks are written on top of Problems in
// the service itself.
//
// It knows nothing of HTTP, so service code may use it too (Optional); the
// transport shows its Error as a 422 naming every bad field (httpkit does).
package validate

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/money"
)

// ErrInvalid is what every *Error is (errors.Is): a well-formed request
// whose fields fail validation.
var ErrInvalid = errors.New("the request has invalid fields")

// Error is a request that fails validation. Fields maps each offending field
// to what is wrong with it; a reason never repeats the value (which may be a
// card number).
type Error struct {
	Fields map[string]string
}

func (e *Error) Error() string {
	names := make([]string, 0, len(e.Fields))
	for name := range e.Fields {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	for i, name := range names {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep + name + " " + e.Fields[name])
	}
	return b.String()
}

// Is makes every *Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// ErrorDetails is what the error body shows: each field with its reason.
func (e *Error) ErrorDetails() map[string]any {
	details := make(map[string]any, len(e.Fields))
	for k, v := range e.Fields {
		details[k] = v
	}
	return details
}

// Problems collects what is wrong with a request, field → reason; a check
// that fails records its field (the last reason given for a field wins).
// Err turns them into one *Error.
type Problems map[string]string

// Err is nil when nothing was recorded, else an *Error naming every field.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	fields := make(map[string]string, len(p))
	for k, v := range p {
		fields[k] = v
	}
	return &Error{Fields: fields}
}

// Text checks a free-text field against its column's length (in characters,
// as VARCHAR counts), after trimming as the services store it. NUL is
// refused: PostgreSQL rejects it in text and JSONB with an error that would
// otherwise be a 500.
func (p Problems) Text(field, v string, max int, required bool) {
	v = strings.TrimSpace(v)
	switch n := utf8.RuneCountInString(v); {
	case !utf8.ValidString(v):
		p[field] = "must be valid UTF-8"
	case required && n == 0:
		p[field] = "is required"
	case n > max:
		p[field] = "must be at most " + strconv.Itoa(max) + " characters"
	case strings.ContainsRune(v, 0):
		p[field] = "must not contain NUL characters"
	}
}

// ParseUUID returns id in canonical (lower-case) form, or false when it is
// not a UUID in the 36-character form API.md's ids have. Such an id names no
// row, and passing it on would only make PostgreSQL reject the query with an
// error that is not "not found"; keeping to one form also tells an id apart
// from a slug that happens to be 32 hex digits.
func ParseUUID(id string) (string, bool) {
	if len(id) != 36 {
		return "", false
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// UUID checks that v is a UUID (ParseUUID).
func (p Problems) UUID(field, v string) {
	if _, ok := ParseUUID(v); !ok {
		p[field] = "must be a UUID"
	}
}

// MaxAmount is the largest amount the NUMERIC(10,2) money columns hold.
const MaxAmount = money.Amount(99_999_999_99)

// Amount checks a positive decimal amount with at most two places
// (money.Parse) that fits the NUMERIC(10,2) columns.
func (p Problems) Amount(field, v string) {
	a, err := money.Parse(v)
	switch {
	case err != nil:
		p[field] = `must be a decimal string with at most two places, like "19.99"`
	case a <= 0:
		p[field] = "must be greater than 0"
	case a > MaxAmount:
		p[field] = "must be at most " + MaxAmount.String()
	}
}

// MaxPageSize is the largest page a list route serves (API.md).
const MaxPageSize = 100

// DefaultPageSize is the page size of a list request that names none.
const DefaultPageSize = 20

// MaxPage is the last page number a list route accepts. With MaxPageSize it
// keeps the OFFSET, (page-1)*pageSize, at most a million rows: far from
// overflowing an int (a page of 2^62 would wrap it negative, and PostgreSQL
// refuses a negative OFFSET), and beyond any list worth paging through.
const MaxPage = 10_000

// Page checks the page and page size of a list request (httpkit.DecodePage
// reads them). Within these bounds (page-1)*pageSize cannot overflow.
func (p Problems) Page(page, pageSize int) {
	switch {
	case page < 1:
		p["page"] = "must be at least 1"
	case page > MaxPage:
		p["page"] = "must be at most " + strconv.Itoa(MaxPage)
	}
	if pageSize < 1 || pageSize > MaxPageSize {
		p["page_size"] = "must be between 1 and " + strconv.Itoa(MaxPageSize)
	}
}

// MaxIdempotencyKey is the longest Idempotency-Key kept, in bytes.
const MaxIdempotencyKey = 255

// IdempotencyKey checks an optional idempotency key: when given, 1 to
// MaxIdempotencyKey printable ASCII characters.
func (p Problems) IdempotencyKey(field, k string) {
	if k != "" && (len(k) > MaxIdempotencyKey || !PrintableASCII(k)) {
		p[field] = "must be 1 to " + strconv.Itoa(MaxIdempotencyKey) + " printable ASCII characters"
	}
}

// PrintableASCII reports whether s holds printable ASCII characters only
// (space to tilde): safe in a header, a log line or a key column.
func PrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
