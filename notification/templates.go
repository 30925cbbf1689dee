package notification

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"github.com/mercato-dev/mercato/shared/money"
)

//go:embed templates/*.tmpl
var templateFiles embed.FS

// TemplateData is what a template sees: the recipient, what the event said,
// and the order when the service has its summary.
type TemplateData struct {
	Contact
	Details
	// OrderNumber is the event's, else the order summary's, else the start
	// of the order id: a message always names its order somehow.
	OrderNumber string
	// Currency is the event's, else the order's; so is Details.Amount
	// (the order's total).
	Currency string
	// Order is nil when no order.created was received for the order.
	Order *OrderSummary
}

// newTemplateData assembles what a notification's templates see.
func newTemplateData(c Contact, d Details, order *OrderSummary) TemplateData {
	td := TemplateData{Contact: c, Details: d, OrderNumber: d.OrderNumber, Currency: d.Currency, Order: order}
	if order != nil {
		if td.OrderNumber == "" {
			td.OrderNumber = order.OrderNumber
		}
		if td.Currency == "" {
			td.Currency = order.Currency
		}
		if td.Amount == nil {
			td.Amount = &order.Total
		}
	}
	if td.OrderNumber == "" && len(d.OrderID) >= 8 {
		td.OrderNumber = strings.ToUpper(d.OrderID[:8])
	}
	return td
}

// Renderer renders every template: a subject, a text body and an HTML body
// (html/template, so names and product names are escaped) for email, and a
// short text for SMS and push.
type Renderer struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

var templateFuncs = map[string]any{"price": price, "failure": failureText}

// NewRenderer parses the embedded templates, failing if any template the
// service can send lacks a part.
func NewRenderer() (*Renderer, error) {
	r := &Renderer{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for name := range templateSpecs {
		t, err := texttemplate.New(name).Funcs(templateFuncs).Option("missingkey=error").
			ParseFS(templateFiles, "templates/partials.txt.tmpl", "templates/"+name+".txt.tmpl")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		h, err := htmltemplate.New(name).Funcs(templateFuncs).Option("missingkey=error").
			ParseFS(templateFiles, "templates/layout.html.tmpl", "templates/"+name+".html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		for _, part := range []string{"subject", "text", "short"} {
			if t.Lookup(part) == nil {
				return nil, fmt.Errorf("template %s: no %q part", name, part)
			}
		}
		if h.Lookup("html") == nil || h.Lookup("content") == nil || h.Lookup("title") == nil {
			return nil, fmt.Errorf("template %s: no html content or title", name)
		}
		r.text[name], r.html[name] = t, h
	}
	return r, nil
}

// Render returns the message of template name for channel ch; To and ID are
// left to the caller.
func (r *Renderer) Render(name string, ch Channel, d TemplateData) (Message, error) {
	t, ok := r.text[name]
	if !ok {
		return Message{}, fmt.Errorf("unknown template %q", name)
	}
	exec := func(part string) (string, error) {
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, part, d); err != nil {
			return "", fmt.Errorf("template %s/%s: %w", name, part, err)
		}
		return b.String(), nil
	}
	subject, err := exec("subject")
	if err != nil {
		return Message{}, err
	}
	// A header holds one line, whatever a name contains.
	m := Message{Subject: strings.Join(strings.Fields(subject), " ")}
	switch ch {
	case ChannelEmail:
		if m.Text, err = exec("text"); err != nil {
			return Message{}, err
		}
		var b bytes.Buffer
		if err := r.html[name].ExecuteTemplate(&b, "html", d); err != nil {
			return Message{}, fmt.Errorf("template %s/html: %w", name, err)
		}
		m.HTML = b.String()
	case ChannelSMS, ChannelPush:
		short, err := exec("short")
		if err != nil {
			return Message{}, err
		}
		m.Text = strings.Join(strings.Fields(short), " ")
	default:
		return Message{}, fmt.Errorf("unknown channel %q", ch)
	}
	return m, nil
}

// price formats an amount (money.Amount or *money.Amount) with its currency:
// "19.99 USD".
func price(a any, currency string) string {
	var s string
	switch v := a.(type) {
	case money.Amount:
		s = v.String()
	case *money.Amount:
		if v == nil {
			return ""
		}
		s = v.String()
	default:
		return fmt.Sprint(a)
	}
	if currency == "" {
		return s
	}
	return s + " " + currency
}

// failureText says what a payment failure code means.
func failureText(code string) string {
	switch code {
	case "card_declined":
		return "the card was declined"
	case "insufficient_funds":
		return "the card has insufficient funds"
	case "expired_card":
		return "the card has expired"
	case "":
		return "the payment was not accepted"
	default:
		return "the payment was not accepted (" + code + ")"
	}
}
