package ticketing

import (
	"context"
	"errors"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Call is a call record in the shape of the API (docs/api.md): who, where it went, how it
// ended, and its durations in whole seconds (CD-3).
type Call struct {
	ID        string  `json:"id"`
	Direction string  `json:"direction"`
	From      *string `json:"from"`
	To        *string `json:"to"`
	Line      *string `json:"line"`
	// FromLine is the line an outbound call was placed from (OB-7): its number, the caller ID
	// the callee was shown (the same as Line); nil for inbound calls.
	FromLine    *string `json:"from_line"`
	CallerName  *string `json:"caller_name"`
	Location    *string `json:"location"`
	State       string  `json:"state"`
	TicketID    *int64  `json:"ticket_id"`
	RequesterID *int64  `json:"requester_id"`
	AgentID     *int64  `json:"agent_id"`
	Queue       *string `json:"queue"`
	MenuPath    *string `json:"menu_path"`
	Language    *string `json:"language"`
	Outcome     *string `json:"outcome"`
	StartedAt   *Time   `json:"started_at"`
	AnsweredAt  *Time   `json:"answered_at"`
	EndedAt     *Time   `json:"ended_at"`
	// The durations in whole seconds (CD-3), as call.ended carries them.
	callevent.Durations
	RecordingID *string `json:"recording_id"`
	CSAT        *int    `json:"csat"`
	// Data is the call's custom data (call.started and call.ivr_selected's data, CF-4).
	Data map[string]string `json:"data"`
	// What the phone system knows of the call's SIP side: the trunk, the SIP Call-ID of each
	// leg (the first leg's first), who ended the call (caller, callee, gateway) and how
	// (bye, cancel, media_timeout, …), and the final SIP response of its setup.
	Trunk       *string  `json:"trunk"`
	SIPCallIDs  []string `json:"sip_call_ids"`
	HangupBy    *string  `json:"hangup_by"`
	HangupCause *string  `json:"hangup_cause"`
	SIPStatus   *int     `json:"sip_status"`
	SIPReason   *string  `json:"sip_reason"`
}

// callRow is the engine's view of a call: the record plus its working state.
type callRow struct {
	ID, Direction, State                     string
	From, To, Line, CallerName, Location     *string
	TicketID, RequesterID, AgentID           *int64
	Queue, MenuPath, Language, Outcome       *string
	StartedAt, AnsweredAt, EndedAt           *time.Time
	Phase                                    string
	PhaseSince, QueuedAt                     *time.Time
	PhaseMS                                  map[string]int64
	D                                        callevent.Durations
	TicketChoice                             *string
	ChosenTicketID                           *int64
	EnteredNumber, NoTicket                  bool
	AbandonedWhere, VoicemailID, RecordingID *string
	RecordingSeconds                         *int64
	CSAT                                     *int
	LastSeq                                  int64
	// AgentChannel is the channel of the call.answered being applied (callevent.Channel*):
	// not stored, it only decides the session_type of a ticket the answer makes (CF-1).
	AgentChannel string
	// fresh is a call the engine's batch is creating: its row is not stored yet and is
	// inserted whole when the batch writes its calls (engine_batch.go, queueCalls).
	fresh bool
	// Data is the call's custom data (CF-4).
	Data                                    map[string]string
	Trunk, HangupBy, HangupCause, SIPReason *string
	SIPCallIDs                              []string
	SIPStatus                               *int
}

const callRowColumns = `id, direction, state, from_number, to_number, line, caller_name, location,
	ticket_id, requester_id, agent_id, queue, menu_path, language, outcome, started_at, answered_at, ended_at,
	phase, phase_since, queued_at, phase_ms, ivr_time, queue_time, ring_time, talk_time, hold_time, transfer_time, duration,
	ticket_choice, chosen_ticket_id, entered_number, no_ticket, abandoned_where, voicemail_id, recording_id,
	recording_seconds, csat, last_seq, data, trunk, sip_call_ids, hangup_by, hangup_cause, sip_status, sip_reason`

func loadCall(ctx context.Context, q querier, id string) (*callRow, error) {
	return scanCall(q.QueryRow(ctx, `SELECT `+callRowColumns+` FROM calls WHERE id = $1 FOR UPDATE`, id), id)
}

func scanCall(row pgx.Row, id string) (*callRow, error) {
	c := &callRow{}
	err := row.Scan(
		&c.ID, &c.Direction, &c.State, &c.From, &c.To, &c.Line, &c.CallerName, &c.Location,
		&c.TicketID, &c.RequesterID, &c.AgentID, &c.Queue, &c.MenuPath, &c.Language, &c.Outcome,
		&c.StartedAt, &c.AnsweredAt, &c.EndedAt, &c.Phase, &c.PhaseSince, &c.QueuedAt, &c.PhaseMS,
		&c.D.IVRTime, &c.D.QueueTime, &c.D.RingTime, &c.D.TalkTime, &c.D.HoldTime, &c.D.TransferTime, &c.D.Duration,
		&c.TicketChoice, &c.ChosenTicketID, &c.EnteredNumber, &c.NoTicket, &c.AbandonedWhere, &c.VoicemailID,
		&c.RecordingID, &c.RecordingSeconds, &c.CSAT, &c.LastSeq, &c.Data,
		&c.Trunk, &c.SIPCallIDs, &c.HangupBy, &c.HangupCause, &c.SIPStatus, &c.SIPReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("call %s not found", id)
	}
	if err != nil {
		return nil, dbError("load call", err)
	}
	if c.PhaseMS == nil {
		c.PhaseMS = map[string]int64{}
	}
	return c, nil
}

// newCallRow is a call with no row yet, as the calls table's defaults would make it.
func newCallRow(id string) *callRow {
	return &callRow{ID: id, Direction: "inbound", State: "started", Phase: phaseIVR, PhaseMS: map[string]int64{},
		SIPCallIDs: []string{}, fresh: true}
}

// dataOrEmpty is the call's data as stored: an empty object rather than null.
func (c *callRow) dataOrEmpty() map[string]string {
	if c.Data == nil {
		return map[string]string{}
	}
	return c.Data
}

// callSaveColumns are the columns save writes, and callSaveValues the same from a record r.
var callSaveColumns, callSaveValues = func() (string, string) {
	cols := strings.Split(strings.Join(strings.Fields(callRowColumns), ""), ",")[1:] // all but id
	vals := make([]string, len(cols))
	for i, c := range cols {
		vals[i] = "r." + c
	}
	return strings.Join(cols, ", "), strings.Join(vals, ", ")
}()

// callSave is the call row by column name, as save writes it (the batch writes many at once,
// as one JSON array read by jsonb_populate_recordset). A struct, not a map: encoding/json
// sorts a map's keys and reflects on each value, per call (BENCHMARKS.md, session 12); the
// keys and values are the same. TestCallSaveMatchesColumnNames checks the names against
// callRowColumns.
type callSave struct {
	ID               string            `json:"id"`
	Direction        string            `json:"direction"`
	State            string            `json:"state"`
	From             *string           `json:"from_number"`
	To               *string           `json:"to_number"`
	Line             *string           `json:"line"`
	CallerName       *string           `json:"caller_name"`
	Location         *string           `json:"location"`
	TicketID         *int64            `json:"ticket_id"`
	RequesterID      *int64            `json:"requester_id"`
	AgentID          *int64            `json:"agent_id"`
	Queue            *string           `json:"queue"`
	MenuPath         *string           `json:"menu_path"`
	Language         *string           `json:"language"`
	Outcome          *string           `json:"outcome"`
	StartedAt        *time.Time        `json:"started_at"`
	AnsweredAt       *time.Time        `json:"answered_at"`
	EndedAt          *time.Time        `json:"ended_at"`
	Phase            string            `json:"phase"`
	PhaseSince       *time.Time        `json:"phase_since"`
	QueuedAt         *time.Time        `json:"queued_at"`
	PhaseMS          map[string]int64  `json:"phase_ms"`
	IVRTime          int64             `json:"ivr_time"`
	QueueTime        int64             `json:"queue_time"`
	RingTime         int64             `json:"ring_time"`
	TalkTime         int64             `json:"talk_time"`
	HoldTime         int64             `json:"hold_time"`
	TransferTime     int64             `json:"transfer_time"`
	Duration         int64             `json:"duration"`
	TicketChoice     *string           `json:"ticket_choice"`
	ChosenTicketID   *int64            `json:"chosen_ticket_id"`
	EnteredNumber    bool              `json:"entered_number"`
	NoTicket         bool              `json:"no_ticket"`
	AbandonedWhere   *string           `json:"abandoned_where"`
	VoicemailID      *string           `json:"voicemail_id"`
	RecordingID      *string           `json:"recording_id"`
	RecordingSeconds *int64            `json:"recording_seconds"`
	CSAT             *int              `json:"csat"`
	LastSeq          int64             `json:"last_seq"`
	Data             map[string]string `json:"data"`
	Trunk            *string           `json:"trunk"`
	SIPCallIDs       []string          `json:"sip_call_ids"`
	HangupBy         *string           `json:"hangup_by"`
	HangupCause      *string           `json:"hangup_cause"`
	SIPStatus        *int              `json:"sip_status"`
	SIPReason        *string           `json:"sip_reason"`
}

// columns is the call row as save writes it.
func (c *callRow) columns() callSave {
	return callSave{
		ID: c.ID, Direction: c.Direction, State: c.State, From: c.From, To: c.To, Line: c.Line,
		CallerName: c.CallerName, Location: c.Location, TicketID: c.TicketID, RequesterID: c.RequesterID,
		AgentID: c.AgentID, Queue: c.Queue, MenuPath: c.MenuPath, Language: c.Language, Outcome: c.Outcome,
		StartedAt: micros(c.StartedAt), AnsweredAt: micros(c.AnsweredAt), EndedAt: micros(c.EndedAt), Phase: c.Phase,
		PhaseSince: micros(c.PhaseSince), QueuedAt: micros(c.QueuedAt), PhaseMS: c.PhaseMS, IVRTime: c.D.IVRTime,
		QueueTime: c.D.QueueTime, RingTime: c.D.RingTime, TalkTime: c.D.TalkTime, HoldTime: c.D.HoldTime,
		TransferTime: c.D.TransferTime, Duration: c.D.Duration, TicketChoice: c.TicketChoice,
		ChosenTicketID: c.ChosenTicketID, EnteredNumber: c.EnteredNumber, NoTicket: c.NoTicket,
		AbandonedWhere: c.AbandonedWhere, VoicemailID: c.VoicemailID, RecordingID: c.RecordingID,
		RecordingSeconds: c.RecordingSeconds, CSAT: c.CSAT, LastSeq: c.LastSeq, Data: c.dataOrEmpty(),
		Trunk: c.Trunk, SIPCallIDs: sipCallIDs(c.SIPCallIDs), HangupBy: c.HangupBy,
		HangupCause: c.HangupCause, SIPStatus: c.SIPStatus, SIPReason: c.SIPReason,
	}
}

// micros is t as PostgreSQL stores it: pgx truncates to the microsecond where PostgreSQL's
// text input would round.
func micros(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.Truncate(time.Microsecond)
	return &v
}

func (c *callRow) save(ctx context.Context, q querier) error {
	_, err := q.Exec(ctx, `UPDATE calls SET direction = $2, state = $3, from_number = $4, to_number = $5, line = $6,
		caller_name = $7, location = $8, ticket_id = $9, requester_id = $10, agent_id = $11, queue = $12, menu_path = $13,
		language = $14, outcome = $15, started_at = $16, answered_at = $17, ended_at = $18, phase = $19, phase_since = $20,
		queued_at = $21, phase_ms = $22, ivr_time = $23, queue_time = $24, ring_time = $25, talk_time = $26, hold_time = $27,
		transfer_time = $28, duration = $29, ticket_choice = $30, chosen_ticket_id = $31, entered_number = $32,
		no_ticket = $33, abandoned_where = $34, voicemail_id = $35, recording_id = $36, recording_seconds = $37,
		csat = $38, last_seq = $39, data = $40, trunk = $41, sip_call_ids = $42, hangup_by = $43, hangup_cause = $44,
		sip_status = $45, sip_reason = $46, updated_at = clock_timestamp() WHERE id = $1`,
		c.ID, c.Direction, c.State, c.From, c.To, c.Line, c.CallerName, c.Location,
		c.TicketID, c.RequesterID, c.AgentID, c.Queue, c.MenuPath, c.Language, c.Outcome,
		c.StartedAt, c.AnsweredAt, c.EndedAt, c.Phase, c.PhaseSince, c.QueuedAt, c.PhaseMS,
		c.D.IVRTime, c.D.QueueTime, c.D.RingTime, c.D.TalkTime, c.D.HoldTime, c.D.TransferTime, c.D.Duration,
		c.TicketChoice, c.ChosenTicketID, c.EnteredNumber, c.NoTicket, c.AbandonedWhere, c.VoicemailID,
		c.RecordingID, c.RecordingSeconds, c.CSAT, c.LastSeq, c.dataOrEmpty(),
		c.Trunk, sipCallIDs(c.SIPCallIDs), c.HangupBy, c.HangupCause, c.SIPStatus, c.SIPReason)
	if err != nil {
		return dbError("save call", err)
	}
	return nil
}

// Call phases, each accumulating into one duration of CD-3.
const (
	phaseIVR      = "ivr"
	phaseQueue    = "queue"
	phaseRing     = "ring"
	phaseTalk     = "talk"
	phaseHold     = "hold"
	phaseTransfer = "transfer"
	phaseDone     = "done"
)

// enterPhase closes the current phase at `at`, adding its length to that phase's total, and
// opens the next one. Events that arrive with an earlier time than the phase start add nothing.
func (c *callRow) enterPhase(next string, at time.Time) {
	if c.PhaseSince != nil && c.Phase != phaseDone {
		if d := at.Sub(*c.PhaseSince); d > 0 {
			c.PhaseMS[c.Phase] += d.Milliseconds()
		}
	}
	c.Phase = next
	t := at
	c.PhaseSince = &t
}

// derivedDurations returns the durations from the phases. Voicemail time counts as IVR time:
// the caller is in the gateway's automated part of the call.
func (c *callRow) derivedDurations() callevent.Durations {
	sec := func(ms int64) int64 { return int64(math.Round(float64(ms) / 1000)) }
	d := callevent.Durations{
		IVRTime:      sec(c.PhaseMS[phaseIVR]),
		QueueTime:    sec(c.PhaseMS[phaseQueue]),
		RingTime:     sec(c.PhaseMS[phaseRing]),
		TalkTime:     sec(c.PhaseMS[phaseTalk]),
		HoldTime:     sec(c.PhaseMS[phaseHold]),
		TransferTime: sec(c.PhaseMS[phaseTransfer]),
	}
	if c.StartedAt != nil && c.EndedAt != nil {
		d.Duration = sec(c.EndedAt.Sub(*c.StartedAt).Milliseconds())
	}
	return d
}

func (c *callRow) public() Call {
	out := Call{
		ID: c.ID, Direction: c.Direction, From: c.From, To: c.To, Line: c.Line, CallerName: c.CallerName,
		Location: c.Location, State: c.State, TicketID: c.TicketID, RequesterID: c.RequesterID, AgentID: c.AgentID,
		Queue: c.Queue, MenuPath: c.MenuPath, Language: c.Language, Outcome: c.Outcome,
		Durations:   c.D,
		RecordingID: c.RecordingID, CSAT: c.CSAT, Data: c.dataOrEmpty(),
		Trunk: c.Trunk, SIPCallIDs: sipCallIDs(c.SIPCallIDs), HangupBy: c.HangupBy, HangupCause: c.HangupCause,
		SIPStatus: c.SIPStatus, SIPReason: c.SIPReason,
	}
	if c.Direction == "outbound" {
		out.FromLine = c.Line
	}
	conv := func(t *time.Time) *Time {
		if t == nil {
			return nil
		}
		v := Time{Time: t.UTC()}
		return &v
	}
	out.StartedAt, out.AnsweredAt, out.EndedAt = conv(c.StartedAt), conv(c.AnsweredAt), conv(c.EndedAt)
	return out
}

// Call returns one call record.
func (s *Store) Call(ctx context.Context, id string) (Call, error) {
	c, err := loadCallPlain(ctx, s.pool, id)
	if err != nil {
		return Call{}, err
	}
	return c.public(), nil
}

func loadCallPlain(ctx context.Context, q querier, id string) (*callRow, error) {
	return scanCall(q.QueryRow(ctx, `SELECT `+callRowColumns+` FROM calls WHERE id = $1 AND started_at IS NOT NULL`, id), id)
}

// CallFilter selects calls for GET /calls; empty fields do not filter.
type CallFilter struct {
	From, To, Line, Outcome string
	// AgentID, when set, keeps the calls that agent answered or placed (the agent page's own).
	AgentID int64
	// Queues, when set, keeps the calls of those queues (the agent page's "my queues'" view).
	Queues []string
	// TeamOf, when set, keeps the calls answered or placed by that user or by an agent sharing
	// a group with them (the agent page's "my team's" view; only their own when they belong
	// to no group). Membership is read when the list is: an agent who left the group takes
	// their calls with them.
	TeamOf int64
	// GroupID, when set, keeps the calls answered or placed by the members of that group.
	GroupID int64
	Since   time.Time
	// Before is the pagination cursor: calls started before (BeforeStarted, BeforeID).
	BeforeStarted time.Time
	BeforeID      string
	Limit         int
}

// ListCalls returns calls newest first, and whether more follow.
func (s *Store) ListCalls(ctx context.Context, f CallFilter) ([]Call, bool, error) {
	if f.Limit <= 0 || f.Limit > 100 {
		f.Limit = 100
	}
	var since, beforeStarted *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.BeforeStarted.IsZero() {
		beforeStarted = &f.BeforeStarted
	}
	queues := f.Queues
	if queues == nil {
		queues = []string{}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+callRowColumns+` FROM calls WHERE started_at IS NOT NULL
		AND ($1 = '' OR from_number = $1) AND ($2 = '' OR to_number = $2) AND ($3 = '' OR line = $3)
		AND ($4 = '' OR outcome = $4) AND ($5::timestamptz IS NULL OR started_at >= $5)
		AND ($6::timestamptz IS NULL OR (started_at, id) < ($6, $7))
		AND ($9::bigint = 0 OR agent_id = $9) AND (cardinality($10::text[]) = 0 OR queue = ANY($10))
		AND ($11::bigint = 0 OR agent_id = $11 OR agent_id IN (SELECT o.user_id FROM group_memberships m
			JOIN group_memberships o ON o.group_id = m.group_id WHERE m.user_id = $11))
		AND ($12::bigint = 0 OR agent_id IN (SELECT user_id FROM group_memberships WHERE group_id = $12))
		ORDER BY started_at DESC, id DESC LIMIT $8`,
		f.From, f.To, f.Line, f.Outcome, since, beforeStarted, f.BeforeID, f.Limit+1, f.AgentID, queues, f.TeamOf, f.GroupID)
	if err != nil {
		return nil, false, dbError("list calls", err)
	}
	defer rows.Close()
	var out []Call
	for rows.Next() {
		c, err := scanCall(rows, "")
		if err != nil {
			return nil, false, err
		}
		out = append(out, c.public())
	}
	if err := rows.Err(); err != nil {
		return nil, false, dbError("list calls", err)
	}
	more := len(out) > f.Limit
	if more {
		out = out[:f.Limit]
	}
	return out, more, nil
}

// sipCallIDs is never nil: the column is NOT NULL and the API answers [] rather than null.
func sipCallIDs(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}
