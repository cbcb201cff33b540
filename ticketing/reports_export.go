package ticketing

import (
	"context"
	"strconv"
	"time"
)

// CallExport selects the call records of an export: started in [Since, Until), and the
// filters of GET /calls (From, To: the numbers; Line; Outcome), a queue and an agent.
type CallExport struct {
	Since, Until            time.Time
	From, To, Line, Outcome string
	Queue                   string
	AgentID                 int64
}

// ExportedCall is one call record of an export: the record of GET /calls/{id} that reports
// read, with when it entered its queue and its wrap-up time (docs/reports.md).
type ExportedCall struct {
	ID             string  `json:"id"`
	Direction      string  `json:"direction"`
	From           *string `json:"from"`
	To             *string `json:"to"`
	Line           *string `json:"line"`
	Queue          *string `json:"queue"`
	AgentID        *int64  `json:"agent_id"`
	TicketID       *int64  `json:"ticket_id"`
	RequesterID    *int64  `json:"requester_id"`
	Outcome        *string `json:"outcome"`
	AbandonedWhere *string `json:"abandoned_where"`
	StartedAt      *Time   `json:"started_at"`
	QueuedAt       *Time   `json:"queued_at"`
	AnsweredAt     *Time   `json:"answered_at"`
	EndedAt        *Time   `json:"ended_at"`
	IVRTime        int64   `json:"ivr_time"`
	QueueTime      int64   `json:"queue_time"`
	RingTime       int64   `json:"ring_time"`
	TalkTime       int64   `json:"talk_time"`
	HoldTime       int64   `json:"hold_time"`
	TransferTime   int64   `json:"transfer_time"`
	WrapUpTime     int64   `json:"wrap_up_time"`
	Duration       int64   `json:"duration"`
	HangupBy       *string `json:"hangup_by"`
	HangupCause    *string `json:"hangup_cause"`
	Trunk          *string `json:"trunk"`
}

// ExportCalls calls fn with every call record f selects, oldest first, streaming from one
// query; an error of fn stops it.
func (s *Store) ExportCalls(ctx context.Context, f CallExport, fn func(ExportedCall) error) error {
	rows, err := s.pool.Query(ctx, `SELECT c.id, c.direction, c.from_number, c.to_number, c.line, c.queue, c.agent_id,
		c.ticket_id, c.requester_id, c.outcome, c.abandoned_where, c.started_at, c.queued_at, c.answered_at, c.ended_at,
		c.ivr_time, c.queue_time, c.ring_time, c.talk_time, c.hold_time, c.transfer_time, coalesce(w.secs, 0), c.duration,
		c.hangup_by, c.hangup_cause, c.trunk
		FROM calls c `+wrapUpSQL+`
		WHERE c.started_at >= $1 AND c.started_at < $2
		  AND ($3::text = '' OR c.from_number = $3::text) AND ($4::text = '' OR c.to_number = $4::text)
		  AND ($5::text = '' OR c.line = $5::text) AND ($6::text = '' OR c.outcome = $6::text)
		  AND ($7::text = '' OR c.queue = $7::text) AND ($8::bigint = 0 OR c.agent_id = $8::bigint)
		ORDER BY c.started_at, c.id`, f.Since, f.Until, f.From, f.To, f.Line, f.Outcome, f.Queue, f.AgentID)
	if err != nil {
		return dbError("export calls", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c ExportedCall
		var started, queued, answered, ended *time.Time
		if err := rows.Scan(&c.ID, &c.Direction, &c.From, &c.To, &c.Line, &c.Queue, &c.AgentID, &c.TicketID, &c.RequesterID,
			&c.Outcome, &c.AbandonedWhere, &started, &queued, &answered, &ended, &c.IVRTime, &c.QueueTime, &c.RingTime,
			&c.TalkTime, &c.HoldTime, &c.TransferTime, &c.WrapUpTime, &c.Duration, &c.HangupBy, &c.HangupCause, &c.Trunk); err != nil {
			return dbError("export calls", err)
		}
		c.StartedAt, c.QueuedAt, c.AnsweredAt, c.EndedAt = apiTime(started), apiTime(queued), apiTime(answered), apiTime(ended)
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return dbError("export calls", err)
	}
	return nil
}

func apiTime(t *time.Time) *Time {
	if t == nil {
		return nil
	}
	return &Time{t.UTC()}
}

// csvRecord is c as a row of callCSVHeader; values from outside are kept from being read as
// spreadsheet formulas (csvSafe).
func (c ExportedCall) csvRecord() []string {
	str := func(s *string) string {
		if s == nil {
			return ""
		}
		return csvSafe(*s)
	}
	id := func(n *int64) string {
		if n == nil {
			return ""
		}
		return strconv.FormatInt(*n, 10)
	}
	tm := func(t *Time) string {
		if t == nil {
			return ""
		}
		return csvTime(*t)
	}
	return []string{csvSafe(c.ID), c.Direction, str(c.From), str(c.To), str(c.Line), str(c.Queue), id(c.AgentID),
		id(c.TicketID), id(c.RequesterID), str(c.Outcome), str(c.AbandonedWhere), tm(c.StartedAt), tm(c.QueuedAt),
		tm(c.AnsweredAt), tm(c.EndedAt), itoa(c.IVRTime), itoa(c.QueueTime), itoa(c.RingTime), itoa(c.TalkTime),
		itoa(c.HoldTime), itoa(c.TransferTime), itoa(c.WrapUpTime), itoa(c.Duration), str(c.HangupBy), str(c.HangupCause),
		str(c.Trunk)}
}
