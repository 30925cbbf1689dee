package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The live order status stream, GET /api/v1/orders/{id}/events, on the
// checkout platform: through the gateway, and across order instances.

type statusEvent struct {
	ID             string
	OrderID        string  `json:"order_id"`
	Status         string  `json:"status"`
	PreviousStatus *string `json:"previous_status"`
	Reason         *string `json:"reason"`
	At             string  `json:"at"`
}

type statusStream struct {
	resp   *http.Response
	events chan statusEvent
}

// openStream opens the stream of order id (with "?query" if any) at base
// ("http://host:port"), with header pairs; the test fails unless it answers want. Heartbeats are
// skipped.
func openStream(t *testing.T, base, id, token string, want int, header ...string) *statusStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	id, query, _ := strings.Cut(id, "?")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/orders/"+id+"/events?"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req) // no timeout: a stream
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		resp.Body.Close()
		t.Fatalf("stream of %s: %d, want %d", id, resp.StatusCode, want)
	}
	s := &statusStream{resp: resp, events: make(chan statusEvent, 100)}
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e statusEvent
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			switch k {
			case "id":
				e.ID = v
			case "data":
				if err := json.Unmarshal([]byte(v), &e); err == nil {
					s.events <- e
				}
				e = statusEvent{}
			}
		}
	}()
	return s
}

// want returns the next event, which must be status.
func (s *statusStream) want(t *testing.T, status string) statusEvent {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatalf("the stream ended; want %s", status)
		}
		if e.Status != status {
			t.Fatalf("event %+v, want %s", e, status)
		}
		return e
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s event within 30s", status)
	}
	return statusEvent{}
}

func TestOrderStatusStream(t *testing.T) {
	// The sandbox confirms 2s after the charge: the stream is open by then.
	p := startCheckoutPlatform(t, checkoutOptions{webhookDelay: "2s"})
	mug := p.seed(t, "Stream Mug", "9.99", 50)
	gw := "http://" + p.gateway.addr
	_, token := p.customer(t)
	_, stranger := p.customer(t)

	t.Run("4242 through the gateway: pending, then confirmed live; a reconnect replays what it missed", func(t *testing.T) {
		o := p.place(t, token, cardOK, checkoutLine{mug, 1})
		s := openStream(t, gw, o.ID, token, http.StatusOK)
		if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q through the gateway", ct)
		}
		pending := s.want(t, "pending")
		confirmed := s.want(t, "confirmed")
		if confirmed.PreviousStatus == nil || *confirmed.PreviousStatus != "pending" || confirmed.OrderID != o.ID {
			t.Errorf("confirmed event %+v", confirmed)
		}
		again := openStream(t, gw, o.ID, token, http.StatusOK, "Last-Event-ID", pending.ID)
		if e := again.want(t, "confirmed"); e.ID != confirmed.ID {
			t.Errorf("replayed %+v, want id %s", e, confirmed.ID)
		}
	})

	t.Run("a declined card: the cancellation with its reason", func(t *testing.T) {
		o := p.place(t, token, cardDeclined, checkoutLine{mug, 1})
		// From the start of the history: the decline may beat the connection.
		s := openStream(t, gw, o.ID+"?last_event_id=0", token, http.StatusOK)
		s.want(t, "pending")
		if e := s.want(t, "cancelled"); e.Reason == nil || *e.Reason != "payment_failed: card_declined" {
			t.Errorf("cancellation %+v", e)
		}
	})

	t.Run("authorization at the gateway", func(t *testing.T) {
		o := p.place(t, token, cardOK, checkoutLine{mug, 1})
		openStream(t, gw, o.ID, "", http.StatusUnauthorized)
		openStream(t, gw, o.ID, stranger, http.StatusNotFound)
		openStream(t, gw, o.ID, p.admin, http.StatusOK).want(t, "pending")
	})

	t.Run("across instances: a stream on one order instance sees a change committed by the other", func(t *testing.T) {
		o := p.place(t, token, cardOK, checkoutLine{mug, 1})
		p.waitStatus(t, token, o.ID, "confirmed", 30*time.Second)
		order := p.procs["order"]
		s := openStream(t, "http://"+order[0].addr, o.ID, token, http.StatusOK)
		s.want(t, "confirmed")
		req, _ := http.NewRequest(http.MethodPost, "http://"+order[1].addr+"/api/v1/orders/"+o.ID+"/status",
			strings.NewReader(`{"status":"shipped"}`))
		req.Header.Set("Authorization", "Bearer "+p.admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("shipping through order instance 1: %d", resp.StatusCode)
		}
		s.want(t, "shipped")
	})
}
