package ticketing

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SubjectTemplates are the subjects of the tickets calls make (CF-5), one template per kind of
// ticket. A template is text with placeholders such as {{caller_number}} (SubjectPlaceholders).
//
// The placeholders are a small fixed set rather than Go's text/template: a subject is one line
// of plain text, and an operator's template must not call functions, loop, or fail while a call
// is being applied. A fixed set is checked completely when the settings are validated (an
// unknown name is refused there, with the field named), renders in one pass that cannot fail,
// and its output is cleaned like any text from outside (subjectClean).
type SubjectTemplates struct {
	// Inbound is the subject of an inbound call's ticket (TC-1, TC-4).
	Inbound string `yaml:"inbound" json:"inbound"`
	// Outbound is the subject of an outbound call's ticket (TC-2, TC-7).
	Outbound string `yaml:"outbound" json:"outbound"`
	// Voicemail is the subject of a voicemail's ticket (TC-3).
	Voicemail string `yaml:"voicemail" json:"voicemail"`
	// Abandoned is the subject of an abandoned call's ticket (TC-5).
	Abandoned string `yaml:"abandoned" json:"abandoned"`
}

// DefaultSubjectTemplates returns the subjects calls have always had.
func DefaultSubjectTemplates() SubjectTemplates {
	return SubjectTemplates{
		Inbound:   "Call from {{caller_number}}",
		Outbound:  "Outbound call to {{called_number}}",
		Voicemail: "Voicemail from {{caller_number}}",
		Abandoned: "Abandoned call from {{caller_number}}",
	}
}

// SubjectPlaceholders are the names a subject template may use, each written {{name}}.
var subjectPlaceholders = []string{
	"caller_number", // the calling number; "an anonymous caller" when the call has none
	"caller_name",   // the caller's name from the network; the caller_number text when none
	"called_number", // the number called: the line for inbound calls, the contact for outbound
	"line",          // the line (DID) the call came in on or went out from
	"queue",         // the last queue the call entered
	"direction",     // inbound or outbound
	"agent",         // the name of the agent on the call (empty before anyone answered)
	"menu_path",     // the IVR menu path (the digits chosen)
	"language",      // the call's language
	"call_id",       // the call's id
}

// SubjectPlaceholders returns the placeholder names of subject templates, and data.KEY for the
// call's custom data (CF-4).
func SubjectPlaceholders() []string {
	return append(append([]string(nil), subjectPlaceholders...), "data.KEY")
}

// MaxSubjectLength bounds a rendered subject, in characters; longer ones are cut.
const MaxSubjectLength = 255

// maxTemplateLength bounds a template, in bytes.
const maxTemplateLength = 500

// subjectSegment is a literal text or, when placeholder is set, a placeholder name.
type subjectSegment struct {
	text        string
	placeholder bool
}

// parseSubject splits a template into literals and placeholders, refusing an unclosed {{ and
// unknown names.
func parseSubject(tmpl string) ([]subjectSegment, error) {
	var segs []subjectSegment
	rest := tmpl
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			segs = append(segs, subjectSegment{text: rest})
			break
		}
		if i > 0 {
			segs = append(segs, subjectSegment{text: rest[:i]})
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("has a {{ without its }}")
		}
		name := strings.TrimSpace(rest[i+2 : i+j])
		if !knownPlaceholder(name) {
			return nil, fmt.Errorf("{{%s}} is not a placeholder; use %s", name, placeholderList())
		}
		segs = append(segs, subjectSegment{text: name, placeholder: true})
		rest = rest[i+j+2:]
	}
	return segs, nil
}

func knownPlaceholder(name string) bool {
	if key, ok := strings.CutPrefix(name, "data."); ok {
		return validDataKey(key)
	}
	for _, p := range subjectPlaceholders {
		if p == name {
			return true
		}
	}
	return false
}

func placeholderList() string {
	var b strings.Builder
	for i, p := range SubjectPlaceholders() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("{{" + p + "}}")
	}
	return b.String()
}

// validateSubject checks one template; prefix is its field ("ticket_subject.inbound").
func validateSubject(field, tmpl string, required bool) []FieldError {
	if tmpl == "" {
		if required {
			return []FieldError{{field, "must not be empty; the default is " + fmt.Sprintf("%q", defaultSubjectOf(field))}}
		}
		return nil
	}
	if len(tmpl) > maxTemplateLength {
		return []FieldError{{field, fmt.Sprintf("is %d bytes long; at most %d", len(tmpl), maxTemplateLength)}}
	}
	if !utf8.ValidString(tmpl) || strings.IndexFunc(tmpl, unicode.IsControl) >= 0 {
		return []FieldError{{field, "must be one line of text, without control characters"}}
	}
	if _, err := parseSubject(tmpl); err != nil {
		return []FieldError{{field, err.Error()}}
	}
	return nil
}

