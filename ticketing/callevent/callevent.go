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
	"unicode"
	"unicode/utf8"
)

// FieldError is one problem with an event, naming its JSON field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"description"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// Call lifecycle event types (docs/events.md).
const (
	EventStarted     = "call.started"
	EventIVRSelected = "call.ivr_selected"
	EventQueued      = "call.queued"
	EventOffered     = "call.offered"
	EventAnswered    = "call.answered"
	EventHeld        = "call.held"
	EventResumed     = "call.resumed"
	EventTransferred = "call.transferred"
	// EventTransferStarted: the agent started a transfer whose target must answer first (a
	// consult transfer, or a blind one to an outside number); the caller hears music and the
	// time until the transfer completes or is given up counts as transfer time (CD-3).
	EventTransferStarted = "call.transfer_started"
	EventVoicemail       = "call.voicemail"
	EventAbandoned       = "call.abandoned"
	EventRecordingReady  = "call.recording_ready"
	EventCSAT            = "call.csat"
	EventEnded           = "call.ended"
	// EventCallbackRequested: the caller, waiting in queue, pressed the queue's callback key:
	// their call ends (outcome callback) and they keep their place; when their turn comes an
	// agent accepts the callback and the gateway calls them back (a new outbound call whose
	// call.started names this call in callback_of).
	EventCallbackRequested = "call.callback_requested"
	// EventCallbackDropped: the last attempt of a queue callback was not answered (busy, no
	// answer, failed); the callback is given up. It comes on that attempt's call, before its
	// call.ended, with callback_of and attempts.
	EventCallbackDropped = "call.callback_dropped"
)

// Reasons of call.callback_dropped (Event.Reason).
const (
	// CallbackDropNotAnswered: the last attempt was not answered (busy, no answer, failed).
	CallbackDropNotAnswered = "not_answered"
	// CallbackDropQueueGone: taken up again after a restart or a node's loss, the callback's
	// queue no longer exists (or takes no callbacks): nobody would take it.
	CallbackDropQueueGone = "queue_gone"
)

// Call outcomes carried by call.ended.
const (
	OutcomeAnswered  = "answered"
	OutcomeAbandoned = "abandoned"
	OutcomeVoicemail = "voicemail"
	OutcomeNoAnswer  = "no_answer"
	OutcomeFailed    = "failed"
	OutcomeRejected  = "rejected"
	// OutcomeCallback: the caller left the queue asking to be called back
	// (call.callback_requested): neither answered nor abandoned.
	OutcomeCallback = "callback"
)

// Who ended a call (call.ended's hangup_by).
const (
	HangupByCaller  = "caller"  // the party who placed the call: the carrier's caller, or the agent of an outbound call
	HangupByCallee  = "callee"  // the party called: the agent or far end of an inbound call, the dialled number of an outbound one
	HangupByGateway = "gateway" // the gateway: a timeout, a shutdown, a refusal, the IVR or voicemail finishing
)

// What ended a call (call.ended's cause).
const (
	CauseBye            = "bye"
	CauseCancel         = "cancel"
	CauseRejected       = "rejected"
	CauseMediaTimeout   = "media_timeout"
	CauseSessionExpired = "session_expired"
	CauseAckTimeout     = "ack_timeout"
	CauseShutdown       = "shutdown"
	CauseCallControl    = "call_control"
	CauseCrash          = "crash"
	// CauseNodeLost: another gateway node closed the call because the node running it
	// stopped beating in the database (killed, crashed, powered off or cut off from it).
	CauseNodeLost = "node_lost"
)

// MaxNodeLen bounds call.started's node (a node name).
const MaxNodeLen = 128

