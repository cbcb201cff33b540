package sip

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

// Supervision across the nodes of a cluster (issues 19 and 21).
//
// A call's mix lives on the node that owns the call (node A: the caller's leg, the ACD's
// session, the bridge to the agent — whose leg is local or the internal leg to the agent's
// node). A supervisor's page may be attached to another node (node B). B's ClusterACD first
// asks its own ACD; when that holds no such call it looks up, in the cluster's shared agent
// states, the node of the call the agent is on (ivr.AgentStatus.CallNode) and places a
// supervisor's leg there: an internal INVITE to A's cluster internal address, signed as an
// offer to an agent is (X-Switchboard-Offer with sup=<mode> and the call's id instead of an
// agent; the same networks, HMAC, timestamp and replay checks), whose SDP is B's end of the
// supervisor's audio. A joins that leg's endpoint to the call with its ACD's Supervise
// (ClusterOptions.Control) — monitor, whisper, barge and conferences exactly as for a
// supervisor of its own — and answers 200 naming the agent (X-Switchboard-Agent), or refuses:
// 404 (no such call), 409 (on hold, the supervisor's leg busy, the conference full), with the
// refusal's ivr error named in X-Switchboard-Error. B then bridges the leg to the supervisor's
// endpoint (their page's softphone). A mode change is an INFO on the leg (ctlContentType,
// op=supervise_mode), answered once A's mix applied it. Either side ends both: B's Stop, the
// supervisor's page closing or B shutting down send BYE (A stops the supervision); the call
// ending, or leaving its agent, ends A's supervision and A sends BYE (B's Done closes, and
// the page's supervisor API writes its "stop" entry). The audit is the supervisor's node's
// (web.Supervisors, once per action); the call's node trusts a signed leg from the cluster's
// internal networks as it trusts a relayed transfer. Neither side emits an event for the leg.

// offerSupervise is the offer key naming a supervisor's leg's mode.
const offerSupervise = "sup"

// hdrAgent, in the call's node's 200 to a supervisor's leg and to its mode changes, names the
// agent the call is connected to now (a transfer may have moved it).
const hdrAgent = "X-Switchboard-Agent"

// superviseDialTimeout bounds the supervisor's leg's INVITE (the call's node answers at once:
// nothing rings) and a mode change's INFO.
const superviseDialTimeout = 10 * time.Second

// supervisePoll is how often the supervisor's node checks that the supervisor's endpoint is
// still open (the page closed: the supervision ends), as the ACD's own supervisions do.
const supervisePoll = 100 * time.Millisecond

// Supervise joins the supervisor's endpoint sup to call callID in mode: this node's ACD's
// call, else — on a node of a cluster — a call another node owns, reached through the
// internal leg (the mix stays on the call's node). Errors are the ACD's (ivr.ErrNoCall,
// ivr.ErrNotBridged, ivr.ErrSupervised, ivr.ErrConferenceFull, ivr.ErrBadMode), whichever
// node refused, or the internal leg's.
func (a ClusterACD) Supervise(callID string, sup *media.Endpoint, mode ivr.SuperviseMode) (ivr.Supervision, error) {
	sv, err := a.ACD.Supervise(callID, sup, mode)
	if !errors.Is(err, ivr.ErrNoCall) || a.SIP == nil || !a.SIP.clusterOn() {
		return sv, err
	}
	node, agentID := a.callNode(callID)
	if node == "" || node == a.SIP.opts.Cluster.Node {
		return nil, err
	}
	return a.SIP.superviseOn(node, callID, agentID, sup, mode)
}

// callNode returns the node that owns call callID and its agent, from the cluster's shared
// agent states ("" when no agent is on it, or the states are not shared).
func (a ClusterACD) callNode(callID string) (string, int64) {
	for _, st := range a.ACD.Agents() {
		if st.CallID == callID && st.CallNode != "" {
			return st.CallNode, st.ID
		}
	}
	return "", 0
}

