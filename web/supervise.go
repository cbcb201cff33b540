package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Supervisors (issue 21): a supervisor monitors (listens to both parties), whispers (talks to
// the agent only) or barges into (joins, three-way) any call connected to an agent, with their
// own softphone — the agent page's WebRTC leg, open in their browser — as the audio leg; and
// reads a live wallboard. Every start, change and end of a supervision writes an audit entry
// (GET /audit_logs, action call_supervised) before it takes effect: no audio reaches a
// supervisor without its entry.
//
// Teams (groups, migration 030): a supervisor who belongs to one or more groups supervises
// only the agents of those groups — a call of another agent is refused with 403 (reason
// not_in_your_groups) before anything is audited or joined, and the wallboard lists only
// those agents; a supervisor in no group, and every admin, supervises every agent
// (SupervisorOptions.Scope).
//
// Routes (Supervisors.Register):
//
//	POST   /calls/{id}/supervision  {"supervision":{"mode":"monitor"|"whisper"|"barge"}} → 201
//	PUT    /calls/{id}/supervision  {"supervision":{"mode":...}} → 200 (switch mode)
//	DELETE /calls/{id}/supervision  → 204
//	GET    /supervision             → 200 {"supervision":{...}|null} (the caller's own)
//	GET    /wallboard               → 200 {"wallboard":{"queues":[...],"agents":[...],"at"}}

// SupervisorACD is what supervisors need of the ACD; *ivr.ACD satisfies it.
type SupervisorACD interface {
	// Supervise joins sup to the call; on a node of a cluster (sip.ClusterACD) also a call
	// another node owns, whose mix stays there.
	Supervise(callID string, sup *media.Endpoint, mode ivr.SuperviseMode) (ivr.Supervision, error)
	Agents() []ivr.AgentStatus
	Queues() []ivr.QueueStatus
	// CallAgent tells the agent connected to a call — a queued call, a queue callback (by
	// either of its ids), an agent's own outbound call — and whether there is one.
	CallAgent(callID string) (int64, bool)
}

// SupervisionAuditor writes the audit entry of a supervisor's action; *ticketing.Store
// satisfies it.
type SupervisionAuditor interface {
	AuditSupervision(ctx context.Context, actor ticketing.Actor, a ticketing.SupervisionAudit) error
}

// SupervisionScoper tells whom a supervisor supervises (their groups' agents, or every agent);
// *ticketing.Store satisfies it.
type SupervisionScoper interface {
	SupervisionScope(ctx context.Context, userID int64) (ticketing.AgentScope, error)
}

// WallboardReports gives the wallboard its service level; *ticketing.Store satisfies it.
type WallboardReports interface {
	QueueReport(ctx context.Context, q ticketing.ReportQuery, opts ticketing.ReportOptions) ([]ticketing.QueueReportRow, error)
}

// SupervisorOptions configures Server.Supervisors.
type SupervisorOptions struct {
	// ACD runs the supervisions and tells the wallboard's live figures. Required.
	ACD SupervisorACD
	// Audit records every action. Required: supervising is never unaudited.
	Audit SupervisionAuditor
	// Auth authenticates an API request (ticketing's Basic, Bearer, or the page's cookie).
	// Required.
	Auth func(r *http.Request) (ticketing.Principal, error)
	// IsSupervisor says whether p may supervise and read the wallboard. Nil: supervisors and
	// admins (ticketing.Principal.IsSupervisor).
	IsSupervisor func(p ticketing.Principal) bool
	// Scope narrows a supervisor to the agents of their groups, read on every request (a
	// membership change applies at once). Nil: every supervisor supervises every agent.
	Scope SupervisionScoper
	// Reports and ReportOptions give the wallboard each queue's service level over the last
	// hour (the queue report); nil: the wallboard has no service level.
	Reports       WallboardReports
	ReportOptions ticketing.ReportOptions
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger; nil: the Server's.
	Logger *slog.Logger
}

// Supervisors serves the supervisor API. One supervision per supervisor at a time.
type Supervisors struct {
	s    *Server
	opts SupervisorOptions
	log  *slog.Logger

	// mu guards active; nothing outside is called while it is held.
	mu     sync.Mutex
	active map[int64]*activeSupervision // supervisor's user id → supervision
}

type activeSupervision struct {
	sv      ivr.Supervision
	agentID int64
	stopped bool // guarded by Supervisors.mu: ended by DELETE (its entry written)
}

// Supervisors returns the supervisor API of the page's softphones.
func (s *Server) Supervisors(o SupervisorOptions) (*Supervisors, error) {
	if o.ACD == nil || o.Audit == nil || o.Auth == nil {
		return nil, errors.New("web: supervisors: ACD, Audit and Auth are required")
	}
	if o.IsSupervisor == nil {
		o.IsSupervisor = ticketing.Principal.IsSupervisor
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = s.log
	}
	return &Supervisors{s: s, opts: o, log: log, active: map[int64]*activeSupervision{}}, nil
}

// Register mounts the routes under prefix ("/api/v2").
func (sp *Supervisors) Register(mux *http.ServeMux, prefix string) {
	prefix = strings.TrimSuffix(prefix, "/")
	mux.Handle("POST "+prefix+"/calls/{id}/supervision", sp.handle(sp.start))
	mux.Handle("PUT "+prefix+"/calls/{id}/supervision", sp.handle(sp.change))
	mux.Handle("DELETE "+prefix+"/calls/{id}/supervision", sp.handle(sp.stop))
	mux.Handle("GET "+prefix+"/supervision", sp.handle(sp.current))
	mux.Handle("GET "+prefix+"/wallboard", sp.handle(sp.wallboard))
}

// handle authenticates a supervisor and writes the handler's error.
func (sp *Supervisors) handle(fn func(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := sp.opts.Auth(r)
		if err == nil && !sp.opts.IsSupervisor(p) {
			err = &ticketing.Error{Kind: ticketing.ErrForbidden, Description: "only supervisors and admins can do this: your role is " + p.Role}
		}
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
			err = fn(w, r, p)
		}
		if err == nil {
			return
		}
		var te *ticketing.Error
		if errors.As(err, &te) {
			ticketing.WriteError(w, te)
			return
		}
		var ae *apiErr
		if errors.As(err, &ae) {
			apierror.Write(w, ae.e)
			return
		}
		id := apierror.ID()
		sp.log.Error("web: supervisors: internal error", "method", r.Method, "path", r.URL.Path, "error_id", id, "err", err)
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "internal error (id " + id + "); see the server log"})
	})
}