// Bounds of the SIP Call-IDs an event carries.
const (
	MaxSIPCallIDs   = 32
	MaxSIPCallIDLen = 256
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
	// Node, on call.started, names the gateway node the call runs on (its configured node
	// name). The gateway sets it; when that node is lost, another node closes the call
	// (cause node_lost). Events from outside phone systems carry none: their calls belong
	// to no node (POST /call_events refuses the field).
	Node string `json:"node,omitempty"`
	// call.started of an outbound call placed by an agent (OB, TB rules): the contact,
	// the ticket chosen (TC-6, TU-2), "existing" | "new" | "none" (OB-3, OB-4), and whether
	// the number was typed in rather than taken from the contact (OB-5, CD-8).
	// Trunk names the SIP trunk the call came in on or went out over (a trunk's name in the
	// configuration); SIPCallID is the Call-ID of the call's first SIP leg (the carrier's
	// INVITE of an inbound call), to find the call in the carrier's records and SIP traces.
	Trunk         string `json:"trunk,omitempty"`
	SIPCallID     string `json:"sip_call_id,omitempty"`
	RequesterID   int64  `json:"requester_id,omitempty"`
	TicketID      int64  `json:"ticket_id,omitempty"`
	TicketChoice  string `json:"ticket_choice,omitempty"`
	EnteredNumber bool   `json:"entered_number,omitempty"`
	// call.ivr_selected; Language also on an outbound call.started: the calling line's
	// language (OB-7).
	MenuPath string `json:"menu_path,omitempty"`
	Language string `json:"language,omitempty"`
	// Data, on call.started and call.ivr_selected, is the call's custom data: what an
	// integration knows about the call ({"account":"12345"}) or what the caller entered. The
	// ticketing engine maps it to ticket fields by configuration (CF-4). At most MaxDataKeys
	// keys (ValidDataKey), each value one line of at most MaxDataValue bytes.
	Data Data `json:"data,omitempty"`
	// call.queued, call.callback_requested, call.callback_dropped
	Queue string `json:"queue,omitempty"`
	// CallbackOf, on call.started of a queue callback's attempt and on call.callback_dropped,
	// is the id of the inbound call whose caller asked to be called back (TU-4: the attempt
	// joins that call's ticket); Attempt is the attempt's number, from 1.
	CallbackOf string `json:"callback_of,omitempty"`
	Attempt    int    `json:"attempt,omitempty"`
	// Reason, on call.callback_dropped, says why the callback was given up: not_answered or
	// queue_gone (CallbackDrop*); at most 64 characters of a-z and _.
	Reason string `json:"reason,omitempty"`
	// call.offered, call.answered
	AgentID int64 `json:"agent_id,omitempty"`
	// Channel, on call.answered (and on call.started of an agent's outbound call), is the kind
	// of endpoint the agent took the call on: "webrtc" for the browser softphone, "sip" for a
	// SIP phone; empty when unknown (an outside system that does not say). CF-1: a ticket made
	// by a call taken or placed on the softphone has session_type webrtc.
	Channel string `json:"channel,omitempty"`
	// call.transferred, call.transfer_started: the agent who transferred and the target — an
	// agent (ToAgentID), an outside number dialled through the trunk (ToNumber, E.164) or, on
	// call.transfer_started, a queue (Queue). TransferMode, on call.transfer_started, is
	// "blind" or "consult".
	FromAgentID  int64  `json:"from_agent_id,omitempty"`
	ToAgentID    int64  `json:"to_agent_id,omitempty"`
	ToNumber     string `json:"to_number,omitempty"`
	TransferMode string `json:"transfer_mode,omitempty"`
	// call.voicemail, call.recording_ready
	RecordingID string `json:"recording_id,omitempty"`
	Seconds     int64  `json:"seconds,omitempty"`
	// call.abandoned: ivr | queue | voicemail
	Where string `json:"where,omitempty"`
	// call.csat
	Score int `json:"score,omitempty"`
	// call.ended
	Outcome string `json:"outcome,omitempty"`
	// Cause, on call.ended, says what ended the call: bye (a BYE), cancel (the caller gave up
	// before the answer), rejected (a final error response), media_timeout, session_expired
	// (RFC 4028), ack_timeout, shutdown, call_control (the IVR, queue or voicemail finished
	// the call), or crash when the gateway closed the call at its next start after the
	// process died. HangupBy says who: caller, callee (the agent or far end called) or gateway.
	Cause    string `json:"cause,omitempty"`
	HangupBy string `json:"hangup_by,omitempty"`
	// SIPStatus and SIPReason, on call.ended, are the final response of the call's setup: what
	// the gateway answered the carrier's INVITE (200, 487 after a CANCEL, 486, 503 …) or, for
	// an outbound call, what the far end answered ours. SIPCallIDs lists the Call-ID of every
	// SIP leg of the call, the first leg first (the carrier's, then those the gateway placed).
	SIPStatus  int     `json:"sip_status,omitempty"`
	SIPReason  string  `json:"sip_reason,omitempty"`
	SIPCallIDs CallIDs `json:"sip_call_ids,omitempty"`
	*Durations `json:",omitempty"`
}

// Data is an event's custom data, a JSON object of strings. It is held as its canonical JSON
// text (keys sorted) rather than as a map so that Event stays a comparable value: events are
// compared with == (the call journal's crash repair, tests), and two events with the same data
// are equal. The zero value is no data. Build one with NewData, read it with Map.
type Data string

