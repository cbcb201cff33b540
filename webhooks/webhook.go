package webhooks

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Webhook is one registered receiver, in Zendesk's shape (docs/api.md, Webhooks). The signing
// secret and the authentication credentials are not part of it as the API shows it.
type Webhook struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Description    string            `json:"description"`
	Status         string            `json:"status"`
	Endpoint       string            `json:"endpoint"`
	HTTPMethod     string            `json:"http_method"`
	RequestFormat  string            `json:"request_format"`
	Subscriptions  []string          `json:"subscriptions"`
	CustomHeaders  map[string]string `json:"custom_headers"`
	Authentication *AuthView         `json:"authentication,omitempty"`
	ExternalSource json.RawMessage   `json:"external_source,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	CreatedBy      string            `json:"created_by"`
	UpdatedAt      time.Time         `json:"updated_at"`
	UpdatedBy      string            `json:"updated_by,omitempty"`

	auth   *Auth  // with its credentials
	secret string // the signing secret
}

// Auth is how the webhook authenticates to its receiver (Zendesk's "authentication"): type
// basic_auth (data: username, password), bearer_token (data: token) or api_key (data: name,
// value), added as a header.
type Auth struct {
	Type        string            `json:"type"`
	AddPosition string            `json:"add_position"`
	Data        map[string]string `json:"data"`
}

// AuthView is Auth as the API returns it: the type and position, never the credentials.
type AuthView struct {
	Type        string `json:"type"`
	AddPosition string `json:"add_position"`
}

// SigningSecret is Zendesk's signing secret object.
type SigningSecret struct {
	Algorithm string `json:"algorithm"`
	Secret    string `json:"secret"`
}

// Zendesk's webhook statuses, and the one method and format event subscriptions use.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
	// EventTypePrefix starts every event type a webhook subscribes to.
	EventTypePrefix = "zen:event-type:"
	// ConditionalTicketEvents is Zendesk's subscription for webhooks fired by triggers and
	// automations, with the payload the trigger's action writes. Switchboard has neither
	// triggers nor automations: the subscription is stored and returned, and sends nothing
	// (docs/api.md, Webhooks: subscribe to zen:event-type:ticket.* instead).
	ConditionalTicketEvents = "conditional_ticket_events"
)

// Limits on what an admin registers.
const (
	maxNameLen       = 255
	maxDescLen       = 1024
	maxEndpointLen   = 2048
	maxCustomHeaders = 5 // Zendesk's limit
	maxHeaderValue   = 1000
	maxSubscriptions = 100
	minSecretLen     = 16
	maxSecretLen     = 256
)

// fieldErrors collects what is wrong with a request body, by field.
type fieldErrors map[string][]string

func (f fieldErrors) add(field, format string, args ...any) {
	f[field] = append(f[field], fmt.Sprintf(format, args...))
}

// input is the body of POST, PUT and PATCH: every member a pointer, so that PATCH (RFC 7396
// merge patch) changes only what it names, and PUT and POST can tell a missing member.
type input struct {
	Name           *string            `json:"name"`
	Description    *string            `json:"description"`
	Status         *string            `json:"status"`
	Endpoint       *string            `json:"endpoint"`
	HTTPMethod     *string            `json:"http_method"`
	RequestFormat  *string            `json:"request_format"`
	Subscriptions  *[]string          `json:"subscriptions"`
	CustomHeaders  *map[string]string `json:"custom_headers"`
	Authentication *Auth              `json:"authentication"`
	ExternalSource json.RawMessage    `json:"external_source"`
	SigningSecret  *SigningSecret     `json:"signing_secret"`
	// Read-only members a client may send back as it read them: ignored.
	ID        json.RawMessage `json:"id"`
	CreatedAt json.RawMessage `json:"created_at"`
	CreatedBy json.RawMessage `json:"created_by"`
	UpdatedAt json.RawMessage `json:"updated_at"`
	UpdatedBy json.RawMessage `json:"updated_by"`
	URL       json.RawMessage `json:"url"`
}

// decodeInput reads {"webhook":{...}}: unknown members are refused, naming them.
func decodeInput(body []byte) (input, fieldErrors) {
	errs := fieldErrors{}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		errs.add("webhook", "the body must be a JSON object {\"webhook\":{...}}: %s", jsonProblem(err))
		return input{}, errs
	}
	raw, ok := env["webhook"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		errs.add("webhook", "is required: the body is {\"webhook\":{...}}")
		return input{}, errs
	}
	for k := range env {
		if k != "webhook" {
			errs.add(clean(k, 64), "unknown member: the body is {\"webhook\":{...}}")
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var in input
	if err := dec.Decode(&in); err != nil {
		field := "webhook"
		msg := jsonProblem(err)
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			field, msg = clean(strings.Trim(f, `"`), 64), "unknown field"
		} else if te, ok := err.(*json.UnmarshalTypeError); ok && te.Field != "" {
			field = te.Field
			msg = "must be " + jsonKind(te.Type.Kind().String())
		}
		errs.add(field, "%s", msg)
		return input{}, errs
	}
	return in, errs
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "of another type"
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if ok := asSyntax(err, &se); ok {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	return "invalid JSON"
}

