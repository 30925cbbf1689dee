package payment

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// StaleWebhookError is ErrStaleWebhook saying the tolerance the webhook's
// timestamp was outside of.
type StaleWebhookError struct {
	Tolerance time.Duration
}

func (e *StaleWebhookError) Error() string {
	return fmt.Sprintf("the webhook timestamp is more than %s away from now", e.Tolerance)
}

// Is makes errors.Is(err, ErrStaleWebhook) hold.
func (e *StaleWebhookError) Is(target error) bool { return target == ErrStaleWebhook }

// SignatureHeader carries a webhook's signature:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>".
const SignatureHeader = "Mercato-Signature"

// SignWebhook returns the SignatureHeader value for body sent at t.
func SignWebhook(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhookSignature checks header against body: ErrInvalidSignature
// unless one v1 signature matches (several may, while a secret rotates),
// then ErrStaleWebhook (a *StaleWebhookError naming tolerance) when the
// signed time is more than tolerance from now in either direction. The
// timestamp is inside the MAC, so a captured webhook cannot be replayed
// later with a fresh one.
func VerifyWebhookSignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrInvalidSignature
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return ErrInvalidSignature
			}
			sigs = append(sigs, sig)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrInvalidSignature
	}
	want := webhookMAC(secret, ts, body)
	match := false
	for _, sig := range sigs {
		if hmac.Equal(sig, want) { // constant time
			match = true
		}
	}
	if !match {
		return ErrInvalidSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return &StaleWebhookError{Tolerance: tolerance}
	}
	return nil
}
