package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Dial is a validated outbound call, ready for the trunk: the agent, and the plan the outbound
// rules made (ticketing.Store.PlanOutboundCall).
type Dial struct {
	AgentID   int64
	To        string // E.164, normalised
	ContactID int64
	// TicketID is the ticket the agent chose (OB-2); nil with ticket choice existing means the
	// contact's most recent unsolved ticket at answer time (OB-1), or a new one if none (TC-7).
	TicketID      *int64
	TicketChoice  string
	EnteredNumber bool // the number is not stored on the contact (OB-5, noted on the ticket: CD-8)
	// Line is the line the call is placed from (OB-7): the one the agent picked (from_line),
	// else the default of the agent's first queue that names one; the zero OutboundLine (no
	// Number) means none, and the Dialer presents its trunk's caller ID.
	Line OutboundLine
	// Ended gives the agent's call slot back to the Outbound's Guard. A Dialer that returns a
	// call id calls it once that call is over (its error return gives the slot back itself).
	// Never nil when the Dialer sees it; calling it more than once is harmless.
	Ended func() `json:"-"`
}

// Dialer places a validated outbound call through the trunk (the integrator's, with sip) and
// returns its call id. It should put the call on the agent's page with Server.StartCall and
// bridge the answer into the returned leg.
type Dialer interface {
	Dial(ctx context.Context, d Dial) (callID string, err error)
}

// OutboundStore is what an outbound dial needs of the ticketing core; *ticketing.Store
// satisfies it. The rules themselves (OB, TB) are ticketing's: PlanOutboundCall.
type OutboundStore interface {
	// User reads the calling agent, whose email names their team (Teams).
	User(ctx context.Context, id int64) (ticketing.User, error)
	PlanOutboundCall(ctx context.Context, call ticketing.OutboundCall, entry ticketing.TicketEntry) (ticketing.OutboundPlan, error)
	// PlanDialledNumber plans a dial that names only a number (an agent's SIP phone's: PhoneDial).
	PlanDialledNumber(ctx context.Context, number string, entry ticketing.TicketEntry) (ticketing.OutboundPlan, error)
	// AuditVoicemailCallback records a dial on a voicemail's ticket as its callback (TU-9);
	// other tickets write nothing.
	AuditVoicemailCallback(ctx context.Context, actor ticketing.Actor, ticketID int64, callID, to string) error
}

// TeamPolicy returns the ticket entry of the agent with this email (the configuration's
// teams, config.Config.TicketEntryOf); an agent in no team gets the zero TicketEntry (off).
type TeamPolicy func(agentEmail string) ticketing.TicketEntry

// Outbound serves an agent's outbound dial: the ticketing core's rules (docs/rules.md OB-1 …
// OB-6, and TB-1 … TB-4 under the agent's team ticket entry) and the toll-fraud Guard decide
// before anything is dialled, then the Dialer places the call.
type Outbound struct {
	Store  OutboundStore
	Dialer Dialer
	// Teams tells each agent's team ticket entry; nil means off for everyone.
	Teams TeamPolicy
	// Guard checks the destination and the agent's outbound limits before anything is
	// dialled (toll fraud); nil checks nothing.
	Guard *OutboundGuard
	// Lines are the lines outbound calls may be placed from (OB-7) and the queues' default
	// lines; the zero value offers none, and a from_line is refused. SetLines replaces them
	// live (lines managed through the API).
	Lines OutboundLines
	// Roster tells an agent's queues, in order (the ACD: they change live), for the queues'
	// default lines; nil: no queue default applies.
	Roster Roster
	// Log receives a line for each refusal of the Guard and for each internal error (with the
	// error id the client is given instead of the cause); nil discards.
	Log *slog.Logger

	// live, once SetLines was called, stands for Lines.
	live atomic.Pointer[OutboundLines]
}

// SetLines replaces the lines agents call from (the roster's lines, changed through the API)
// for every dial from now on; safe from any goroutine.
func (o *Outbound) SetLines(l OutboundLines) { o.live.Store(&l) }

// lines are the lines in force: SetLines's last, else Lines.
func (o *Outbound) lines() OutboundLines {
	if l := o.live.Load(); l != nil {
		return *l
	}
	return o.Lines
}

// OutboundLine is a line an outbound call may be placed from (OB-7): its number is the caller
// ID the callee sees, its trunk dials the call, and the call starts in its language.
type OutboundLine struct {
	Number   string `json:"number"` // E.164
	Name     string `json:"name"`
	Language string `json:"language"`
	Trunk    string `json:"-"`
}

// OutboundLines are the lines agents may call from and the queues' default lines.
type OutboundLines struct {
	// Lines, in the order the page offers them.
	Lines []OutboundLine
	// QueueDefaults maps a queue's name to the number of its default line (one of Lines).
	QueueDefaults map[string]string
}