func asSyntax(err error, se **json.SyntaxError) bool {
	s, ok := err.(*json.SyntaxError)
	if ok {
		*se = s
	}
	return ok
}

// apply writes in onto w (all of it for POST and PUT, the members present for PATCH) and
// checks the result. create is true for POST (a signing secret may be given).
func apply(w *Webhook, in input, create bool) fieldErrors {
	errs := fieldErrors{}
	if in.Name != nil {
		w.Name = strings.TrimSpace(*in.Name)
	}
	if in.Description != nil {
		w.Description = *in.Description
	}
	if in.Status != nil {
		w.Status = *in.Status
	}
	if in.Endpoint != nil {
		w.Endpoint = strings.TrimSpace(*in.Endpoint)
	}
	if in.HTTPMethod != nil {
		w.HTTPMethod = strings.ToUpper(*in.HTTPMethod)
	}
	if in.RequestFormat != nil {
		w.RequestFormat = *in.RequestFormat
	}
	if in.Subscriptions != nil {
		w.Subscriptions = append([]string(nil), (*in.Subscriptions)...)
	}
	if in.CustomHeaders != nil {
		w.CustomHeaders = *in.CustomHeaders
	}
	if in.Authentication != nil {
		a := *in.Authentication
		w.auth = &a
	}
	if len(in.ExternalSource) > 0 {
		if bytes.Equal(bytes.TrimSpace(in.ExternalSource), []byte("null")) {
			w.ExternalSource = nil
		} else {
			w.ExternalSource = append(json.RawMessage(nil), in.ExternalSource...)
		}
	}
	if in.SigningSecret != nil {
		if !create {
			errs.add("signing_secret", "is set at creation only: use POST /webhooks/{id}/signing_secret to reset it")
		} else {
			if in.SigningSecret.Algorithm != "" && in.SigningSecret.Algorithm != "SHA256" {
				errs.add("signing_secret.algorithm", "must be SHA256")
			}
			if n := len(in.SigningSecret.Secret); n < minSecretLen || n > maxSecretLen {
				errs.add("signing_secret.secret", "must be %d to %d characters", minSecretLen, maxSecretLen)
			} else {
				w.secret = in.SigningSecret.Secret
			}
		}
	}
	validate(w, errs)
	return errs
}

// defaults is a new webhook before its body is applied: what Zendesk assumes for members an
// event webhook may leave out.
func defaults() Webhook {
	return Webhook{Status: StatusActive, HTTPMethod: "POST", RequestFormat: "json", Subscriptions: []string{}, CustomHeaders: map[string]string{}}
}

