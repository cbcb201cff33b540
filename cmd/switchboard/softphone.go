package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/switchboard-voice/switchboard/config"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ivr/acdpg"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/recordings"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/web"
)

// startSoftphone mounts the agent page and its WebRTC legs, makes the agents reachable (the
// softphone when its page is connected, the SIP phone otherwise), and serves POST /calls.
// It runs once the ACD and the B2BUA exist.
func (t *telephony) startSoftphone(mux *http.ServeMux) error {
	gw := t.gw
	// Each agent's WebRTC leg relays through an internal endpoint on loopback: the RTP range
	// itself when it is on loopback, the same port numbers on 127.0.0.1 otherwise.
	alloc := t.ports
	if !t.ports.Addr().IsLoopback() {
		var err error
		if alloc, err = media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), gw.cfg.RTP.PortMin, gw.cfg.RTP.PortMax); err != nil {
			return err
		}
	}
	wcfg := gw.cfg.WebRTC
	ropts := media.WebRTCOptions{
		ICEAddress: netip.AddrPortFrom(t.ports.Addr(), uint16(wcfg.PortMin)), ICEPortMax: uint16(wcfg.PortMax),
		PublicIP: gw.cfg.SIP.ExternalAddr(), Allocator: alloc,
	}
	if wcfg.TCPPort != 0 {
		ropts.ICETCPAddress = netip.AddrPortFrom(t.ports.Addr(), uint16(wcfg.TCPPort))
	}
	rtc, err := media.NewWebRTC(ropts)
	if err != nil {
		return fmt.Errorf("webrtc: %w", err)
	}
	t.rtc = rtc
	// Team ticket entry (docs/rules.md, TB) from the configuration's teams: the page and POST /calls.
	teams := web.TeamPolicy(gw.cfg.TicketEntryOf)
	var pauser web.RecordingPauser
	if t.recs != nil {
		pauser = recordingPauser{t.recs}
	}
	// Toll fraud: the outbound trunk's destinations and agent limits, checked before dialling.
	var gopts web.GuardOptions
	if tr, ok := outboundTrunk(gw.cfg); ok {
		o := tr.Outbound
		gopts = web.GuardOptions{Allow: o.Destinations.Allow, Deny: o.Destinations.Deny,
			CallsPerMinute: o.AgentLimits.CallsPerMinute, MaxCalls: o.AgentLimits.MaxCalls}
	}
	gopts.Registerer = gw.reg
	guard, err := web.NewOutboundGuard(gopts)
	if err != nil {
		return err
	}
	// Transfers to outside numbers are checked against the same destinations (no trunk that
	// takes outbound calls: none may be dialled).
	transfers := &web.Transfers{ACD: sip.ClusterACD{ACD: t.acd, SIP: t.sip}, Numbers: gw.store, Log: gw.log.With("component", "transfer")}
	if _, ok := outboundTrunk(gw.cfg); ok {
		transfers.Guard = guard
	}
	t.transfers.Store(transfers)
	t.web, err = web.New(web.Options{
		Auth: webLogin{gw.store}, ACD: sip.ClusterACD{ACD: t.acd, SIP: t.sip}, WebRTC: rtc, APIBase: "/api/v2",
		Registerer: gw.reg, Logger: gw.log.With("component", "softphone"), Teams: teams,
		SecureCookie: gw.cfg.HTTP.Secure(), Guard: gw.guard, ICEServers: iceServers(wcfg.ICEServers),
		Recordings: pauser, Sessions: webSessions{gw.store}, Transfers: transfers, FrontURL: pageFront(gw.cfg),
	})
	if err != nil {
		return err
	}
	t.pages.Store(t.web)
	// A logout, or a password or role change, on any node of the cluster ends the agent's
	// softphone on this one (NOTIFY switchboard_page_sessions).
	page := t.web
	gw.wg.Add(1)
	go func() {
		defer gw.wg.Done()
		gw.store.WatchPageSessions(gw.bgCtx, page.EndSessions, 0, gw.log.With("component", "softphone"))
	}()
	t.web.Register(mux)
	// Agents are reached on their page when it is open, else on their SIP phone; an agent
	// attached to another node of the cluster through the internal leg to that node.
	t.acd.SetDialer(t.sip.ClusterDialer(web.PreferSoftphone(t.web, t.sip.PhoneDialer())))

	// Queue callbacks dial the caller through the trunk under the same destination rules.
	t.acd.SetCallbackDialer(callbackDialer{Server: t.sip, guard: guard})
	// Pending callbacks are kept in the database (acd_callbacks): the ones this node's previous
	// run left are taken up again now, before calls arrive, at their places; a lost node's
	// are taken over by the node that sweeps it (ticketing.go's OnLost).
	if t.gw.pool != nil {
		t.acd.SetCallbackStore(acdpg.NewCallbacks(t.gw.pool), t.gw.cfg.Node)
		rctx, cancel := context.WithTimeout(t.gw.bgCtx, 10*time.Second)
		if err := t.acd.ResumeCallbacks(rctx); err != nil {
			t.gw.log.Error("queue callbacks of the previous run not taken up (the database did not answer); they are taken up at the next start",
				"err", err)
		}
		cancel()
		t.gw.callbackACD.Store(t.acd)
	}

	out := &web.Outbound{Store: gw.store, Dialer: trunkDialer{t}, Teams: teams, Guard: guard,
		Lines: outboundLines(gw.cfg), Roster: t.acd, Log: gw.log.With("component", "outbound")}
	t.outbound.Store(out) // the agents' SIP phones' own calls go through the same checks
	// The roster's lines to call from, when it read them before the page was wired.
	if ls := t.outLines.Load(); ls != nil {
		out.SetLines(*ls)
	}
	caller := func(r *http.Request) (int64, bool) {
		p, err := gw.api.Authenticate(r)
		return p.UserID, err == nil
	}
	mux.Handle("POST /api/v2/calls", out.Handler(caller))
	mux.Handle("GET /api/v2/lines", out.LinesHandler(caller))
	// TU-3, TU-4: an agent's callback of a call, onto its ticket.
	mux.Handle("POST /api/v2/calls/{id}/callback", out.CallbackHandler(gw.engine, nil, caller))
	// Transfers of a connected queue call by its agent (web/transfer.go).
	mux.Handle("POST /api/v2/calls/{id}/transfer", transfers.Handler("", caller))
	mux.Handle("POST /api/v2/calls/{id}/transfer/complete", transfers.Handler("complete", caller))
	mux.Handle("POST /api/v2/calls/{id}/transfer/cancel", transfers.Handler("cancel", caller))
	// Issue 21: the agent adds a party to the call (the same dial plan). ClusterACD and
	// DialConference: in a cluster, a call another node owns is conferenced there.
	mux.Handle("POST /api/v2/calls/{id}/conference", out.ConferenceHandler(sip.ClusterACD{ACD: t.acd, SIP: t.sip}, conferenceDialer{t}, caller))
	return t.mountSupervisors(mux)
}