func defaultSubjectOf(field string) string {
	d := DefaultSubjectTemplates()
	switch strings.TrimPrefix(field, "ticket_subject.") {
	case "outbound":
		return d.Outbound
	case "voicemail":
		return d.Voicemail
	case "abandoned":
		return d.Abandoned
	}
	return d.Inbound
}

// Validate returns every problem with the templates; required makes an empty one a problem
// (the global settings), otherwise an empty one keeps the global template (a line's).
func (t SubjectTemplates) validate(required bool) []FieldError {
	var errs []FieldError
	errs = append(errs, validateSubject("ticket_subject.inbound", t.Inbound, required)...)
	errs = append(errs, validateSubject("ticket_subject.outbound", t.Outbound, required)...)
	errs = append(errs, validateSubject("ticket_subject.voicemail", t.Voicemail, required)...)
	errs = append(errs, validateSubject("ticket_subject.abandoned", t.Abandoned, required)...)
	return errs
}

// over returns global with the non-empty templates of t.
func (t SubjectTemplates) over(global SubjectTemplates) SubjectTemplates {
	for _, p := range []struct {
		dst *string
		src string
	}{
		{&global.Inbound, t.Inbound}, {&global.Outbound, t.Outbound},
		{&global.Voicemail, t.Voicemail}, {&global.Abandoned, t.Abandoned},
	} {
		if p.src != "" {
			*p.dst = p.src
		}
	}
	return global
}

// ticketSubject renders the subject of the ticket a call makes, from the line's template for
// why. A template that the settings validation let through always renders; a result that is
// empty once cleaned falls back to the default template.
func (e *Engine) ticketSubject(ctx context.Context, tx *applyTx, c *callRow, st Settings, why ticketReason) (string, error) {
	tmpl, def := st.TicketSubject.Inbound, DefaultSubjectTemplates().Inbound
	switch {
	case c.Direction == "outbound":
		tmpl, def = st.TicketSubject.Outbound, DefaultSubjectTemplates().Outbound
	case why == ticketReasonVoicemail:
		tmpl, def = st.TicketSubject.Voicemail, DefaultSubjectTemplates().Voicemail
	case why == ticketReasonAbandoned:
		tmpl, def = st.TicketSubject.Abandoned, DefaultSubjectTemplates().Abandoned
	}
	out, err := e.renderSubject(ctx, tx, c, tmpl)
	if err != nil {
		return "", err
	}
	if out == "" {
		if out, err = e.renderSubject(ctx, tx, c, def); err != nil {
			return "", err
		}
	}
	return out, nil
}

func (e *Engine) renderSubject(ctx context.Context, tx *applyTx, c *callRow, tmpl string) (string, error) {
	segs, err := parseSubject(tmpl)
	if err != nil {
		// Settings are validated before they are stored or loaded; this is a template that
		// bypassed both (an older stored row): the default subject is better than none.
		e.log.Warn("ticketing engine: invalid ticket subject template", "template", tmpl, "err", err)
		return "", nil
	}
	var b strings.Builder
	for _, s := range segs {
		if !s.placeholder {
			b.WriteString(s.text)
			continue
		}
		v, err := e.subjectValue(ctx, tx, c, s.text)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return subjectClean(b.String()), nil
}

func (e *Engine) subjectValue(ctx context.Context, tx *applyTx, c *callRow, name string) (string, error) {
	caller := deref(c.From)
	if caller == "" {
		caller = "an anonymous caller"
	}
	switch name {
	case "caller_number":
		return caller, nil
	case "caller_name":
		if n := deref(c.CallerName); n != "" {
			return n, nil
		}
		return caller, nil
	case "called_number":
		return deref(c.To), nil
	case "line":
		return deref(c.Line), nil
	case "queue":
		return deref(c.Queue), nil
	case "direction":
		return c.Direction, nil
	case "menu_path":
		return deref(c.MenuPath), nil
	case "language":
		return deref(c.Language), nil
	case "call_id":
		return c.ID, nil
	case "agent":
		if c.AgentID == nil {
			return "", nil
		}
		if n, ok := tx.names[*c.AgentID]; ok {
			return n, nil
		}
		var n string
		if err := tx.QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, *c.AgentID).Scan(&n); err != nil {
			return "", dbError("subject agent", err)
		}
		tx.names[*c.AgentID] = n
		return n, nil
	}
	if key, ok := strings.CutPrefix(name, "data."); ok {
		return c.Data[key], nil
	}
	return "", nil
}

// subjectClean makes a rendered subject one line of plain text: control and other invisible
// format characters become spaces, runs of spaces become one, the ends are trimmed, and the
// result is cut to MaxSubjectLength characters. Values come from outside (a caller's name, an
// integration's data), so none of them may bring a line break or a NUL into a subject.
func subjectClean(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > MaxSubjectLength {
		r := []rune(s)
		s = strings.TrimSpace(string(r[:MaxSubjectLength]))
	}
	return s
}