// Roster tells an agent's queues; *ivr.ACD satisfies it.
type Roster interface {
	Agent(id int64) (ivr.AgentStatus, error)
}

// line returns the line with this number.
func (l OutboundLines) line(number string) (OutboundLine, bool) {
	for _, ol := range l.Lines {
		if ol.Number == number {
			return ol, true
		}
	}
	return OutboundLine{}, false
}

// defaultLine returns the line agent agentID calls from when they pick none: the default of
// the first of their queues that names one (OB-7), or none.
func (o *Outbound) defaultLine(agentID int64) (OutboundLine, bool) {
	ls := o.lines()
	if o.Roster == nil || len(ls.QueueDefaults) == 0 {
		return OutboundLine{}, false
	}
	a, err := o.Roster.Agent(agentID)
	if err != nil { // not an agent of the roster (an admin): in no queue
		return OutboundLine{}, false
	}
	for _, q := range a.Queues {
		if n, ok := ls.QueueDefaults[q]; ok {
			return ls.line(n)
		}
	}
	return OutboundLine{}, false
}

// fromLine returns the line a dial is placed from (OB-7): the one asked for, which must be one
// of Lines (422 naming from_line), else the agent's queue default, else none.
func (o *Outbound) fromLine(agentID int64, asked string) (OutboundLine, error) {
	if asked == "" {
		l, _ := o.defaultLine(agentID)
		return l, nil
	}
	ls := o.lines()
	if l, ok := ls.line(strings.TrimSpace(asked)); ok {
		return l, nil
	}
	numbers := make([]string, 0, len(ls.Lines))
	for _, l := range ls.Lines {
		numbers = append(numbers, l.Number)
	}
	if len(numbers) == 0 {
		return OutboundLine{}, invalid("from_line", "no line of this gateway can place outbound calls; leave from_line empty")
	}
	return OutboundLine{}, invalid("from_line", "is not a line outbound calls can be placed from; use one of %s", strings.Join(numbers, ", "))
}

// LinesHandler serves GET /api/v2/lines: the lines the calling agent may place outbound calls
// from and the one used when they pick none, {"lines":[{"number","name","language"}],
// "default_line": NUMBER or null} (null: the trunk's caller ID). agentID as for Handler.
func (o *Outbound) LinesHandler(agentID func(*http.Request) (int64, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := agentID(r)
		if !ok {
			apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
			return
		}
		lines := o.lines().Lines
		if lines == nil {
			lines = []OutboundLine{}
		}
		var def *string
		if l, ok := o.defaultLine(id); ok {
			def = &l.Number
		}
		writeJSON(w, http.StatusOK, map[string]any{"lines": lines, "default_line": def})
	})
}

// entry returns the ticket entry of agent agentID: Teams keyed by the agent's email.
func (o *Outbound) entry(ctx context.Context, agentID int64) (ticketing.TicketEntry, error) {
	if o.Teams == nil {
		return ticketing.TicketEntry{}, nil
	}
	u, err := o.Store.User(ctx, agentID)
	if errors.Is(err, ticketing.ErrNotFound) {
		return ticketing.TicketEntry{}, nil
	}
	if err != nil {
		return ticketing.TicketEntry{}, fmt.Errorf("web: outbound: agent: %w", err)
	}
	if u.Email == nil {
		return ticketing.TicketEntry{}, nil
	}
	return o.Teams(*u.Email), nil
}

func invalid(field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &ticketing.Error{Kind: ticketing.ErrInvalid, Description: field + ": " + msg, Details: map[string][]string{field: {msg}}}
}

// Validate returns the call to dial for agent agentID, or a refusal (a *ticketing.Error): 422
// naming from_line for a line outbound calls cannot be placed from (OB-7), else the ticketing
// core's (422, 403 or 409, see ticketing.Store.PlanOutboundCall) under the agent's team
// ticket entry (Teams).
func (o *Outbound) Validate(ctx context.Context, agentID int64, call ticketing.OutboundCall) (Dial, error) {
	line, err := o.fromLine(agentID, call.FromLine)
	if err != nil {
		return Dial{}, err
	}
	te, err := o.entry(ctx, agentID)
	if err != nil {
		return Dial{}, err
	}
	p, err := o.Store.PlanOutboundCall(ctx, call, te)
	if err != nil {
		return Dial{}, err
	}
	return Dial{AgentID: agentID, To: p.To, ContactID: p.ContactID, TicketID: p.TicketID,
		TicketChoice: p.TicketChoice, EnteredNumber: p.EnteredNumber, Line: line}, nil
}