// superviseOn places a supervisor's leg for call callID to node, the call's, and bridges it to
// sup once the call's node joined it to the call.
func (s *Server) superviseOn(node, callID string, agentID int64, sup *media.Endpoint, mode ivr.SuperviseMode) (ivr.Supervision, error) {
	if !mode.Valid() {
		return nil, fmt.Errorf("%w: %q", ivr.ErrBadMode, mode)
	}
	if s.opts.Cluster.Resolve == nil {
		return nil, fmt.Errorf("sip: supervise %s on node %s: %w", callID, logValue(node), ErrNoInternalLeg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), superviseDialTimeout)
	defer cancel()
	uri, err := s.internalURI(ctx, node, "supervisor")
	if err != nil {
		return nil, fmt.Errorf("sip: supervise %s: %w", callID, err)
	}
	c, err := s.newSupervisorCall(callID)
	if err != nil {
		return nil, fmt.Errorf("sip: supervise %s: %w", callID, err)
	}
	sipCallID := uuid.NewString()
	value := s.encodeSupervise(callID, mode)
	out, err := c.Dial(ctx, DialOptions{
		URI:         uri,
		FromUser:    "supervisor",
		RingTimeout: superviseDialTimeout,
		headers: []sip.Header{
			sip.NewHeader(hdrOffer, value),
			sip.NewHeader(hdrSignature, s.signOffer(sipCallID, value)),
		},
		callID:   sipCallID,
		internal: true,
	})
	if err != nil {
		s.discardCall(c)
		var se *StatusError
		if errors.As(err, &se) {
			if e := tokenErr(se.token); e != nil {
				return nil, fmt.Errorf("sip: supervise %s: the call's node: %w", callID, e)
			}
			if se.Code == 404 {
				return nil, fmt.Errorf("sip: supervise %s: the call's node: %w", callID, ivr.ErrNoCall)
			}
		}
		return nil, fmt.Errorf("sip: supervise %s on node %s: %w", callID, logValue(node), err)
	}
	if id, ok := agentOf(out.answer); ok {
		agentID = id
	}
	unbridge, err := media.Bridge(sup, out.Endpoint())
	if err != nil {
		s.discardCall(c) // BYE: the call's node stops its side
		if errors.Is(err, media.ErrBridged) {
			return nil, fmt.Errorf("sip: supervise %s: %w", callID, ivr.ErrSupervised)
		}
		return nil, fmt.Errorf("sip: supervise %s: %w", callID, err)
	}
	rs := &remoteSupervision{s: s, call: c, out: out, callID: callID, sup: sup, unbridge: unbridge,
		stop: make(chan struct{}), done: make(chan struct{}), turn: make(chan struct{}, 1), mode: mode, agentID: agentID}
	go rs.run()
	return rs, nil
}

// newSupervisorCall makes and counts the call of a supervisor's leg on the supervisor's node:
// internal (no event, no recording, no call metric), ended by discardCall.
func (s *Server) newSupervisorCall(callID string) (*Call, error) {
	c := &Call{s: s, id: uuid.NewString(), direction: "internal", internal: true, superviseOf: callID,
		received: s.now(), holdLegs: map[*leg]bool{}, maxFwd: 70}
	if err := s.admitPlaced(c); err != nil {
		return nil, err
	}
	return c, nil
}

// encodeSupervise is the offer of a supervisor's leg (encodeOffer's form: the same checks
// verify it).
func (s *Server) encodeSupervise(callID string, mode ivr.SuperviseMode) string {
	v := url.Values{}
	v.Set("v", "1")
	v.Set("node", s.opts.Cluster.Node)
	v.Set("ts", strconv.FormatInt(s.now().Unix(), 10))
	v.Set("call", callID)
	v.Set(offerSupervise, string(mode))
	return v.Encode()
}

