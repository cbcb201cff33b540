package ticketing

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Values of Settings.TicketCreationPoint.
const (
	CreateOnAccept     = "on_accept"
	CreateOnQueueEntry = "on_queue_entry"
)

// Values of Settings.AnonymousCallerPolicy.
const (
	AnonymousPlaceholderUser  = "placeholder_user"
	AnonymousAgentAsRequester = "agent_as_requester"
	AnonymousNoTicket         = "no_ticket"
)

// Values of Settings.UnownedNumberPolicy.
const (
	UnownedCreateUser        = "create_user"
	UnownedMostRecentContact = "most_recent_contact"
)

// Seconds is a duration written as a Go duration string in YAML ("10s", "1m") and as whole
// seconds in JSON, as the API shows every duration.
type Seconds time.Duration

// Duration returns s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) }

// MarshalJSON writes whole seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatInt(int64(time.Duration(s)/time.Second), 10)), nil
}

// UnmarshalJSON reads whole seconds (a JSON number) or a duration string.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		i, err := n.Int64()
		if err != nil {
			return fmt.Errorf("want whole seconds, got %s", n)
		}
		*s = Seconds(time.Duration(i) * time.Second)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("want whole seconds or a duration such as \"10s\"")
	}
	d, err := time.ParseDuration(str)
	if err != nil {
		return fmt.Errorf("want whole seconds or a duration such as \"10s\", got %q", str)
	}
	*s = Seconds(d)
	return nil
}

// MarshalYAML writes a duration string.
func (s Seconds) MarshalYAML() (any, error) { return time.Duration(s).String(), nil }

// UnmarshalYAML reads a duration string ("10s") or a bare number of seconds.
func (s *Seconds) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as \"10s\"", n.Line)
	}
	if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		*s = Seconds(time.Duration(i) * time.Second)
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: want a duration such as \"10s\", got %q", n.Line, n.Value)
	}
	*s = Seconds(d)
	return nil
}

// OutboundSettings are the global outbound-calling options of docs/rules.md (OB rules).
type OutboundSettings struct {
	PromptTicketChoice bool `yaml:"prompt_ticket_choice" json:"prompt_ticket_choice"`
	AllowNewTicket     bool `yaml:"allow_new_ticket" json:"allow_new_ticket"`
	AllowNoTicket      bool `yaml:"allow_no_ticket" json:"allow_no_ticket"`
	AllowEnteredNumber bool `yaml:"allow_entered_number" json:"allow_entered_number"`
}

// RecordingSettings are the global recording-access options (CD-6).
type RecordingSettings struct {
	AgentsCanAccess bool `yaml:"agents_can_access" json:"agents_can_access"`
}

// Kinds of ticket writes that write batching may hold (AP, WriteBatching.Kinds).
const (
	// BatchComments: the comments a call adds to its ticket after it exists — the recording
	// put on the voice comment (TU-5, SD-2).
	BatchComments = "comments"
	// BatchFields: the ticket fields a call sets after the ticket exists (csat, TU-8).
	BatchFields = "fields"
	// BatchAssignment: assignment updates — the agent who answers a ticket made at queue
	// entry (TC-4), a transfer (TU-7).
	BatchAssignment = "assignment"
)

// BatchKinds returns every kind of write that write batching can hold, in the order the
// documentation lists them: the default of WriteBatching.Kinds.
func BatchKinds() []string { return []string{BatchComments, BatchFields, BatchAssignment} }

// WriteBatching is the global write-batching option (AP).
type WriteBatching struct {
	Enabled bool    `yaml:"enabled" json:"enabled"`
	Window  Seconds `yaml:"window" json:"window"`
	// Kinds are the kinds of writes held for the window (BatchComments, BatchFields,
	// BatchAssignment); an event whose writes are of another kind is applied at once, and
	// takes the call's held events with it (a call's events are applied in order). Default:
	// all of them.
	Kinds []string `yaml:"kinds" json:"kinds"`
}