// apiErr carries an answer that is not one of ticketing's kinds (503 with Retry-After).
type apiErr struct{ e apierror.Error }

func (e *apiErr) Error() string { return e.e.Description }

type supervisionBody struct {
	Mode *string `json:"mode"`
}

// mode reads {"supervision":{"mode":...}}.
func readMode(r *http.Request) (ivr.SuperviseMode, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return "", invalid("supervision", "the body is too large")
	}
	var b supervisionBody
	if err := decodeWrapped(raw, "supervision", &b); err != nil {
		return "", err
	}
	if b.Mode == nil {
		return "", invalid("mode", "is required: monitor, whisper or barge")
	}
	m := ivr.SuperviseMode(*b.Mode)
	if !m.Valid() {
		return "", invalid("mode", "must be monitor, whisper or barge")
	}
	return m, nil
}

type supervisionJSON struct {
	CallID       string `json:"call_id"`
	AgentID      int64  `json:"agent_id"`
	SupervisorID int64  `json:"supervisor_id"`
	Mode         string `json:"mode"`
}

func conflict(format string, args ...any) error {
	return &ticketing.Error{Kind: ticketing.ErrConflict, Description: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &ticketing.Error{Kind: ticketing.ErrNotFound, Description: fmt.Sprintf(format, args...)}
}

// agentOf returns the agent the call is connected to on this node (0: none). The ACD's
// connected calls include an agent's own outbound call, which leaves the agent's queue state
// as it was (so the wallboard's busy agents are not enough).
func (sp *Supervisors) agentOf(callID string) int64 {
	if id, ok := sp.opts.ACD.CallAgent(callID); ok && id != 0 {
		return id
	}
	for _, a := range sp.opts.ACD.Agents() {
		if a.CallID == callID && a.State == ivr.StateBusy {
			return a.ID
		}
	}
	return 0
}

func (sp *Supervisors) audit(ctx context.Context, p ticketing.Principal, callID string, agentID int64, action string) error {
	err := sp.opts.Audit.AuditSupervision(ctx, p.Actor(), ticketing.SupervisionAudit{CallID: callID, AgentID: agentID, Action: action})
	if err != nil {
		sp.log.Warn("web: supervisors: audit refused; the action is not taken", "call_id", callID, "supervisor", p.UserID, "err", err)
		return &apiErr{apierror.Error{Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second,
			Description: "the audit trail cannot be written now (database unreachable); nothing was done, try again"}}
	}
	return nil
}

// scope returns whom p supervises; when it cannot be read (the database unreachable) the
// answer is a 503 and nothing is done.
func (sp *Supervisors) scope(ctx context.Context, p ticketing.Principal) (ticketing.AgentScope, error) {
	if sp.opts.Scope == nil {
		return ticketing.AgentScope{All: true}, nil
	}
	sc, err := sp.opts.Scope.SupervisionScope(ctx, p.UserID)
	if err != nil {
		sp.log.Warn("web: supervisors: the supervisor's groups cannot be read", "supervisor", p.UserID, "err", err)
		return sc, &apiErr{apierror.Error{Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second,
			Description: "your groups cannot be read now (database unreachable); nothing was done, try again"}}
	}
	return sc, nil
}

// allowed refuses with 403 (reason not_in_your_groups) a supervision of an agent outside p's
// groups.
func (sp *Supervisors) allowed(ctx context.Context, p ticketing.Principal, agentID int64) error {
	sc, err := sp.scope(ctx, p)
	if err != nil {
		return err
	}
	if !sc.Allows(agentID) {
		// The same reason as the ACD's PUT /agents/{id}/state refusal.
		return &apiErr{apierror.Error{Status: http.StatusForbidden, Reason: ivr.ReasonNotInYourGroups, Description: sc.Refusal(agentID)}}
	}
	return nil
}

func (sp *Supervisors) start(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	callID := r.PathValue("id")
	mode, err := readMode(r)
	if err != nil {
		return err
	}
	sp.mu.Lock()
	cur := sp.active[p.UserID]
	sp.mu.Unlock()
	if cur != nil {
		return conflict("you already supervise call %s: PUT changes the mode, DELETE ends it", cur.sv.CallID())
	}
	as := sp.s.agentByID(p.UserID)
	if as == nil || !as.connected() || !as.leg.Connected() {
		return conflict("your audio leg is the agent page's softphone: open the page and wait until its audio is connected")
	}
	agentID := sp.agentOf(callID)
	if agentID == 0 {
		return notFound("no call %q is connected to an agent", callID)
	}
	if agentID == p.UserID {
		return conflict("you cannot supervise your own call")
	}
	if err := sp.allowed(r.Context(), p, agentID); err != nil {
		return err
	}
	if err := sp.audit(r.Context(), p, callID, agentID, string(mode)); err != nil {
		return err
	}
	sv, err := sp.opts.ACD.Supervise(callID, as.leg.Endpoint(), mode)
	if err != nil {
		// The entry says the supervisor asked; this one that it ended at once.
		_ = sp.opts.Audit.AuditSupervision(context.WithoutCancel(r.Context()), p.Actor(),
			ticketing.SupervisionAudit{CallID: callID, AgentID: agentID, Action: "stop"})
		switch {
		case errors.Is(err, ivr.ErrNoCall):
			return notFound("no call %q is connected to an agent", callID)
		case errors.Is(err, ivr.ErrNotBridged):
			return conflict("the call is on hold or between agents now: try again")
		case errors.Is(err, ivr.ErrConferenceFull):
			return conflict("the conference has as many parties as it can mix: a supervisor cannot join it now")
		case errors.Is(err, ivr.ErrSupervised), errors.Is(err, media.ErrClosed):
			return conflict("your softphone is busy or closed: %v", err)
		}
		return err
	}
	act := &activeSupervision{sv: sv, agentID: agentID}
	sp.mu.Lock()
	other := sp.active[p.UserID]
	if other == nil {
		sp.active[p.UserID] = act
	}
	sp.mu.Unlock()
	if other != nil { // a second request raced this one and won
		sv.Stop()
		return conflict("you already supervise call %s", other.sv.CallID())
	}
	go sp.follow(p, act)
	writeJSON(w, http.StatusCreated, map[string]any{"supervision": supervisionJSON{CallID: callID, AgentID: agentID, SupervisorID: p.UserID, Mode: string(mode)}})
	return nil
}

// follow forgets a supervision once it ended and, when it ended by itself (the call ended,
// the supervisor's page closed), writes its "stop" entry.
func (sp *Supervisors) follow(p ticketing.Principal, act *activeSupervision) {
	<-act.sv.Done()
	sp.mu.Lock()
	if sp.active[p.UserID] == act {
		delete(sp.active, p.UserID)
	}
	stopped := act.stopped
	sp.mu.Unlock()
	if !stopped {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sp.opts.Audit.AuditSupervision(ctx, p.Actor(), ticketing.SupervisionAudit{CallID: act.sv.CallID(), AgentID: act.agentID, Action: "stop"}); err != nil {
			sp.log.Warn("web: supervisors: audit of a supervision's end", "call_id", act.sv.CallID(), "err", err)
		}
	}
}

// mine returns the caller's supervision of callID, or a 404.
func (sp *Supervisors) mine(p ticketing.Principal, callID string) (*activeSupervision, error) {
	sp.mu.Lock()
	act := sp.active[p.UserID]
	sp.mu.Unlock()
	if act == nil || act.sv.CallID() != callID {
		return nil, notFound("you do not supervise call %q", callID)
	}
	return act, nil
}

func (sp *Supervisors) change(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	callID := r.PathValue("id")
	mode, err := readMode(r)
	if err != nil {
		return err
	}
	act, err := sp.mine(p, callID)
	if err != nil {
		return err
	}
	agentID := act.sv.AgentID()
	// The call may have been transferred to an agent outside the supervisor's groups.
	if err := sp.allowed(r.Context(), p, agentID); err != nil {
		return err
	}
	if err := sp.audit(r.Context(), p, callID, agentID, string(mode)); err != nil {
		return err
	}
	if err := act.sv.SetMode(mode); err != nil {
		return notFound("call %q has ended", callID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"supervision": supervisionJSON{CallID: callID, AgentID: agentID, SupervisorID: p.UserID, Mode: string(mode)}})
	return nil
}

func (sp *Supervisors) stop(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	callID := r.PathValue("id")
	act, err := sp.mine(p, callID)
	if err != nil {
		return err
	}
	// Leaving is never refused: the audio stops even when its entry cannot be written (then
	// the end is logged).
	sp.mu.Lock()
	act.stopped = true
	sp.mu.Unlock()
	act.sv.Stop()
	if err := sp.opts.Audit.AuditSupervision(r.Context(), p.Actor(), ticketing.SupervisionAudit{CallID: callID, AgentID: act.sv.AgentID(), Action: "stop"}); err != nil {
		sp.log.Warn("web: supervisors: audit of a supervision's end", "call_id", callID, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (sp *Supervisors) current(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	sp.mu.Lock()
	act := sp.active[p.UserID]
	sp.mu.Unlock()
	var out any
	if act != nil {
		out = supervisionJSON{CallID: act.sv.CallID(), AgentID: act.sv.AgentID(), SupervisorID: p.UserID, Mode: string(act.sv.Mode())}
	}
	writeJSON(w, http.StatusOK, map[string]any{"supervision": out})
	return nil
}

type wallQueueJSON struct {
	Name         string         `json:"name"`
	CallsWaiting int            `json:"calls_waiting"`
	LongestWait  int64          `json:"longest_wait"`
	Agents       map[string]int `json:"agents"`
	// The last hour (the queue report): offered, answered, abandoned, and the service level
	// (answered within the queue's threshold ÷ offered; null without calls).
	Offered             int64    `json:"offered"`
	Answered            int64    `json:"answered"`
	Abandoned           int64    `json:"abandoned"`
	ServiceLevel        *float64 `json:"service_level"`
	ServiceLevelSeconds int      `json:"service_level_seconds"`
}

type wallAgentJSON struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Email  string   `json:"email"`
	State  string   `json:"state"`
	Since  string   `json:"since"`
	CallID string   `json:"call_id,omitempty"`
	Queues []string `json:"queues"`
}

func (sp *Supervisors) wallboard(w http.ResponseWriter, r *http.Request, p ticketing.Principal) error {
	sc, err := sp.scope(r.Context(), p)
	if err != nil {
		return err
	}
	now := sp.opts.Now().UTC().Truncate(time.Second)
	qs := sp.opts.ACD.Queues()
	queues := make([]wallQueueJSON, len(qs))
	idx := map[string]int{}
	for i, q := range qs {
		queues[i] = wallQueueJSON{Name: q.Name, CallsWaiting: q.Waiting, LongestWait: int64(q.LongestWait / time.Second), Agents: map[string]int{}}
		for st, n := range q.Agents {
			queues[i].Agents[string(st)] = n
		}
		idx[q.Name] = i
	}
	if sp.opts.Reports != nil {
		rows, err := sp.opts.Reports.QueueReport(r.Context(), ticketing.ReportQuery{From: now.Add(-time.Hour), To: now}, sp.opts.ReportOptions)
		if err != nil {
			// The live half still answers: the report's figures stay null.
			sp.log.Warn("web: wallboard: queue report", "err", err)
		}
		for _, row := range rows {
			if i, ok := idx[row.Queue]; ok {
				q := &queues[i]
				q.Offered, q.Answered, q.Abandoned = row.Offered, row.Answered, row.Abandoned
				q.ServiceLevel, q.ServiceLevelSeconds = row.ServiceLevel, row.ServiceLevelSeconds
			}
		}
	}
	// Only the agents the supervisor supervises (their groups'); the queues' figures stay whole.
	agents := []wallAgentJSON{}
	for _, a := range sp.opts.ACD.Agents() {
		if !sc.Allows(a.ID) {
			continue
		}
		q := a.Queues
		if q == nil {
			q = []string{}
		}
		agents = append(agents, wallAgentJSON{ID: a.ID, Name: a.Name, Email: a.Email, State: string(a.State),
			Since: a.Since.UTC().Format(time.RFC3339), CallID: a.CallID, Queues: q})
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i].ID < agents[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"wallboard": map[string]any{"queues": queues, "agents": agents, "at": now.Format(time.RFC3339)}})
	return nil
}