// Handler serves POST /api/v2/calls: agentID tells who is calling (the integrator's API
// authentication, which also accepts the softphone cookie); 401 when it says no one.
// 201 {"call":{"id", "direction":"outbound", "to", "contact_id", "ticket_id", "ticket_choice",
// "entered_number", "from_line"}} once the Dialer accepted the call; refusals as the API's errors.
func (o *Outbound) Handler(agentID func(*http.Request) (int64, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := agentID(r)
		if !ok {
			apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
		if err != nil {
			writeAPIError(w, invalid("body", "is larger than 16 KiB or cannot be read"))
			return
		}
		var call ticketing.OutboundCall
		if err := decodeWrapped(raw, "call", &call); err != nil { // unknown fields: 422 naming them
			writeAPIError(w, err)
			return
		}
		d, err := o.Validate(r.Context(), id, call)
		if err != nil {
			o.writeError(w, err)
			return
		}
		o.place(w, r, id, d, nil)
	})
}

// place runs the toll-fraud Guard on a validated dial and hands it to the Dialer: 201 with the
// call (and extra fields, such as callback_of) once the Dialer took it, else the refusal.
func (o *Outbound) place(w http.ResponseWriter, r *http.Request, id int64, d Dial, extra map[string]any) {
	d.Ended = func() {}
	if g := o.Guard; g != nil {
		if reason := g.Destination(d.To); reason != "" {
			g.refuse(reason)
			o.logRefusal(id, d.To, reason)
			apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Reason: reason,
				Description: fmt.Sprintf("%s cannot be dialled through this gateway's trunk (%s)", d.To, reason),
				Details:     map[string][]string{"to": {"is a destination the trunk refuses (" + reason + ")"}}})
			return
		}
		release, reason, retry := g.acquire(id)
		if reason != "" {
			g.refuse(reason)
			o.logRefusal(id, d.To, reason)
			e := apierror.Error{Status: http.StatusTooManyRequests, Reason: reason,
				Description: fmt.Sprintf("You have %d outbound calls in progress, the most allowed", g.opts.MaxCalls)}
			if reason == RefusedRate {
				e.RetryAfter = retry
				e.Description = fmt.Sprintf("You have started %d outbound calls in the last minute, the most allowed: try again in %d s",
					g.opts.CallsPerMinute, apierror.RetryAfterSeconds(retry))
			}
			apierror.Write(w, e)
			return
		}
		g.calls.Inc()
		d.Ended = release
	}
	callID, err := o.Dialer.Dial(r.Context(), d)
	if err != nil {
		d.Ended()
		o.writeError(w, err)
		return
	}
	if d.TicketID != nil {
		// TU-9: calling a voicemail's ticket back is audited once the call is placed. The
		// call cannot be taken back: a refused audit is logged, and the call goes on.
		if err := o.Store.AuditVoicemailCallback(r.Context(), ticketing.Actor(id), *d.TicketID, callID, d.To); err != nil {
			logInternal(o.Log, "web: audit of a voicemail callback failed", err)
		}
	}
	var from *string
	if d.Line.Number != "" {
		from = &d.Line.Number
	}
	call := map[string]any{"id": callID, "direction": "outbound", "to": d.To, "contact_id": d.ContactID,
		"ticket_id": d.TicketID, "ticket_choice": d.TicketChoice, "entered_number": d.EnteredNumber, "from_line": from}
	for k, v := range extra {
		call[k] = v
	}
	writeJSON(w, http.StatusCreated, map[string]any{"call": call})
}

// logRefusal logs a dial the Guard refused; to is a normalised E.164 number, safe to log.
func (o *Outbound) logRefusal(agentID int64, to, reason string) {
	if o.Log != nil {
		o.Log.Warn("outbound call refused", "agent_id", agentID, "to", to, "reason", reason)
	}
}

// writeError is writeAPIError, and for an internal error (neither a *ticketing.Error nor a
// Dialer's ErrNotConnected or ErrBusy) also logs its cause under the error id the client gets.
func (o *Outbound) writeError(w http.ResponseWriter, err error) {
	var te *ticketing.Error
	if errors.As(err, &te) || errors.Is(err, ErrNotConnected) || errors.Is(err, ErrBusy) {
		writeAPIError(w, err)
		return
	}
	id := logInternal(o.Log, "web: outbound call failed", err)
	apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "the call could not be placed: internal error (id " + id + ")"})
}

// writeAPIError writes a *ticketing.Error as the rest of the API does (ticketing.WriteError);
// a Dialer's ErrNotConnected or ErrBusy is a 409; anything else is a 500.
func writeAPIError(w http.ResponseWriter, err error) {
	var te *ticketing.Error
	switch {
	case errors.As(err, &te):
		ticketing.WriteError(w, te)
	case errors.Is(err, ErrNotConnected):
		apierror.Write(w, apierror.Error{Status: http.StatusConflict, Description: "Open the softphone page before dialling"})
	case errors.Is(err, ErrBusy):
		apierror.Write(w, apierror.Error{Status: http.StatusConflict, Description: "You are already on a call"})
	default:
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "the call could not be placed"})
	}
}