// Batches reports whether writes of kind are held for the window: batching is on and kind is
// one of Kinds.
func (w WriteBatching) Batches(kind string) bool {
	if !w.Enabled {
		return false
	}
	for _, k := range w.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Settings are the call → ticket settings of docs/rules.md. The global set is the default of every
// line; LineSettings override its per-line fields for one line.
type Settings struct {
	TicketCreationPoint         string  `yaml:"ticket_creation_point" json:"ticket_creation_point"`
	AbandonedCallsCreateTickets bool    `yaml:"abandoned_calls_create_tickets" json:"abandoned_calls_create_tickets"`
	AppendToOpenTicket          bool    `yaml:"append_to_open_ticket" json:"append_to_open_ticket"`
	AnonymousCallerPolicy       string  `yaml:"anonymous_caller_policy" json:"anonymous_caller_policy"`
	UnownedNumberPolicy         string  `yaml:"unowned_number_policy" json:"unowned_number_policy"`
	CallbackAppendWindow        Seconds `yaml:"callback_append_window" json:"callback_append_window"`
	// CallbackMaxDelay bounds how long after a call ended a callback still joins its ticket
	// under TU-4 (the caller calling back, or an agent's callback); 0 means no bound.
	CallbackMaxDelay Seconds           `yaml:"callback_max_delay" json:"callback_max_delay"`
	Outbound         OutboundSettings  `yaml:"outbound" json:"outbound"`
	Recordings       RecordingSettings `yaml:"recordings" json:"recordings"`
	// DefaultAssignee is the email of the agent who gets voicemail and abandoned tickets
	// (VM-2); empty means nobody.
	DefaultAssignee string        `yaml:"default_assignee" json:"default_assignee"`
	WriteBatching   WriteBatching `yaml:"write_batching" json:"write_batching"`
	PhoneValidation bool          `yaml:"phone_validation" json:"phone_validation"`
	// TicketSubject are the subjects of the tickets calls make (CF-5).
	TicketSubject SubjectTemplates `yaml:"ticket_subject" json:"ticket_subject"`
	// CustomDataFields map keys of a call's custom data to ticket fields (CF-4).
	CustomDataFields []DataField `yaml:"custom_data_fields" json:"custom_data_fields"`
}

// DefaultSettings returns the defaults of docs/rules.md ("Settings").
func DefaultSettings() Settings {
	return Settings{
		TicketCreationPoint:         CreateOnAccept,
		AbandonedCallsCreateTickets: true,
		AppendToOpenTicket:          true,
		AnonymousCallerPolicy:       AnonymousPlaceholderUser,
		UnownedNumberPolicy:         UnownedCreateUser,
		CallbackAppendWindow:        Seconds(10 * time.Second),
		CallbackMaxDelay:            Seconds(30 * time.Minute),
		Recordings:                  RecordingSettings{AgentsCanAccess: true},
		WriteBatching:               WriteBatching{Window: Seconds(10 * time.Second), Kinds: BatchKinds()},
		PhoneValidation:             true,
		TicketSubject:               DefaultSubjectTemplates(),
		CustomDataFields:            []DataField{},
	}
}

// LineSettings override the per-line settings for one line; a nil field keeps the global value.
type LineSettings struct {
	TicketCreationPoint         *string  `yaml:"ticket_creation_point" json:"ticket_creation_point,omitempty"`
	AbandonedCallsCreateTickets *bool    `yaml:"abandoned_calls_create_tickets" json:"abandoned_calls_create_tickets,omitempty"`
	AppendToOpenTicket          *bool    `yaml:"append_to_open_ticket" json:"append_to_open_ticket,omitempty"`
	AnonymousCallerPolicy       *string  `yaml:"anonymous_caller_policy" json:"anonymous_caller_policy,omitempty"`
	UnownedNumberPolicy         *string  `yaml:"unowned_number_policy" json:"unowned_number_policy,omitempty"`
	CallbackAppendWindow        *Seconds `yaml:"callback_append_window" json:"callback_append_window,omitempty"`
	CallbackMaxDelay            *Seconds `yaml:"callback_max_delay" json:"callback_max_delay,omitempty"`
	DefaultAssignee             *string  `yaml:"default_assignee" json:"default_assignee,omitempty"`
	PhoneValidation             *bool    `yaml:"phone_validation" json:"phone_validation,omitempty"`
	// TicketSubject overrides the global subject templates one by one: an empty template
	// keeps the global one (CF-5).
	TicketSubject *SubjectTemplates `yaml:"ticket_subject" json:"ticket_subject,omitempty"`
}

// Apply returns global with the overrides of l. With on_queue_entry the abandoned-call setting
// is forced true (docs/rules.md, "Settings").
func (l LineSettings) Apply(global Settings) Settings {
	s := global
	if l.TicketCreationPoint != nil {
		s.TicketCreationPoint = *l.TicketCreationPoint
	}
	if l.AbandonedCallsCreateTickets != nil {
		s.AbandonedCallsCreateTickets = *l.AbandonedCallsCreateTickets
	}
	if l.AppendToOpenTicket != nil {
		s.AppendToOpenTicket = *l.AppendToOpenTicket
	}
	if l.AnonymousCallerPolicy != nil {
		s.AnonymousCallerPolicy = *l.AnonymousCallerPolicy
	}
	if l.UnownedNumberPolicy != nil {
		s.UnownedNumberPolicy = *l.UnownedNumberPolicy
	}
	if l.CallbackAppendWindow != nil {
		s.CallbackAppendWindow = *l.CallbackAppendWindow
	}
	if l.CallbackMaxDelay != nil {
		s.CallbackMaxDelay = *l.CallbackMaxDelay
	}
	if l.DefaultAssignee != nil {
		s.DefaultAssignee = *l.DefaultAssignee
	}
	if l.PhoneValidation != nil {
		s.PhoneValidation = *l.PhoneValidation
	}
	if l.TicketSubject != nil {
		s.TicketSubject = l.TicketSubject.over(global.TicketSubject)
	}
	if s.TicketCreationPoint == CreateOnQueueEntry {
		s.AbandonedCallsCreateTickets = true
	}
	return s
}

// FieldError is one invalid setting: Field is its path below the settings ("outbound.allow_new_ticket").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"description"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

func oneOf(field, value string, allowed ...string) []FieldError {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return []FieldError{{field, fmt.Sprintf("%q is not allowed; use one of %s", value, strings.Join(allowed, ", "))}}
}

// Validate returns every problem with s, not just the first.
func (s Settings) Validate() []FieldError {
	var errs []FieldError
	errs = append(errs, oneOf("ticket_creation_point", s.TicketCreationPoint, CreateOnAccept, CreateOnQueueEntry)...)
	errs = append(errs, oneOf("anonymous_caller_policy", s.AnonymousCallerPolicy, AnonymousPlaceholderUser, AnonymousAgentAsRequester, AnonymousNoTicket)...)
	errs = append(errs, oneOf("unowned_number_policy", s.UnownedNumberPolicy, UnownedCreateUser, UnownedMostRecentContact)...)
	if s.TicketCreationPoint == CreateOnQueueEntry && !s.AbandonedCallsCreateTickets {
		errs = append(errs, FieldError{"abandoned_calls_create_tickets", "cannot be false with ticket_creation_point on_queue_entry: abandoned calls always have a ticket there"})
	}
	if s.CallbackAppendWindow < 0 {
		errs = append(errs, FieldError{"callback_append_window", "must not be negative"})
	}
	errs = append(errs, maxDelayErrors(s.CallbackMaxDelay)...)
	if s.Outbound.AllowNewTicket && !s.Outbound.PromptTicketChoice {
		errs = append(errs, FieldError{"outbound.allow_new_ticket", "can only be true when outbound.prompt_ticket_choice is true"})
	}
	if s.WriteBatching.Enabled {
		w := s.WriteBatching.Window.Duration()
		if w < time.Second || w > time.Minute || w%time.Second != 0 {
			errs = append(errs, FieldError{"write_batching.window", fmt.Sprintf("must be whole seconds from 1s to 60s, got %s", w)})
		}
		if len(s.WriteBatching.Kinds) == 0 {
			errs = append(errs, FieldError{"write_batching.kinds", fmt.Sprintf("names no kind of write; list some of %s, or set write_batching.enabled to false", strings.Join(BatchKinds(), ", "))})
		}
	}
	seen := map[string]bool{}
	for i, k := range s.WriteBatching.Kinds {
		field := fmt.Sprintf("write_batching.kinds[%d]", i)
		if fe := oneOf(field, k, BatchKinds()...); fe != nil {
			errs = append(errs, fe...)
		} else if seen[k] {
			errs = append(errs, FieldError{field, fmt.Sprintf("%q is listed twice", k)})
		}
		seen[k] = true
	}
	if s.DefaultAssignee != "" && !strings.Contains(s.DefaultAssignee, "@") {
		errs = append(errs, FieldError{"default_assignee", fmt.Sprintf("must be the email of an agent, got %q", s.DefaultAssignee)})
	}
	errs = append(errs, s.TicketSubject.validate(true)...)
	errs = append(errs, validateDataFields(s.CustomDataFields)...)
	return errs
}

// Validate returns every problem with the overrides of l applied over global.
func (l LineSettings) Validate(global Settings) []FieldError {
	var errs []FieldError
	if l.TicketCreationPoint != nil {
		errs = append(errs, oneOf("ticket_creation_point", *l.TicketCreationPoint, CreateOnAccept, CreateOnQueueEntry)...)
		if *l.TicketCreationPoint == CreateOnQueueEntry && l.AbandonedCallsCreateTickets != nil && !*l.AbandonedCallsCreateTickets {
			errs = append(errs, FieldError{"abandoned_calls_create_tickets", "cannot be false with ticket_creation_point on_queue_entry: abandoned calls always have a ticket there"})
		}
	}
	if l.AnonymousCallerPolicy != nil {
		errs = append(errs, oneOf("anonymous_caller_policy", *l.AnonymousCallerPolicy, AnonymousPlaceholderUser, AnonymousAgentAsRequester, AnonymousNoTicket)...)
	}
	if l.UnownedNumberPolicy != nil {
		errs = append(errs, oneOf("unowned_number_policy", *l.UnownedNumberPolicy, UnownedCreateUser, UnownedMostRecentContact)...)
	}
	if l.CallbackAppendWindow != nil && *l.CallbackAppendWindow < 0 {
		errs = append(errs, FieldError{"callback_append_window", "must not be negative"})
	}
	if l.CallbackMaxDelay != nil {
		errs = append(errs, maxDelayErrors(*l.CallbackMaxDelay)...)
	}
	if l.DefaultAssignee != nil && *l.DefaultAssignee != "" && !strings.Contains(*l.DefaultAssignee, "@") {
		errs = append(errs, FieldError{"default_assignee", fmt.Sprintf("must be the email of an agent, got %q", *l.DefaultAssignee)})
	}
	if l.TicketSubject != nil {
		errs = append(errs, l.TicketSubject.validate(false)...)
	}
	return errs
}

// maxDelayErrors checks callback_max_delay: whole seconds, not negative (0 is "no bound").
func maxDelayErrors(d Seconds) []FieldError {
	if d < 0 || d.Duration()%time.Second != 0 {
		return []FieldError{{"callback_max_delay", fmt.Sprintf("must be whole seconds, 0s (no bound) or more, got %s", d.Duration())}}
	}
	return nil
}