// CallIDs is a list of SIP Call-IDs (call.ended's sip_call_ids), held as one string — the
// Call-IDs joined by single spaces; a Call-ID is a "word" of RFC 3261 §25.1 and holds no
// white space — so that an Event stays a comparable value. In JSON it is an array of strings.
type CallIDs string

// NewCallIDs builds the list; white space inside an id is dropped, empty ids are skipped.
func NewCallIDs(ids ...string) CallIDs {
	var keep []string
	for _, id := range ids {
		if id = strings.Join(strings.Fields(id), ""); id != "" {
			keep = append(keep, id)
		}
	}
	return CallIDs(strings.Join(keep, " "))
}

// List returns the Call-IDs in order.
func (c CallIDs) List() []string { return strings.Fields(string(c)) }

// MarshalJSON writes the list as a JSON array.
func (c CallIDs) MarshalJSON() ([]byte, error) {
	l := c.List()
	if l == nil {
		l = []string{}
	}
	return json.Marshal(l)
}

// UnmarshalJSON reads a JSON array of strings; an id holding white space is refused (no
// Call-ID does).
func (c *CallIDs) UnmarshalJSON(b []byte) error {
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return &fieldValueError{"must be an array of strings (SIP Call-IDs)"}
	}
	for i, id := range l {
		if id == "" || strings.IndexFunc(id, unicode.IsSpace) >= 0 {
			return &fieldValueError{fmt.Sprintf("entry %d must be a Call-ID: not empty, no white space", i)}
		}
	}
	*c = CallIDs(strings.Join(l, " "))
	return nil
}

// fieldValueError is a field's own unmarshaler refusing its value; Decode reports it on the
// field.
type fieldValueError struct{ msg string }

func (e *fieldValueError) Error() string { return e.msg }

// NewData returns m as Data; an empty or nil m is no data.
func NewData(m map[string]string) Data {
	if len(m) == 0 {
		return ""
	}
	b, err := json.Marshal(m) // encoding/json sorts map keys: one text per object
	if err != nil {
		return "" // a map of strings always marshals
	}
	return Data(b)
}

// Map returns the data as a map (nil for none, or for text that is no object of strings).
func (d Data) Map() map[string]string {
	if d == "" {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(d), &m); err != nil {
		return nil
	}
	return m
}

// MarshalJSON writes the object.
func (d Data) MarshalJSON() ([]byte, error) {
	if d == "" {
		return []byte("null"), nil
	}
	if !json.Valid([]byte(d)) {
		return nil, errors.New("callevent: data is not JSON")
	}
	return []byte(d), nil
}

// dataError is a data object of the wrong shape, reported on the field "data".
type dataError struct{ msg string }

func (e *dataError) Error() string { return e.msg }

// UnmarshalJSON reads an object of strings (null: no data).
func (d *Data) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = ""
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return &dataError{"must be an object of strings"}
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return &dataError{fmt.Sprintf("every value must be a string; %q is not", truncate(k, 80))}
		}
		m[k] = s
	}
	*d = NewData(m)
	if *d == "" {
		*d = "{}" // an empty object sent is kept as sent, so that validation sees it
	}
	return nil
}

// Bounds of Event.Data.
const (
	MaxDataKeys  = 32
	MaxDataKey   = 64
	MaxDataValue = 1024
)