// agentOf reads X-Switchboard-Agent of a response.
func agentOf(res *sip.Response) (int64, bool) {
	if res == nil {
		return 0, false
	}
	h := res.GetHeader(hdrAgent)
	if h == nil {
		return 0, false
	}
	id, err := strconv.ParseInt(h.Value(), 10, 64)
	return id, err == nil && id > 0
}

// remoteSupervision is a supervision, from this node, of a call another node owns: the
// supervisor's endpoint is bridged to the supervisor's leg, whose other end is a member of the
// call's mix there. Its goroutine (run) owns the leg's end.
type remoteSupervision struct {
	s        *Server
	call     *Call
	out      *OutboundLeg
	callID   string
	sup      *media.Endpoint
	unbridge func()
	stop     chan struct{}
	once     sync.Once
	done     chan struct{}
	// turn lets one request at a time cross the leg — a mode change's INFO, or run's BYE,
	// which keeps it — so that two changes apply in the order they were asked, and a BYE never
	// overtakes an INFO: the call's node refuses a request whose CSeq is lower than one it
	// took (500, RFC 3261 §12.2.2), and a refused BYE would leave its side of the leg up. A
	// token, not a lock: it is held across the request, and only those wait on it.
	turn chan struct{}

	mu      sync.Mutex // guards mode and agentID
	mode    ivr.SuperviseMode
	agentID int64
}

func (rs *remoteSupervision) CallID() string { return rs.callID }

func (rs *remoteSupervision) AgentID() int64 {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.agentID
}

func (rs *remoteSupervision) Mode() ivr.SuperviseMode {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.mode
}

func (rs *remoteSupervision) Done() <-chan struct{} { return rs.done }

// SetMode asks the call's node to change the mode and returns once its mix applied it.
func (rs *remoteSupervision) SetMode(mode ivr.SuperviseMode) error {
	if !mode.Valid() {
		return fmt.Errorf("%w: %q", ivr.ErrBadMode, mode)
	}
	select {
	case rs.turn <- struct{}{}:
	case <-rs.done:
		return fmt.Errorf("%w: %s", ivr.ErrNoCall, rs.callID)
	}
	defer func() { <-rs.turn }()
	select {
	case <-rs.done:
		return fmt.Errorf("%w: %s", ivr.ErrNoCall, rs.callID)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), superviseDialTimeout)
	defer cancel()
	res, err := rs.out.l.sendInfo(ctx, url.Values{"op": {"supervise_mode"}, "mode": {string(mode)}})
	if err != nil {
		return fmt.Errorf("sip: supervise %s: mode change to the call's node: %w", rs.callID, err)
	}
	if !res.IsSuccess() {
		if res.StatusCode == 404 || res.StatusCode == 481 {
			return fmt.Errorf("%w: %s", ivr.ErrNoCall, rs.callID)
		}
		return fmt.Errorf("sip: supervise %s: the call's node answered %d to a mode change", rs.callID, res.StatusCode)
	}
	rs.mu.Lock()
	rs.mode = mode
	if id, ok := agentOf(res); ok {
		rs.agentID = id
	}
	rs.mu.Unlock()
	return nil
}

// Stop ends the supervision (BYE to the call's node) and returns once it has ended.
func (rs *remoteSupervision) Stop() {
	rs.once.Do(func() { close(rs.stop) })
	<-rs.done
}

// run ends the supervision when it is stopped, the call's node ends the leg (the call ended or
// left its agent), this node shuts down, or the supervisor's endpoint closes.
func (rs *remoteSupervision) run() {
	defer close(rs.done)
	rs.watch()
	rs.unbridge()
	// A mode change under way finishes first (bounded by its INFO's timeout); the token is
	// kept, so none starts after: the BYE is the leg's last request.
	rs.turn <- struct{}{}
	rs.s.discardCall(rs.call) // BYE, unless the call's node ended the leg
}

// watch returns once the supervision is to end.
func (rs *remoteSupervision) watch() {
	t := time.NewTicker(supervisePoll)
	defer t.Stop()
	for {
		select {
		case <-rs.stop:
			return
		case <-rs.out.Done():
			return
		case <-rs.call.ctx.Done():
			return
		case <-t.C:
			if rs.sup.Closed() {
				return
			}
		}
	}
}