var headerName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]{1,64}$`) // RFC 9110 §5.6.2 token

// reservedHeaders are set by the delivery itself and cannot be replaced by custom headers.
var reservedHeaders = map[string]bool{
	"authorization": true, "content-type": true, "content-length": true, "host": true,
	"user-agent": true, "transfer-encoding": true, "connection": true,
}

func validate(w *Webhook, errs fieldErrors) {
	switch {
	case w.Name == "":
		errs.add("name", "is required")
	case utf8.RuneCountInString(w.Name) > maxNameLen:
		errs.add("name", "must be at most %d characters", maxNameLen)
	case hasControl(w.Name):
		errs.add("name", "must not contain control characters")
	}
	if utf8.RuneCountInString(w.Description) > maxDescLen {
		errs.add("description", "must be at most %d characters", maxDescLen)
	}
	if w.Status != StatusActive && w.Status != StatusInactive {
		errs.add("status", "must be active or inactive")
	}
	if msg := checkEndpoint(w.Endpoint); msg != "" {
		errs.add("endpoint", "%s", msg)
	}
	switch w.HTTPMethod {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
	default:
		errs.add("http_method", "must be one of GET, POST, PUT, PATCH, DELETE")
	}
	switch w.RequestFormat {
	case "json", "xml", "form_encoded":
	default:
		errs.add("request_format", "must be json, xml or form_encoded")
	}
	events := false
	if len(w.Subscriptions) > maxSubscriptions {
		errs.add("subscriptions", "at most %d", maxSubscriptions)
	}
	seen := map[string]bool{}
	for i, s := range w.Subscriptions {
		field := fmt.Sprintf("subscriptions[%d]", i)
		switch {
		case seen[s]:
			errs.add(field, "is listed twice")
		case s == ConditionalTicketEvents:
		case !KnownSubscription(s):
			errs.add(field, "unknown event type %q: see GET /webhooks' documentation for the types Switchboard sends", clean(s, 80))
		default:
			events = true
		}
		seen[s] = true
	}
	// Zendesk: a webhook subscribed to events sends POST and JSON.
	if events && w.HTTPMethod != "POST" {
		errs.add("http_method", "must be POST for a webhook subscribed to events")
	}
	if events && w.RequestFormat != "json" {
		errs.add("request_format", "must be json for a webhook subscribed to events")
	}
	if len(w.CustomHeaders) > maxCustomHeaders {
		errs.add("custom_headers", "at most %d headers", maxCustomHeaders)
	}
	for k, v := range w.CustomHeaders {
		field := "custom_headers." + clean(k, 64)
		switch {
		case !headerName.MatchString(k):
			errs.add(field, "is not a valid header name")
		case reservedHeaders[strings.ToLower(k)] || strings.HasPrefix(strings.ToLower(k), "x-zendesk-"):
			errs.add(field, "is set by Switchboard and cannot be replaced")
		case len(v) > maxHeaderValue || strings.ContainsAny(v, "\r\n\x00"):
			errs.add(field, "must be at most %d characters, on one line", maxHeaderValue)
		}
	}
	if a := w.auth; a != nil {
		if a.AddPosition == "" {
			a.AddPosition = "header"
		}
		if a.AddPosition != "header" {
			errs.add("authentication.add_position", "must be header")
		}
		need := map[string][]string{"basic_auth": {"username", "password"}, "bearer_token": {"token"}, "api_key": {"name", "value"}}[a.Type]
		if need == nil {
			errs.add("authentication.type", "must be basic_auth, bearer_token or api_key")
		}
		for _, k := range need {
			v := a.Data[k]
			if v == "" || len(v) > maxHeaderValue || strings.ContainsAny(v, "\r\n\x00") {
				errs.add("authentication.data."+k, "is required, on one line, at most %d characters", maxHeaderValue)
			}
		}
		if a.Type == "api_key" && !headerName.MatchString(a.Data["name"]) {
			errs.add("authentication.data.name", "is not a valid header name")
		}
		for k := range a.Data {
			if !contains(need, k) {
				errs.add("authentication.data."+clean(k, 64), "unknown field for type %s", clean(a.Type, 32))
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkEndpoint says what is wrong with an endpoint URL, or "".
func checkEndpoint(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > maxEndpointLen {
		return fmt.Sprintf("must be at most %d characters", maxEndpointLen)
	}
	if hasControl(s) || strings.ContainsAny(s, " ") {
		return "must be a URL without spaces or control characters"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "is not a valid URL"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "must be an http or https URL"
	}
	if u.Host == "" || u.Hostname() == "" {
		return "must name a host"
	}
	if u.User != nil {
		// Credentials in the URL would end up in logs and in the API's answers.
		return "must not carry credentials: use authentication"
	}
	if u.Fragment != "" {
		return "must not have a fragment"
	}
	return ""
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return true
		}
	}
	return false
}

// clean shortens s and replaces control characters, for error messages quoting a client.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s
}

// ticketEventTypes are the kinds of ticket_events (migration 018's triggers on tickets and
// ticket_comments, 033's on a comment's privacy), Zendesk's ticket event types.
var ticketEventTypes = []string{"created", "status_changed", "comment_added", "agent_assignment_changed",
	"subject_changed", "priority_changed", "ticket_type_changed", "tags_changed", "external_id_changed",
	"submitter_changed", "task_due_at_changed", "comment_made_private", "comment_made_public"}

// The audit kinds that become ticket and user events (ticketing's audit trail), by domain.
var auditEventTypes = map[string][]string{
	"ticket":          {"requester_changed", "ticket_merged", "recording_deleted", "voicemail_read", "voicemail_closed", "voicemail_called_back"},
	"user":            {"identity_removed", "user_merged", "requester_changed"},
	"account_setting": {"settings_changed"},
}

// EventTypes lists every event type Switchboard sends, sorted: zen:event-type:call.* for the
// call events, zen:event-type:ticket.* for ticket changes (created, status_changed,
// comment_added, …) and, with user.* and account_setting.*, for the audit trail.
func EventTypes() []string {
	var out []string
	for _, t := range callevent.Types() {
		out = append(out, EventTypePrefix+t)
	}
	for _, k := range ticketEventTypes {
		out = append(out, EventTypePrefix+"ticket."+k)
	}
	for domain, kinds := range auditEventTypes {
		for _, k := range kinds {
			out = append(out, EventTypePrefix+domain+"."+k)
		}
	}
	sort.Strings(out)
	return out
}

// KnownSubscription reports whether s names an event type Switchboard sends, or all the
// types of a domain ("zen:event-type:call.*", "zen:event-type:ticket.*", …).
func KnownSubscription(s string) bool {
	rest, ok := strings.CutPrefix(s, EventTypePrefix)
	if !ok {
		return false
	}
	if domain, ok := strings.CutSuffix(rest, ".*"); ok {
		return domain == "call" || auditEventTypes[domain] != nil
	}
	for _, t := range EventTypes() {
		if t == s {
			return true
		}
	}
	// Kinds the audit trail gains later are delivered too: accept their shape.
	domain, kind, ok := strings.Cut(rest, ".")
	return ok && auditEventTypes[domain] != nil && auditKind.MatchString(kind)
}

// subscribed reports whether a webhook with subs receives events of type t.
func subscribed(subs []string, t string) bool {
	for _, s := range subs {
		if s == t {
			return true
		}
		if p, ok := strings.CutSuffix(s, "*"); ok && strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// newSecret is a fresh signing secret: 32 random bytes, base64 (Zendesk's secrets are the
// same length).
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhooks: signing secret: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// newID is a ULID (Zendesk's webhook ids are ULIDs): 48 bits of milliseconds and 80 random
// bits in Crockford's base32, so ids sort by creation time.
func newID(now time.Time) (string, error) {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		return "", fmt.Errorf("webhooks: id: %w", err)
	}
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	// 128 bits in 26 characters: the first carries 3 bits.
	out := make([]byte, 26)
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out), nil
}

var (
	idPattern = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
	auditKind = regexp.MustCompile(`^[a-z_]{1,64}$`)
)
