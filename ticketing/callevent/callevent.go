// Package callevent is the call event contract: the lifecycle events a phone system emits for
// each call (call.started … call.ended), their types and outcomes, the call's durations, the sink
// that makes them durable, and their validation. The gateway's SIP layer and IVR emit them, the
// event log stores them, the ticketing engine applies them, and POST /api/v2/call_events takes
// them from any phone system in the same JSON shape (docs/events.md).
//
// It is a leaf: it imports nothing of Switchboard's, so every package that speaks events
// (sip, ivr, ticketing, ticketing/eventlog, internal/calljournal) shares one declaration.
package callevent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// FieldError is one problem with an event, naming its JSON field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"description"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// Call lifecycle event types (docs/events.md).
const (
	EventStarted        = "call.started"
	EventIVRSelected    = "call.ivr_selected"
	EventQueued         = "call.queued"
	EventOffered        = "call.offered"
	EventAnswered       = "call.answered"
	EventHeld           = "call.held"
	EventResumed        = "call.resumed"
	EventTransferred    = "call.transferred"
	EventVoicemail      = "call.voicemail"
	EventAbandoned      = "call.abandoned"
	EventRecordingReady = "call.recording_ready"
	EventCSAT           = "call.csat"
	EventEnded          = "call.ended"
)

// Call outcomes carried by call.ended.
const (
	OutcomeAnswered  = "answered"
	OutcomeAbandoned = "abandoned"
	OutcomeVoicemail = "voicemail"
	OutcomeNoAnswer  = "no_answer"
	OutcomeFailed    = "failed"
	OutcomeRejected  = "rejected"
)

// Where a call was abandoned (call.abandoned's where).
const (
	WhereIVR       = "ivr"
	WhereQueue     = "queue"
	WhereVoicemail = "voicemail"
)

// Values of Event.Channel: the kind of endpoint an agent took or placed the call on.
const (
	ChannelWebRTC = "webrtc"
	ChannelSIP    = "sip"
)

// Durations are a call's time components in whole seconds (CD-3): Duration is the total from
// the moment the gateway answered the carrier leg to the end.
type Durations struct {
	IVRTime      int64 `json:"ivr_time"`
	QueueTime    int64 `json:"queue_time"`
	RingTime     int64 `json:"ring_time"`
	TalkTime     int64 `json:"talk_time"`
	HoldTime     int64 `json:"hold_time"`
	TransferTime int64 `json:"transfer_time"`
	Duration     int64 `json:"duration"`
}

// Event is one call lifecycle event, in the one JSON shape used in process and on
// POST /call_events. Fields after At belong to particular types and are empty otherwise.
// Events of one call are applied in Seq order; a duplicate ID is a no-op.
type Event struct {
	ID     string    `json:"id"`
	CallID string    `json:"call_id"`
	Seq    int64     `json:"seq"`
	Type   string    `json:"type"`
	At     time.Time `json:"at"`

	// call.started
	Direction  string `json:"direction,omitempty"` // inbound | outbound
	From       string `json:"from,omitempty"`
	To         string `json:"to,omitempty"`
	Line       string `json:"line,omitempty"`
	CallerName string `json:"caller_name,omitempty"`
	Location   string `json:"location,omitempty"`
	// call.started of an outbound call placed by an agent (OB, TB rules): the contact,
	// the ticket chosen (TC-6, TU-2), "existing" | "new" | "none" (OB-3, OB-4), and whether
	// the number was typed in rather than taken from the contact (OB-5, CD-8).
	RequesterID   int64  `json:"requester_id,omitempty"`
	TicketID      int64  `json:"ticket_id,omitempty"`
	TicketChoice  string `json:"ticket_choice,omitempty"`
	EnteredNumber bool   `json:"entered_number,omitempty"`
	// call.ivr_selected; Language also on an outbound call.started: the calling line's
	// language (OB-7).
	MenuPath string `json:"menu_path,omitempty"`
	Language string `json:"language,omitempty"`
	// call.queued
	Queue string `json:"queue,omitempty"`
	// call.offered, call.answered
	AgentID int64 `json:"agent_id,omitempty"`
	// Channel, on call.answered (and on call.started of an agent's outbound call), is the kind
	// of endpoint the agent took the call on: "webrtc" for the browser softphone, "sip" for a
	// SIP phone; empty when unknown (an outside system that does not say). CF-1: a ticket made
	// by a call taken or placed on the softphone has session_type webrtc.
	Channel string `json:"channel,omitempty"`
	// call.transferred
	FromAgentID int64 `json:"from_agent_id,omitempty"`
	ToAgentID   int64 `json:"to_agent_id,omitempty"`
	// call.voicemail, call.recording_ready
	RecordingID string `json:"recording_id,omitempty"`
	Seconds     int64  `json:"seconds,omitempty"`
	// call.abandoned: ivr | queue | voicemail
	Where string `json:"where,omitempty"`
	// call.csat
	Score int `json:"score,omitempty"`
	// call.ended
	Outcome string `json:"outcome,omitempty"`
	// Cause, on call.ended, says why the call ended when it is not the usual hang-up: "crash"
	// when the gateway closed the call at its next start after the process died.
	Cause      string `json:"cause,omitempty"`
	*Durations `json:",omitempty"`
}

// Sink takes call lifecycle events. Emit returns once the event is durable; it never waits on
// a slow database (events are spooled locally while PostgreSQL is away).
type Sink interface {
	Emit(ctx context.Context, e Event) error
}