// recordingPauser gives the page's Pause recording button the recordings service, saying
// web.ErrNotRecorded for a call it does not record.
type recordingPauser struct{ svc *recordings.Service }

func (p recordingPauser) PauseCall(ctx context.Context, callID string, by int64, pause bool) error {
	err := p.svc.PauseCall(ctx, callID, by, pause)
	if errors.Is(err, recordings.ErrNotFound) {
		return fmt.Errorf("%w: %w", web.ErrNotRecorded, err)
	}
	return err
}

// iceServers are the configuration's STUN/TURN servers as the page gets them.
func iceServers(cs []config.ICEServer) []web.ICEServer {
	var out []web.ICEServer
	for _, c := range cs {
		out = append(out, web.ICEServer{URLs: c.URLs, Username: c.Username, Credential: c.Credential})
	}
	return out
}

// outboundLines are the configuration's lines agents may call from (OB-7: those whose trunk
// takes outbound calls) and the queues' default lines (queues.NAME.outbound_line).
func outboundLines(cfg *config.Config) web.OutboundLines {
	var ls web.OutboundLines
	for _, ol := range cfg.OutboundLines() {
		name := ol.Line.Name
		if name == "" {
			name = ol.Line.Number
		}
		ls.Lines = append(ls.Lines, web.OutboundLine{Number: ol.Line.Number, Name: name, Language: ol.Line.Language, Trunk: ol.Trunk.Name})
	}
	for name, q := range cfg.Queues {
		if q != nil && q.OutboundLine != "" {
			if ls.QueueDefaults == nil {
				ls.QueueDefaults = map[string]string{}
			}
			ls.QueueDefaults[name] = q.OutboundLine
		}
	}
	return ls
}