// ValidDataKey reports whether k can be a key of Event.Data: 1 to MaxDataKey characters of
// ASCII letters, digits, '_', '-' and '.'. Keys are names a configuration refers to, so they
// are refused rather than cleaned.
func ValidDataKey(k string) bool {
	if k == "" || len(k) > MaxDataKey {
		return false
	}
	for _, r := range k {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// validateData checks the data object; its problems name the key ("data.account").
func validateData(e Event, add func(field, msg string)) {
	if e.Data == "" {
		return
	}
	if e.Type != EventStarted && e.Type != EventIVRSelected {
		add("data", "is taken only on call.started and call.ivr_selected")
		return
	}
	data := e.Data.Map()
	if data == nil && e.Data != "{}" {
		add("data", "must be an object of strings")
		return
	}
	if len(data) > MaxDataKeys {
		add("data", fmt.Sprintf("has %d keys; at most %d", len(data), MaxDataKeys))
		return
	}
	for _, k := range slicesSorted(data) {
		v := data[k]
		if !ValidDataKey(k) {
			add("data", fmt.Sprintf("key %q is not a data key: 1 to %d characters of letters, digits, '_', '-' and '.'", truncate(k, 80), MaxDataKey))
			continue
		}
		switch {
		case len(v) > MaxDataValue:
			add("data."+k, fmt.Sprintf("is %d bytes long; at most %d", len(v), MaxDataValue))
		case !utf8.ValidString(v):
			add("data."+k, "is not valid UTF-8")
		case strings.IndexFunc(v, isControl) >= 0:
			i := strings.IndexFunc(v, isControl)
			add("data."+k, fmt.Sprintf("contains the control character U+%04X at byte %d: control characters (U+0000 to U+001F, U+007F) are not allowed", v[i], i))
		}
	}
}

func slicesSorted(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// Sink takes call lifecycle events. Emit returns once the event is durable; it never waits on
// a slow database (events are spooled locally while PostgreSQL is away).
type Sink interface {
	Emit(ctx context.Context, e Event) error
}

// eventTypes lists the known event types.
var eventTypes = map[string]bool{
	EventStarted: true, EventIVRSelected: true, EventQueued: true, EventOffered: true,
	EventAnswered: true, EventHeld: true, EventResumed: true, EventTransferred: true, EventTransferStarted: true,
	EventVoicemail: true, EventAbandoned: true, EventRecordingReady: true, EventCSAT: true,
	EventEnded: true, EventCallbackRequested: true, EventCallbackDropped: true,
}

// Types returns every event type, sorted.
func Types() []string {
	ts := make([]string, 0, len(eventTypes))
	for t := range eventTypes {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
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
		add("type", fmt.Sprintf("%q is not an event type; use one of call.started, call.ivr_selected, call.queued, call.offered, call.answered, call.held, call.resumed, call.transfer_started, call.transferred, call.voicemail, call.abandoned, call.recording_ready, call.csat, call.ended, call.callback_requested, call.callback_dropped", e.Type))
	}
	if e.At.IsZero() {
		add("at", "is required: an RFC 3339 time")
	}
	for _, f := range controlCharFields(e) {
		add(f.Field, f.Message)
	}
	if len(e.Node) > MaxNodeLen {
		add("node", fmt.Sprintf("must be at most %d bytes", MaxNodeLen))
	}
	switch e.Channel {
	case "", ChannelWebRTC, ChannelSIP:
	default:
		add("channel", "must be webrtc or sip")
	}
	validateData(e, add)
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
		if len(e.Trunk) > 64 {
			add("trunk", "must be at most 64 characters")
		}
		if len(e.SIPCallID) > MaxSIPCallIDLen {
			add("sip_call_id", fmt.Sprintf("must be at most %d characters", MaxSIPCallIDLen))
		}
	case EventQueued:
		if e.Queue == "" {
			add("queue", "is required for call.queued")
		}
	case EventCallbackRequested:
		if e.Queue == "" {
			add("queue", "is required for call.callback_requested")
		}
	case EventCallbackDropped:
		if e.CallbackOf == "" || len(e.CallbackOf) > 200 {
			add("callback_of", "is required for call.callback_dropped, at most 200 characters")
		}
		if e.Attempt < 1 {
			add("attempt", "is required for call.callback_dropped: the last attempt's number, from 1")
		}
		if len(e.Reason) > 64 || strings.IndexFunc(e.Reason, func(r rune) bool { return !('a' <= r && r <= 'z' || r == '_') }) >= 0 {
			add("reason", "must be at most 64 characters of a-z and _")
		}
	case EventOffered:
		if e.AgentID <= 0 {
			add("agent_id", "is required for call.offered")
		}
	case EventTransferred:
		if (e.ToAgentID > 0) == (e.ToNumber != "") || e.ToAgentID < 0 {
			add("to_agent_id", "call.transferred needs exactly one of to_agent_id (an agent) or to_number (an outside number)")
		}
		validateToNumber(e, add)
	case EventTransferStarted:
		n := 0
		for _, set := range []bool{e.ToAgentID > 0, e.ToNumber != "", e.Queue != ""} {
			if set {
				n++
			}
		}
		if n != 1 || e.ToAgentID < 0 {
			add("to_agent_id", "call.transfer_started needs exactly one of to_agent_id, queue or to_number")
		}
		if e.TransferMode != TransferBlind && e.TransferMode != TransferConsult {
			add("transfer_mode", "must be blind or consult")
		}
		validateToNumber(e, add)
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
		case OutcomeAnswered, OutcomeAbandoned, OutcomeVoicemail, OutcomeNoAnswer, OutcomeFailed, OutcomeRejected, OutcomeCallback:
		default:
			add("outcome", "must be answered, abandoned, voicemail, no_answer, failed, rejected or callback")
		}
		if len(e.Cause) > 64 || strings.IndexFunc(e.Cause, func(r rune) bool { return !('a' <= r && r <= 'z' || r == '_') }) >= 0 {
			add("cause", "must be at most 64 characters of a-z and _, such as crash")
		}
		switch e.HangupBy {
		case "", HangupByCaller, HangupByCallee, HangupByGateway:
		default:
			add("hangup_by", "must be caller, callee or gateway")
		}
		if e.SIPStatus != 0 && (e.SIPStatus < 100 || e.SIPStatus > 699) {
			add("sip_status", "must be a SIP status code from 100 to 699")
		}
		if len(e.SIPReason) > 128 {
			add("sip_reason", "must be at most 128 characters")
		}
		ids := e.SIPCallIDs.List()
		if len(ids) > MaxSIPCallIDs {
			add("sip_call_ids", fmt.Sprintf("must list at most %d Call-IDs", MaxSIPCallIDs))
		}
		for i, id := range ids {
			if len(id) > MaxSIPCallIDLen { // control characters: controlCharFields
				add("sip_call_ids", fmt.Sprintf("entry %d must be at most %d characters", i, MaxSIPCallIDLen))
				break
			}
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

// Transfer modes (call.transfer_started's transfer_mode).
const (
	TransferBlind   = "blind"   // the agent lets go once the target answers
	TransferConsult = "consult" // the agent talks to the target first, then completes or returns
)

// MaxToNumberLen bounds to_number.
const MaxToNumberLen = 32

// validateToNumber checks to_number: "+" and digits, E.164's shape.
func validateToNumber(e Event, add func(field, msg string)) {
	if e.ToNumber == "" {
		return
	}
	ok := len(e.ToNumber) >= 3 && len(e.ToNumber) <= MaxToNumberLen && e.ToNumber[0] == '+'
	for _, r := range e.ToNumber[min(1, len(e.ToNumber)):] {
		ok = ok && '0' <= r && r <= '9'
	}
	if !ok {
		add("to_number", "must be an E.164 number such as +15557770000")
	}
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
// naming the field) and validates it. It reads events from outside (POST /call_events), which
// name no node.
func Decode(raw []byte) (Event, []FieldError) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var de *dataError
		switch {
		case errors.As(err, &de):
			return Event{}, []FieldError{{"data", de.msg}}
		case errors.As(err, &se):
			return Event{}, []FieldError{{"event", "malformed JSON: " + se.Error()}}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return Event{}, []FieldError{{name, "is not a field of call events"}}
		case errors.As(err, &te) && te.Field != "":
			// The field path names the embedded struct a promoted field belongs to
			// ("Durations.duration"); the JSON field is its last element.
			field := te.Field[strings.LastIndex(te.Field, ".")+1:]
			return Event{}, []FieldError{{field, fmt.Sprintf("must be a %s, not a JSON %s", eventJSONType(te.Type.Kind().String()), te.Value)}}
		default:
			// A field's own unmarshaler failed (time.Time for "at": a string that is no
			// RFC 3339 time, or no string at all): encoding/json does not say which field,
			// so each member is decoded alone to find it.
			if f, msg, ok := failingField(raw); ok {
				return Event{}, []FieldError{{f, msg}}
			}
			if errors.As(err, &te) {
				return Event{}, []FieldError{{"event", fmt.Sprintf("must be a JSON object, not a JSON %s", te.Value)}}
			}
			return Event{}, []FieldError{{"event", strings.TrimPrefix(err.Error(), "json: ")}}
		}
	}
	fe := Validate(e)
	if e.Node != "" {
		// Only the gateway node that runs a call names it: an outside system naming a node
		// would have that node's loss close its calls.
		fe = append(fe, FieldError{"node", "is set by the gateway node that runs the call; events from outside name no node"})
	}
	return e, fe
}

// failingField decodes each member of the JSON object raw on its own into an Event and
// returns the first (in name order) that fails, with the reason.
func failingField(raw []byte) (field, msg string, ok bool) {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return "", "", false
	}
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		one, err := json.Marshal(map[string]json.RawMessage{n: members[n]})
		if err != nil {
			continue
		}
		var e Event
		err = json.Unmarshal(one, &e)
		if err == nil {
			continue
		}
		var te *json.UnmarshalTypeError
		var fe *fieldValueError
		if errors.As(err, &fe) {
			return n, fe.msg, true
		}
		if errors.As(err, &te) {
			return n, fmt.Sprintf("must be a %s, not a JSON %s", eventJSONType(te.Type.Kind().String()), te.Value), true
		}
		// Only time fields (at) have an unmarshaler of their own.
		return n, `must be an RFC 3339 time in a JSON string, such as "2026-11-22T10:00:00Z"`, true
	}
	return "", "", false
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
