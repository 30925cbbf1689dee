package notification_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// resendFailed is the statement docs/operations.md gives for resending the
// notifications an outage longer than the retries left failed, read from
// the page (the outage taken to have started a day ago), so the test proves
// what an operator is told to run.
func resendFailed(t *testing.T) string {
	t.Helper()
	stmt := testkit.FromDocs(t, "docs/operations.md", "`(UPDATE notifications SET status = 'retrying'[^`]+)`",
		"UPDATE resending failed notifications")
	return strings.Replace(stmt, "'<outage start>'", "now() - interval '1 day'", 1)
}

// TestFailedNotificationIsResent: the resend procedure of the operations
// runbook sends a notification that ran out of attempts, once; putting it
// back to pending alone does not (its spent attempts fail it again at once).
func TestFailedNotificationIsResent(t *testing.T) {
	p := newPipeline(t, pipelineOptions{maxAttempts: 3})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})
	p.smtp.setAccept(func() error {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	})
	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": ada}))
	rows := p.waitRows(t, ada, 10*time.Second, settled(1))
	if r := rows[0]; r.Status != "failed" || r.Attempts != 3 {
		t.Fatalf("after the outage: %+v", r)
	}
	p.smtp.setAccept(nil) // the server is back

	// Only the status: the next claim is one attempt past the limit.
	if _, err := p.db.ExecContext(context.Background(), `UPDATE notifications SET status = 'pending' WHERE status = 'failed'`); err != nil {
		t.Fatal(err)
	}
	rows = p.waitRows(t, ada, 10*time.Second, settled(1))
	if r := rows[0]; r.Status != "failed" || !strings.Contains(r.Error, "gave up after") || len(p.smtp.all()) != 0 {
		t.Fatalf("status reset alone: %+v, %d emails", r, len(p.smtp.all()))
	}

	if _, err := p.db.ExecContext(context.Background(), resendFailed(t)); err != nil {
		t.Fatalf("the runbook's statement: %v", err)
	}
	rows = p.waitRows(t, ada, 10*time.Second, settled(1))
	if r := rows[0]; r.Status != "sent" || r.Attempts != 1 || r.Error != "" {
		t.Errorf("after the runbook's resend: %+v", r)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(p.smtp.all()); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
}
