package notification_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/shared/events"
)

// hangUpSMTP is a bare SMTP server that accepts every message (250 after
// DATA) and then hangs up on the next command, as a server or proxy does
// that closes a session once its message is queued. accepted counts the
// messages it took.
type hangUpSMTP struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func startHangUpSMTP(t *testing.T) *hangUpSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hangUpSMTP{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

func (s *hangUpSMTP) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = c.Write([]byte(line + "\r\n")) }
	say("220 localhost ESMTP")
	queued := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if queued {
			return // the message is queued: hang up on RSET or QUIT
		}
		switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
		case "EHLO", "HELO":
			say("250 localhost")
		case "DATA":
			say("354 go ahead")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			s.accepted.Add(1)
			queued = true
			say("250 2.0.0 queued")
		case "QUIT":
			say("221 bye")
			return
		default: // NOOP, MAIL, RCPT
			say("250 OK")
		}
	}
}

// TestEmailAcceptedThoughTheSessionEndsBadly: a server that answered 250
// to the message has it, whatever becomes of the session after (RSET, QUIT
// cut off): the notification is sent, once, not retried into duplicates.
func TestEmailAcceptedThoughTheSessionEndsBadly(t *testing.T) {
	srv := startHangUpSMTP(t)
	p := newPipeline(t, pipelineOptions{smtpAddr: srv.ln.Addr().String(), maxAttempts: 3})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})
	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": ada}))

	row := p.waitRows(t, ada, 10*time.Second, settled(1))[0]
	time.Sleep(300 * time.Millisecond) // several dispatcher polls
	if n := srv.accepted.Load(); n != 1 || row.Status != "sent" || row.Attempts != 1 {
		t.Errorf("the server accepted %d emails; row = %+v; want 1 email, sent on its first attempt", n, row)
	}
}

// TestRefusedSMTPSessionIsClosed: a server that refuses the session before
// any message (here the greeting, EHLO and HELO; a bad AUTH or STARTTLS
// alike) gets its connection closed when Send returns, not left open until
// the garbage collector finds it, one more every retry.
func TestRefusedSMTPSessionIsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	closed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			closed <- err
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("220 localhost ESMTP\r\n"))
		r := bufio.NewReader(c)
		for {
			// Read until the client hangs up; past the deadline it never did.
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := r.ReadString('\n'); err != nil {
				closed <- err
				return
			}
			_, _ = c.Write([]byte("550 5.7.1 this client is not welcome\r\n"))
		}
	}()

	email, err := notification.NewEmailSender(notification.EmailConfig{Addr: ln.Addr().String(), From: "no-reply@mercato.test", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := email.Send(context.Background(), notification.Message{ID: uuid.NewString(), To: "ada@example.com", Subject: "Hi", Text: "Hello"}); err == nil {
		t.Fatal("Send succeeded against a server that refuses every command")
	}
	if err := <-closed; !errors.Is(err, io.EOF) {
		t.Errorf("the refused session was not closed by the client: the server's read ended with %v, want EOF", err)
	}
}

// TestStallingSMTPServerEndsWithTheAttempt: go-mail bounds each command by
// the sender's timeout, not by the call's context; a server that greets and
// then never answers must still end the send when the attempt's context
// does, or the attempt outlives its lease and another instance sends the
// message beside it.
func TestStallingSMTPServerEndsWithTheAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("220 localhost ESMTP\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.Copy(io.Discard, c) // takes EHLO, never answers
	}()

	email, err := notification.NewEmailSender(notification.EmailConfig{Addr: ln.Addr().String(), From: "no-reply@mercato.test", Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err = email.Send(ctx, notification.Message{ID: uuid.NewString(), To: "ada@example.com", Subject: "Hi", Text: "Hello"})
	if took := time.Since(begin); err == nil || took > 5*time.Second {
		t.Errorf("Send to a stalling server with a 500ms context: %v after %v; want an error at the context's end", err, took.Round(time.Millisecond))
	}
}