// eventTypes lists the known event types.
var eventTypes = map[string]bool{
	EventStarted: true, EventIVRSelected: true, EventQueued: true, EventOffered: true,
	EventAnswered: true, EventHeld: true, EventResumed: true, EventTransferred: true,
	EventVoicemail: true, EventAbandoned: true, EventRecordingReady: true, EventCSAT: true,
	EventEnded: true,
}

// Validate returns every problem with e, each naming its JSON field. A valid event can be
// stored and applied; the gateway's own events are always valid.
func Validate(e Event) []FieldError {
	var errs []FieldError
	add := func(field, msg string) { errs = append(errs, FieldError{field, msg}) }
	if !isUUID(e.ID) {
		add("id", "must be a UUID such as 0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1")
	}
	if e.CallID == "" || len(e.CallID) > 200 {
		add("call_id", "is required, at most 200 characters")
	}
	if e.Seq < 1 {
		add("seq", "must be a positive integer: the event's position in its call, from 1")
	}
	if !eventTypes[e.Type] {
		add("type", fmt.Sprintf("%q is not an event type; use one of call.started, call.ivr_selected, call.queued, call.offered, call.answered, call.held, call.resumed, call.transferred, call.voicemail, call.abandoned, call.recording_ready, call.csat, call.ended", e.Type))
	}
	if e.At.IsZero() {
		add("at", "is required: an RFC 3339 time")
	}
	for _, f := range controlCharFields(e) {
		add(f.Field, f.Message)
	}
	switch e.Channel {
	case "", ChannelWebRTC, ChannelSIP:
	default:
		add("channel", "must be webrtc or sip")
	}
	switch e.Type {
	case EventStarted:
		if e.Direction != "inbound" && e.Direction != "outbound" {
			add("direction", "must be inbound or outbound")
		}
		switch e.TicketChoice {
		case "", "existing", "new", "none":
		default:
			add("ticket_choice", "must be existing, new or none")
		}
	case EventQueued:
		if e.Queue == "" {
			add("queue", "is required for call.queued")
		}
	case EventOffered:
		if e.AgentID <= 0 {
			add("agent_id", "is required for call.offered")
		}
	case EventTransferred:
		if e.ToAgentID <= 0 {
			add("to_agent_id", "is required for call.transferred")
		}
	case EventAbandoned:
		if e.Where != WhereIVR && e.Where != WhereQueue && e.Where != WhereVoicemail {
			add("where", "must be ivr, queue or voicemail")
		}
	case EventRecordingReady, EventVoicemail:
		if e.RecordingID == "" {
			add("recording_id", "is required for "+e.Type)
		}
	case EventCSAT:
		if e.Score < 1 || e.Score > 5 {
			add("score", "must be from 1 to 5")
		}
	case EventEnded:
		switch e.Outcome {
		case OutcomeAnswered, OutcomeAbandoned, OutcomeVoicemail, OutcomeNoAnswer, OutcomeFailed, OutcomeRejected:
		default:
			add("outcome", "must be answered, abandoned, voicemail, no_answer, failed or rejected")
		}
		if len(e.Cause) > 64 || strings.IndexFunc(e.Cause, func(r rune) bool { return !('a' <= r && r <= 'z' || r == '_') }) >= 0 {
			add("cause", "must be at most 64 characters of a-z and _, such as crash")
		}
		if d := e.Durations; d != nil {
			for name, v := range map[string]int64{"ivr_time": d.IVRTime, "queue_time": d.QueueTime, "ring_time": d.RingTime,
				"talk_time": d.TalkTime, "hold_time": d.HoldTime, "transfer_time": d.TransferTime, "duration": d.Duration} {
				if v < 0 {
					add(name, "must not be negative")
				}
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// controlCharFields reports every string field of e holding a C0 control character (U+0000 to
// U+001F) or DEL (U+007F). None of the event's strings — ids, numbers, names, places, queue and
// menu names, enumerations — has a use for a tab or a line break, let alone a NUL, which
// PostgreSQL refuses outright in text and jsonb (SQLSTATE 22021, 22P05); they are refused here,
// with the field named, rather than stored. Every string field is checked, found through the
// struct's JSON names, so that a field added to Event is covered without a second list.
func controlCharFields(e Event) []FieldError {
	var errs []FieldError
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf, fv := t.Field(i), v.Field(i)
			if sf.Anonymous && fv.Kind() == reflect.Pointer {
				if !fv.IsNil() && fv.Elem().Kind() == reflect.Struct {
					walk(fv.Elem())
				}
				continue
			}
			if fv.Kind() != reflect.String || !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = sf.Name
			}
			if i := strings.IndexFunc(fv.String(), isControl); i >= 0 {
				errs = append(errs, FieldError{name, fmt.Sprintf("contains the control character U+%04X at byte %d: control characters (U+0000 to U+001F, U+007F) are not allowed", fv.String()[i], i)})
			}
		}
	}
	walk(reflect.ValueOf(e))
	return errs
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Decode reads one event from JSON strictly (unknown fields and wrong types are errors
// naming the field) and validates it.
func Decode(raw []byte) (Event, []FieldError) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "event"
			}
			return Event{}, []FieldError{{field, fmt.Sprintf("must be a %s, not a JSON %s", eventJSONType(te.Type.Kind().String()), te.Value)}}
		case errors.As(err, &se):
			return Event{}, []FieldError{{"event", "malformed JSON: " + se.Error()}}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return Event{}, []FieldError{{name, "is not a field of call events"}}
		default:
			return Event{}, []FieldError{{"event", strings.TrimPrefix(err.Error(), "json: ")}}
		}
	}
	return e, Validate(e)
}

func eventJSONType(kind string) string {
	switch kind {
	case "int", "int64", "int32", "uint8":
		return "whole number"
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct":
		return "object or time"
	}
	return kind
}