// webLogin checks the page's logins against the ticketing core's agents and admins.
type webLogin struct{ store *ticketing.Store }

func (l webLogin) Login(ctx context.Context, email, password string) (web.Agent, error) {
	u, err := l.store.CheckPassword(ctx, email, password)
	if err != nil {
		if errors.Is(err, ticketing.ErrUnauthorized) {
			return web.Agent{}, web.ErrBadCredentials
		}
		return web.Agent{}, err
	}
	if !u.IsStaff() {
		return web.Agent{}, web.ErrBadCredentials
	}
	e := ""
	if u.Email != nil {
		e = *u.Email
	}
	return web.Agent{ID: u.ID, Email: e, Name: u.Name}, nil
}

// webSessions keeps the page's logins in the ticketing store (page_sessions), where every node
// of a cluster finds them.
type webSessions struct{ store *ticketing.Store }

func (ws webSessions) CreateSession(ctx context.Context, key []byte, a web.Agent, expires time.Time) error {
	return ws.store.CreatePageSession(ctx, key, a.ID, expires)
}

func (ws webSessions) Session(ctx context.Context, key []byte) (web.Agent, time.Time, error) {
	u, exp, err := ws.store.PageSession(ctx, key)
	if errors.Is(err, ticketing.ErrNotFound) {
		return web.Agent{}, time.Time{}, fmt.Errorf("%w: %w", web.ErrNoSession, err)
	}
	if err != nil {
		return web.Agent{}, time.Time{}, err
	}
	e := ""
	if u.Email != nil {
		e = *u.Email
	}
	return web.Agent{ID: u.ID, Email: e, Name: u.Name}, exp, nil
}

func (ws webSessions) EndSession(ctx context.Context, key []byte) error {
	return ws.store.EndPageSession(ctx, key)
}

// outboundTrunk is the trunk agents' outbound calls go through: the first with outbound.uri.
func outboundTrunk(cfg *config.Config) (config.Trunk, bool) {
	for _, tr := range cfg.Trunks {
		if tr.Outbound.URI != "" {
			return tr, true
		}
	}
	return config.Trunk{}, false
}

// trunkDialer hands an agent's validated outbound call (web.Outbound) to sip, which puts it on
// the agent's softphone, dials the trunk and bridges the answer; it only translates sip's
// refusals into the API's answers (the cause — addresses, ports, SIP internals — goes to the
// log, never to the client).
type trunkDialer struct{ t *telephony }

func (d trunkDialer) Dial(ctx context.Context, req web.Dial) (string, error) {
	t := d.t
	ac, err := t.agentCall(req)
	if err != nil {
		return "", err
	}
	ac.Softphone = t.web
	id, err := t.sip.CallForAgent(ctx, ac)
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, sip.ErrDraining) || errors.Is(err, sip.ErrClosed):
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "the call cannot be placed now: the gateway is shutting down"}
	case errors.Is(err, sip.ErrOverCapacity):
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "the call cannot be placed now: the gateway is at its call limit"}
	case errors.Is(err, web.ErrNotConnected):
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "your softphone cannot take the call: open the softphone page before dialling"}
	case errors.Is(err, web.ErrBusy):
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "your softphone cannot take the call: you are already on a call"}
	case errors.Is(err, ivr.ErrAgentUnavailable):
		return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "you are on or being offered a call: answer or decline it first"}
	}
	id = web.ErrorID()
	t.gw.log.Error("outbound call not placed", "agent_id", req.AgentID, "error_id", id, "err", err)
	return "", &ticketing.Error{Kind: ticketing.ErrConflict, Description: "the call cannot be placed now (error id " + id + ")"}
}

