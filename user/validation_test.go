package user

import (
	"maps"
	"testing"

	"github.com/mercato-dev/mercato/shared/validate"
)

// TestCheckEmail: an address that reads as another one, through a character
// that shows nothing, is refused wherever an email is taken (registration and
// the admin bootstrap, through Registration.validate); net/mail accepts them
// all as text.
func TestCheckEmail(t *testing.T) {
	const invisibleReason = "must not contain invisible, formatting or control characters"
	tests := []struct {
		name, email, want string // want: the reason, "" when accepted
	}{
		{"plain", "ada@example.com", ""},
		{"trimmed", "  ada@example.com\t", ""},
		{"non-ASCII letters", "zoë@exämple.com", ""},
		{"plus and dots", "ada.l+shop@mail.example.com", ""},
		{"empty", " ", "is required"},
		{"display name", "Ada <ada@example.com>", "must be a valid email address"},
		{"zero-width space", "ada\u200b@example.com", invisibleReason},
		{"zero-width joiner", "a\u200dda@example.com", invisibleReason},
		{"word joiner", "ada@exam\u2060ple.com", invisibleReason},
		{"byte order mark", "\ufeffada@example.com", invisibleReason},
		{"soft hyphen", "a\u00adda@example.com", invisibleReason},
		{"right-to-left override", "\u202eada@example.com", invisibleReason},
		{"left-to-right mark", "ada@example.com\u200e", invisibleReason},
		{"C1 control", "ada\u0085x@example.com", invisibleReason},
		{"ASCII control", "ada\x01@example.com", invisibleReason},
		{"delete", "ada\x7f@example.com", invisibleReason},
		{"no-break space inside", "ada\u00a0x@example.com", invisibleReason},
		{"line separator", "ada\u2028x@example.com", invisibleReason},
		{"private use", "ada\ue000@example.com", invisibleReason},
		{"variation selector", "ada\ufe0f@example.com", invisibleReason},
		{"combining grapheme joiner", "ad\u034fa@example.com", invisibleReason},
		{"Hangul filler", "ada\u3164@example.com", invisibleReason},
		{"tag character", "ada\U000e0041@example.com", invisibleReason},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validate.Problems{}
			checkEmail(p, "email", tc.email)
			want := validate.Problems{}
			if tc.want != "" {
				want["email"] = tc.want
			}
			if !maps.Equal(p, want) {
				t.Errorf("checkEmail(%+q) = %v, want %v", tc.email, p, want)
			}
		})
	}
}
