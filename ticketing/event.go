package ticketing

import (
	"context"
	"time"
)

// Call lifecycle event types (CONTRACT.md §6).
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
	// call.ivr_selected
	MenuPath string `json:"menu_path,omitempty"`
	Language string `json:"language,omitempty"`
	// call.queued
	Queue string `json:"queue,omitempty"`
	// call.offered, call.answered
	AgentID int64 `json:"agent_id,omitempty"`
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
	Outcome    string `json:"outcome,omitempty"`
	*Durations `json:",omitempty"`
}

// Sink takes call lifecycle events. Emit returns once the event is durable; it never waits on
// a slow database (events are spooled locally while PostgreSQL is away).
type Sink interface {
	Emit(ctx context.Context, e Event) error
}