// agentCall is a validated outbound dial (the page's or an agent's SIP phone's) as sip places
// it: OB-7, the line the agent called from (or their queue's default) is the caller ID, its
// trunk dials; without one, the first outbound trunk with its caller ID. call.started carries
// the plan's ticket choices and the line's language.
func (t *telephony) agentCall(req web.Dial) (sip.AgentCall, error) {
	trunk, line, lang := req.Line.Trunk, req.Line.Number, req.Line.Language
	if line == "" {
		tr, ok := outboundTrunk(t.gw.cfg)
		if !ok {
			return sip.AgentCall{}, &ticketing.Error{Kind: ticketing.ErrConflict, Description: "no trunk takes outbound calls on this gateway"}
		}
		trunk, line = tr.Name, tr.Outbound.CallerID
		if l, ok := t.gw.cfg.Line(line); ok { // the caller ID is a line: its language
			lang = l.Language
		}
	}
	return sip.AgentCall{
		AgentID: req.AgentID, Number: req.To, Trunk: trunk, Line: line, Ended: req.Ended,
		Started: func(e *callevent.Event) {
			e.RequesterID, e.TicketChoice, e.EnteredNumber = req.ContactID, req.TicketChoice, req.EnteredNumber
			e.Language = lang // OB-7: the calling line's language
			if req.TicketID != nil {
				e.TicketID = *req.TicketID
			}
		},
	}, nil
}

// phoneCall checks an agent's SIP phone's own call through the page's outbound checks
// (web.Outbound.PhoneDial) and returns it for sip to place (sip.Options.PhoneCall).
func (t *telephony) phoneCall(ctx context.Context, agentID int64, number string) (sip.AgentCall, error) {
	out := t.outbound.Load()
	if out == nil {
		return sip.AgentCall{}, &web.PhoneRefusal{Status: 503, Reason: "outbound calls are not ready"}
	}
	d, err := out.PhoneDial(ctx, agentID, number)
	if err != nil {
		return sip.AgentCall{}, err
	}
	ac, err := t.agentCall(d)
	if err != nil {
		d.Ended()
		return sip.AgentCall{}, &web.PhoneRefusal{Status: 403, Reason: "no trunk takes outbound calls on this gateway"}
	}
	return ac, nil
}

// callbackDialer places queue callbacks through sip (ivr.CallbackDialer) and refuses the
// numbers the outbound trunk's destination rules refuse (ivr.CallbackChecker): a caller ID
// can be forged.
type callbackDialer struct {
	*sip.Server
	guard *web.OutboundGuard
}

func (d callbackDialer) CallbackAllowed(to string) error {
	if reason := d.guard.Destination(to); reason != "" {
		return fmt.Errorf("outbound destination rules: %s", reason)
	}
	return nil
}

// refer carries out an agent phone's REFER through the page's transfer checks (web.Transfers).
func (t *telephony) refer(ctx context.Context, callID string, agentID int64, to sip.ReferTarget) error {
	tr := t.transfers.Load()
	if tr == nil {
		return errors.New("transfers are not ready")
	}
	return tr.Refer(ctx, callID, agentID, to.AgentID, to.Number)
}

// phoneConsult carries out the consult of an agent phone's attended transfer (its call
// through the gateway to the target) through the same checks.
func (t *telephony) phoneConsult(ctx context.Context, callID string, agentID int64, to sip.ReferTarget, via ivr.AgentLeg, onEnd func(ivr.ConsultEnd)) error {
	tr := t.transfers.Load()
	if tr == nil {
		return errors.New("transfers are not ready")
	}
	return tr.PhoneConsult(ctx, callID, agentID, to.AgentID, to.Number, via, onEnd)
}

// phoneComplete completes it (the phone's REFER with Replaces).
func (t *telephony) phoneComplete(ctx context.Context, callID string, agentID int64) error {
	tr := t.transfers.Load()
	if tr == nil {
		return errors.New("transfers are not ready")
	}
	return tr.PhoneComplete(ctx, callID, agentID)
}