// runSupervisorLeg joins an admitted supervisor's leg from another node to call callID of
// this node (ClusterOptions.Control's Supervise) and answers it, or refuses it with the ACD's
// refusal; then keeps the supervision until either side ends it.
func (s *Server) runSupervisorLeg(c *Call, callID string, mode ivr.SuperviseMode) {
	l := c.carrier
	defer func() {
		c.cancel(causeLocalHangup)
		if !l.isEnded() {
			l.bye(causeLocalHangup)
		}
	}()
	ctl := s.opts.Cluster.Control
	if ctl == nil {
		c.reject(501, "Not Implemented")
		l.end(causeLocalHangup)
		return
	}
	ans, err := l.acceptInternalOffer()
	if err != nil {
		c.reject(488, "Not Acceptable Here")
		l.end(causeLocalHangup)
		return
	}
	// Joined before the 200, so that a refusal is the INVITE's answer: the mix may send to the
	// supervisor's node a moment before it has the answer (its endpoint exists: it offered).
	sv, err := ctl.Supervise(callID, c.Endpoint(), mode)
	if err != nil {
		code, reason := 409, "Conflict"
		switch tok := errToken(err); {
		case errors.Is(err, ivr.ErrNoCall):
			code, reason = 404, "Not Found"
		case errors.Is(err, ivr.ErrBadMode):
			code, reason = 400, "Bad Request"
		case tok == "internal" && !errors.Is(err, media.ErrClosed):
			s.log.Info("sip: supervisor's leg refused", "call_id", callID, "error", err)
			code, reason = 500, "Server Internal Error"
		}
		var hdrs []sip.Header
		if tok := errToken(err); tok != "" && tok != "internal" {
			hdrs = append(hdrs, sip.NewHeader(hdrError, tok))
		}
		c.reject(code, reason, hdrs...)
		l.end(causeLocalHangup)
		return
	}
	defer sv.Stop() // before the BYE above
	c.mu.Lock()
	c.supervision = sv
	c.mu.Unlock()
	if !c.markFinal() {
		return // CANCELled meanwhile
	}
	if err := c.confirmInternal(c.ctx, ans, sip.NewHeader(hdrAgent, strconv.FormatInt(sv.AgentID(), 10))); err != nil {
		s.log.Info("sip: supervisor's leg not confirmed", "call_id", callID, "error", err)
		return
	}
	// No media watch here: the supervisor's node may send nothing while its supervisor is
	// silent, and the leg ends with the call at the latest (sv.Done) or the session timer.
	select {
	case <-c.ctx.Done(): // BYE from the supervisor's node, shutdown
	case <-sv.Done(): // the call ended or left its agent, or the leg's endpoint closed
	}
}

// handleSuperviseControl applies a mode change relayed on a supervisor's leg (an INFO with
// ctlContentType, op=supervise_mode): 200 with the agent on the call now, 404 once the
// supervision has ended, 400 for anything else.
func (l *leg) handleSuperviseControl(body []byte) (int, string, []sip.Header) {
	v, err := url.ParseQuery(string(body))
	if err != nil || v.Get("op") != "supervise_mode" {
		return 400, "Bad Request", nil
	}
	mode := ivr.SuperviseMode(v.Get("mode"))
	if !mode.Valid() {
		return 400, "Bad Request", nil
	}
	c := l.call
	c.mu.Lock()
	sv := c.supervision
	c.mu.Unlock()
	if sv == nil {
		return 481, "Call/Transaction Does Not Exist", nil
	}
	if err := sv.SetMode(mode); err != nil {
		return 404, "Not Found", []sip.Header{sip.NewHeader(hdrError, errToken(err))}
	}
	return 200, "OK", []sip.Header{sip.NewHeader(hdrAgent, strconv.FormatInt(sv.AgentID(), 10))}
}
