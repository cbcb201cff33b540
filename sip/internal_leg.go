package sip

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// The cluster's internal leg (issue 19: answering across nodes).
//
// A call is owned by the node its carrier leg reached (node A): its events, timing, recording
// and journal stay there. When the ACD offers it to an agent whose softphone page or SIP phone
// is attached to another node (ivr.Offer.Node = node B), node A places an internal leg of the
// call to node B: an INVITE to B's cluster internal address (ClusterOptions.Resolve) whose
// X-Switchboard-Offer header carries the offer (call id, agent, queue, caller, line,
// language, menu path, the origin node and a timestamp) and whose X-Switchboard-Signature is
// an HMAC-SHA256 of that header and the INVITE's Call-ID under the cluster secret. Node B
// refuses with 403 (and a security event, internal_refused) an internal INVITE from a source
// outside ClusterOptions.Networks, with a wrong signature, a timestamp off by more than
// MaxSkew, or one it has seen before; otherwise it rings the agent with its own local dialer
// (the softphone page, else the SIP phone registered with it: registrations stay on the node
// they registered with, and the ACD knows which node each agent is attached to), sends 180
// when the agent's phone rings, and answers the internal INVITE with 200 once the agent answered — 480 when the agent did
// not, 487 when node A CANCELled (ring timeout, caller gone) — then bridges the internal
// leg's RTP to the agent's leg. A BYE on either side ends both. Node B emits no event and
// creates nothing for the internal leg (Call.internal): to the ticketing core it is the agent
// leg of node A's call.
//
// Hold crosses the leg as a re-INVITE: a change of the call's hold state made on one node
// (the caller's re-INVITE on A, the agent's phone's on B) is sent across (sendonly, then
// sendrecv), so that node A's call times its hold whichever side held, and neither side's
// endpoint takes the quiet of a held call for a media timeout. The softphone's hold, resume
// and transfer buttons on node B (and the transfer API there: consults, outside numbers) are
// relayed to node A, which owns the call and its ACD, in an INFO on the internal leg
// (RelayControl, RelayConsult; ClusterOptions.Control on node A; relay_transfer.go).

// Headers of the internal leg.
const (
	hdrOffer     = "X-Switchboard-Offer"
	hdrSignature = "X-Switchboard-Signature"
	// hdrChannel, in node B's 200, says what the agent answered on (CF-1: the ticket's
	// session_type): callevent.ChannelWebRTC or callevent.ChannelSIP.
	hdrChannel = "X-Switchboard-Channel"
	// ctlContentType is the body type of a relayed softphone button (INFO on the internal
	// leg, from the agent's node to the call's; and the call's node's answers to the relayed
	// requests that wait for a target, the other way: relay_transfer.go).
	ctlContentType = "application/x-switchboard-control"
	// signatureLabel separates the internal leg's MACs from any other use of the secret.
	signatureLabel = "switchboard-internal-offer-v1"
	// resolveTimeout bounds the look-up of another node's internal address.
	resolveTimeout = 2 * time.Second
)

// Results of switchboard_cluster_offers_total.
const (
	offerAnswered = "answered"
	offerNoAnswer = "no_answer"
	offerRefused  = "refused"
)

// Errors of the internal leg. Both wrap ivr.ErrNoAnswer: the ACD counts them as a missed offer.
var (
	// ErrNoInternalLeg is returned by an offer to an agent on another node when the cluster's
	// internal leg is off (no cluster secret).
	ErrNoInternalLeg = fmt.Errorf("sip: the cluster's internal leg is off: %w", ivr.ErrNoAnswer)
	// ErrNodeUnreachable is returned by an offer to an agent on a node whose internal address
	// is unknown.
	ErrNodeUnreachable = fmt.Errorf("sip: the agent's node has no known internal address: %w", ivr.ErrNoAnswer)
	// ErrNotInternal is returned by RelayControl for a call this node does not relay.
	ErrNotInternal = errors.New("sip: not a call relayed for another node")
)

// Reasons an internal INVITE is refused (403), for the security log.
var (
	errOutsideNetworks = errors.New("source outside cluster.internal_networks")
	errBadSignature    = errors.New("missing or wrong signature")
	errStale           = errors.New("stale or future timestamp")
	errReplayed        = errors.New("replayed")
	errBadOffer        = errors.New("malformed offer")
	errOwnNode         = errors.New("offer claims to come from this node")
)

// clusterOn reports whether the internal leg is on.
func (s *Server) clusterOn() bool { return len(s.opts.Cluster.Secret) > 0 }

// inInternalNetworks reports whether a is in the cluster's internal networks (never when the
// internal leg is off).
func (s *Server) inInternalNetworks(a netip.Addr) bool {
	if !s.clusterOn() || !a.IsValid() {
		return false
	}
	for _, p := range s.opts.Cluster.Networks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClusterDialer returns the ivr.AgentDialer the ACD uses on a node of a cluster: an offer for
// an agent attached to this node (Offer.Node empty or this node) goes to local, the dialer of
// this node's softphones and registered phones; one for another node goes over the internal
// leg. local is also what answers other nodes' internal INVITEs. Without the cluster secret,
// offers for other nodes fail at once with ErrNoInternalLeg.
func (s *Server) ClusterDialer(local ivr.AgentDialer) ivr.AgentDialer {
	s.localDialer.Store(&local)
	return clusterDialer{s: s, local: local}
}

type clusterDialer struct {
	s     *Server
	local ivr.AgentDialer
}

// Offer implements ivr.AgentDialer.
func (d clusterDialer) Offer(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
	s := d.s
	if o.Node == "" || o.Node == s.opts.Cluster.Node {
		return d.local.Offer(ctx, o)
	}
	leg, err := s.offerInternal(ctx, o)
	switch {
	case err == nil:
		s.m.internalOffers.WithLabelValues("sent", offerAnswered).Inc()
	case errors.Is(err, ErrNoInternalLeg) || errors.Is(err, ErrNodeUnreachable) || errors.Is(err, ErrUnknownCall):
		s.m.internalOffers.WithLabelValues("sent", offerRefused).Inc()
	default:
		var se *StatusError
		if errors.As(err, &se) && se.Code == 403 {
			s.m.internalOffers.WithLabelValues("sent", offerRefused).Inc()
		} else {
			s.m.internalOffers.WithLabelValues("sent", offerNoAnswer).Inc()
		}
	}
	return leg, err
}

// offerInternal places the internal leg of o's call to o.Node and waits for its answer.
func (s *Server) offerInternal(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
	if !s.clusterOn() || s.opts.Cluster.Resolve == nil {
		return nil, fmt.Errorf("sip: offer %s to agent %d on node %s: %w", o.CallID, o.AgentID, logValue(o.Node), ErrNoInternalLeg)
	}
	var c *Call
	if o.Callback {
		// A queue callback: the caller is gone. The internal leg is the first leg of the
		// callback's own outbound call, made here; DialCallback then dials the caller on it.
		cb, err := s.newOutboundCall(s.callbackTrunk(o.Line), o.From, o.Line)
		if err != nil {
			return nil, fmt.Errorf("sip: offer the callback of %s to agent %d on node %s: %w", o.CallID, o.AgentID, logValue(o.Node), err)
		}
		c = cb
	} else if c = s.callByID(o.CallID); c == nil {
		return nil, fmt.Errorf("sip: offer %s to agent %d: %w", o.CallID, o.AgentID, ErrUnknownCall)
	}
	leg, err := s.offerInternalOn(ctx, c, o)
	if o.Callback {
		if err != nil {
			s.discardCall(c)
			return nil, err
		}
		il := leg.(*internalAgentLeg)
		return &callbackPhoneLeg{call: c, MediaAgentLeg: il.MediaAgentLeg, channel: il.channel}, nil
	}
	return leg, err
}

// offerInternalOn places the internal leg of o on call c (o's call, or a queue callback's own
// call) to o.Node and waits for its answer.
func (s *Server) offerInternalOn(ctx context.Context, c *Call, o ivr.Offer) (ivr.AgentLeg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	uri, err := s.internalURI(ctx, o.Node, "agent-"+strconv.FormatInt(o.AgentID, 10))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("sip: offer %s to agent %d: %w", o.CallID, o.AgentID, err)
	}
	if o.From == "" {
		o.From = c.From()
	}
	if o.CallerName == "" {
		o.CallerName = c.CallerName()
	}
	if o.Line == "" {
		o.Line = c.Line()
	}
	sipCallID := uuid.NewString()
	value := s.encodeOffer(o)
	out, err := dialOffer(ctx, c, DialOptions{
		URI:      uri,
		FromUser: o.From,
		FromName: o.CallerName,
		Codecs:   carrierCodecsFirst(c),
		headers: []sip.Header{
			sip.NewHeader(hdrOffer, value),
			sip.NewHeader(hdrSignature, s.signOffer(sipCallID, value)),
		},
		callID:   sipCallID,
		internal: true,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("sip: offer %s to agent %d on node %s: %w: %w", o.CallID, o.AgentID, logValue(o.Node), ivr.ErrNoAnswer, err)
	}
	channel := ""
	if h := out.answer.GetHeader(hdrChannel); h != nil {
		switch v := h.Value(); v {
		case callevent.ChannelWebRTC, callevent.ChannelSIP:
			channel = v
		}
	}
	return &internalAgentLeg{
		MediaAgentLeg: ivr.MediaAgentLeg{
			Endpoint: out.Endpoint(),
			Ended:    out.Done(),
			HangupFunc: func(context.Context) error {
				// A relayed transfer's result goes to the agent's node before the BYE.
				out.l.awaitRelays(relayNoteTimeout + time.Second)
				out.Hangup()
				return nil
			},
		},
		channel: channel,
	}, nil
}

// internalURI is the Request-URI of an internal INVITE to user at node's cluster internal
// address (ClusterOptions.Resolve). It fails wrapping ErrNodeUnreachable.
func (s *Server) internalURI(ctx context.Context, node, user string) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	addr, err := s.opts.Cluster.Resolve(rctx, node)
	cancel()
	if err != nil || addr == "" {
		return "", fmt.Errorf("node %s: %w (%v)", logValue(node), ErrNodeUnreachable, err)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("internal address %q of node %s: %w", logValue(addr), logValue(node), ErrNodeUnreachable)
	}
	host := ap.Addr().Unmap().String()
	if ap.Addr().Unmap().Is6() {
		host = "[" + host + "]" // RFC 3261 §25.1: an IPv6 reference in a SIP URI
	}
	return (&sip.Uri{Scheme: "sip", User: user, Host: host, Port: int(ap.Port())}).String(), nil
}

// internalAgentLeg is the agent's side of a call as the call's node sees it: the internal leg,
// answered on the agent's node on the channel it names.
type internalAgentLeg struct {
	ivr.MediaAgentLeg
	channel string
}

// Channel is what the agent answered on, as the agent's node said ("" when it did not).
func (l *internalAgentLeg) Channel() string { return l.channel }

// encodeOffer writes o as the X-Switchboard-Offer value: URL query encoding (only unreserved
// characters and %XX, safe in a SIP header), keys sorted, so the signed bytes are the sent
// bytes.
func (s *Server) encodeOffer(o ivr.Offer) string {
	v := url.Values{}
	v.Set("v", "1")
	v.Set("node", s.opts.Cluster.Node)
	v.Set("ts", strconv.FormatInt(s.now().Unix(), 10))
	v.Set("call", o.CallID)
	v.Set("agent", strconv.FormatInt(o.AgentID, 10))
	for k, val := range map[string]string{"queue": o.Queue, "from": o.From, "name": o.CallerName,
		"line": o.Line, "lang": o.Language, "menu": o.MenuPath} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if o.Callback {
		v.Set("cb", "1") // a queue callback: the agent's page says so
	}
	return v.Encode()
}

// signOffer is the hex HMAC-SHA256, under the cluster secret, of the internal INVITE's Call-ID
// and offer value.
func (s *Server) signOffer(sipCallID, value string) string {
	mac := hmac.New(sha256.New, s.opts.Cluster.Secret)
	mac.Write([]byte(signatureLabel + "\n" + sipCallID + "\n" + value))
	return hex.EncodeToString(mac.Sum(nil))
}

// verifiedOffer is an internal INVITE's offer once verified: the offer (Node cleared: the
// agent is this node's), the origin node, and, for a supervisor's leg (supervise_cluster.go),
// the supervision's mode ("" for an offer to an agent).
type verifiedOffer struct {
	ivr.Offer
	origin    string
	supervise ivr.SuperviseMode
}

// verifyOffer checks an internal INVITE and returns its offer. The checks go from the
// cheapest to the one that keeps state: source, signature, timestamp, replay.
func (s *Server) verifyOffer(req *sip.Request) (verifiedOffer, error) {
	if !s.inInternalNetworks(s.sourceAddr(req)) {
		return verifiedOffer{}, errOutsideNetworks
	}
	h, sig := req.GetHeader(hdrOffer), req.GetHeader(hdrSignature)
	if h == nil || sig == nil || len(h.Value()) > 4096 {
		return verifiedOffer{}, errBadSignature
	}
	want := s.signOffer(req.CallID().Value(), h.Value())
	if !hmac.Equal([]byte(want), []byte(sig.Value())) {
		return verifiedOffer{}, errBadSignature
	}
	v, err := url.ParseQuery(h.Value())
	if err != nil || v.Get("v") != "1" {
		return verifiedOffer{}, errBadOffer
	}
	ts, err := strconv.ParseInt(v.Get("ts"), 10, 64)
	if err != nil {
		return verifiedOffer{}, errBadOffer
	}
	now := s.now()
	skew := s.clusterMaxSkew()
	if d := now.Sub(time.Unix(ts, 0)); d > skew || d < -skew {
		return verifiedOffer{}, errStale
	}
	origin := cleanText(v.Get("node"), 128)
	if origin == "" || origin == s.opts.Cluster.Node {
		return verifiedOffer{}, errOwnNode
	}
	mode := ivr.SuperviseMode(v.Get(offerSupervise))
	if v.Has(offerSupervise) && !mode.Valid() {
		return verifiedOffer{}, errBadOffer
	}
	var agent int64
	if mode == "" { // a supervisor's leg names no agent: it reaches the call's mix
		agent, err = strconv.ParseInt(v.Get("agent"), 10, 64)
		if err != nil || agent <= 0 {
			return verifiedOffer{}, errBadOffer
		}
	}
	callID, err := uuid.Parse(v.Get("call"))
	if err != nil {
		return verifiedOffer{}, errBadOffer
	}
	if !s.replay.first(sig.Value(), now, 2*skew) {
		return verifiedOffer{}, errReplayed
	}
	return verifiedOffer{origin: origin, supervise: mode, Offer: ivr.Offer{
		CallID:     callID.String(),
		AgentID:    agent,
		Queue:      cleanText(v.Get("queue"), 128),
		From:       cleanText(v.Get("from"), 64),
		CallerName: cleanText(v.Get("name"), maxNameLen),
		Line:       cleanText(v.Get("line"), 64),
		Language:   cleanText(v.Get("lang"), 35),
		MenuPath:   cleanText(v.Get("menu"), 256),
		Callback:   v.Get("cb") == "1",
	}}, nil
}

func (s *Server) clusterMaxSkew() time.Duration {
	if s.opts.Cluster.MaxSkew > 0 {
		return s.opts.Cluster.MaxSkew
	}
	return DefaultClusterMaxSkew
}

// replayCache remembers the signatures of the internal INVITEs accepted within twice the
// allowed skew: a captured INVITE sent again (whose timestamp still passes) is refused. Older
// ones need no memory: their timestamp refuses them.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // signature → when it may be forgotten
}

// first records sig and reports whether it was not seen before.
func (r *replayCache) first(sig string, now time.Time, keep time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	if until, ok := r.seen[sig]; ok && now.Before(until) {
		return false
	}
	if len(r.seen) >= 1024 {
		for k, until := range r.seen {
			if !now.Before(until) {
				delete(r.seen, k)
			}
		}
	}
	r.seen[sig] = now.Add(keep)
	return true
}

// handleInternalInvite admits an internal INVITE from another node and runs its relay on this
// goroutine (sipgo's per-request goroutine; the transaction ends when it returns).
func (s *Server) handleInternalInvite(req *sip.Request, tx sip.ServerTransaction) {
	received := s.now()
	vo, err := s.verifyOffer(req)
	o, origin := vo.Offer, vo.origin
	if err != nil {
		// RFC 3261 §21.4.4: understood, refused; the reason goes to the security log only.
		s.security(secInternalRefused, req, "internal INVITE refused: "+err.Error())
		s.m.internalOffers.WithLabelValues("received", offerRefused).Inc()
		s.reply(req, tx, 403, "Forbidden")
		return
	}
	localTag := sip.GenerateTagN(16)
	s.respondTrying(req, tx, localTag)
	retryAfter := sip.NewHeader("Retry-After", strconv.Itoa(int(s.opts.RetryAfter/time.Second)))
	lp := s.localDialer.Load()
	if (lp == nil && vo.supervise == "") || !s.accepting.Load() {
		s.reply(req, tx, 503, "Service Unavailable", retryAfter)
		return
	}
	if req.Contact() == nil {
		s.reply(req, tx, 400, "Bad Request (no Contact)")
		return
	}
	if len(req.Body()) == 0 {
		// The call's node always offers: a late offer has no use between two nodes.
		s.reply(req, tx, 488, "Not Acceptable Here")
		return
	}
	if _, _, err := Negotiate(req.Body(), Local{Addr: s.opts.ExternalAddr, Port: 2}); err != nil {
		s.reply(req, tx, 488, "Not Acceptable Here", sip.NewHeader("Warning", `304 switchboard "Media type not available"`))
		return
	}
	fwd := 70
	if mf := req.MaxForwards(); mf != nil {
		if *mf == 0 {
			s.security(secLoop, req, "Max-Forwards 0")
			s.reply(req, tx, 483, "Too Many Hops")
			return
		}
		fwd = int(min(*mf, 255)) - 1
	}
	id, superviseOf := o.CallID, ""
	if vo.supervise != "" {
		// A supervisor's leg is a call of its own here (never relayedCall's or callByID's
		// match for the supervised call), which names the call it joins.
		id, superviseOf = uuid.NewString(), o.CallID
	}
	c := &Call{
		s:           s,
		id:          id,
		direction:   "internal",
		from:        o.From,
		callerName:  o.CallerName,
		to:          o.Line,
		line:        o.Line,
		internal:    true,
		relayAgent:  o.AgentID,
		received:    received,
		superviseOf: superviseOf,
		holdLegs:    map[*leg]bool{},
		maxFwd:      fwd,
	}
	l := newLeg(s, c, roleUAS)
	l.localTag = localTag
	l.internal = true
	l.initUAS(req, tx)
	c.carrier = l
	if min := l.negotiateTimer(req); min > 0 {
		s.reply(req, tx, 422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(int(min/time.Second))))
		return
	}
	// The relay holds ports and an agent: it counts in max_calls like a call (no trunk of its own).
	if !s.admit(req, tx, c, l, 0, retryAfter) {
		return
	}
	defer func() {
		s.release(c, l)
		s.callsWG.Done()
	}()
	if _, err := l.endpoint(); err != nil {
		s.log.Warn("sip: no RTP endpoint for an internal leg", "error", err)
		c.reject(503, "Service Unavailable", retryAfter)
		l.end(causeLocalHangup)
		return
	}
	if !l.onCancel(tx, func() {
		// sipgo answered the CANCEL with 200 and the INVITE with 487 (RFC 3261 §9.2): the
		// call's node withdrew the offer (ring timeout, the caller hung up, overflow).
		s.m.responses.WithLabelValues("487").Inc()
		c.mu.Lock()
		c.answerFinal = true
		c.mu.Unlock()
		l.end(causeCancelled)
	}) {
		l.end(causeCancelled)
	}
	if vo.supervise != "" {
		s.log.Debug("sip: supervisor's leg", "call_id", o.CallID, "mode", vo.supervise, "from_node", origin)
		s.runSupervisorLeg(c, o.CallID, vo.supervise)
		return
	}
	s.log.Debug("sip: internal offer", "call_id", o.CallID, "agent_id", o.AgentID, "from_node", origin)
	s.runInternal(c, o, *lp)
}

// runInternal rings the local agent for an admitted internal INVITE, answers it once the agent
// answered and bridges the two until either side ends.
func (s *Server) runInternal(c *Call, o ivr.Offer, local ivr.AgentDialer) {
	l := c.carrier
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		l.watchMedia() // a node that vanished without BYE: its RTP stops
	}()
	agentLeft := false
	defer func() {
		c.endRelays(agentLeft) // transfers relayed to the call's node: the relay is over
		c.cancel(causeLocalHangup)
		if !l.isEnded() {
			l.bye(causeLocalHangup)
		}
		c.mu.Lock()
		legs := append([]*leg(nil), c.legs...)
		c.mu.Unlock()
		for _, ol := range legs {
			ol.mu.Lock()
			confirmed := ol.confirmed
			ol.mu.Unlock()
			if confirmed {
				ol.bye(causeLocalHangup)
			} else {
				ol.end(causeLocalHangup)
			}
		}
		<-watchDone
	}()
	// 180 goes to the call's node when the agent's phone rings (Call.markRinging), as the
	// phone's own 180 does on one node; our 100 Trying already lets the call's node CANCEL.
	// The call's node CANCELs at its ring timeout; RingTimeout bounds a node that does not.
	octx, cancel := context.WithTimeout(context.WithValue(c.ctx, relayCallKey{}, c), s.opts.RingTimeout)
	agent, err := local.Offer(octx, o)
	cancel()
	if err != nil {
		s.m.internalOffers.WithLabelValues("received", offerNoAnswer).Inc()
		if c.ctx.Err() == nil {
			// Not answered, not reachable, declined or busy: the call's node moves on.
			c.reject(480, "Temporarily Unavailable")
			l.end(causeLocalHangup)
		}
		s.log.Debug("sip: internal offer not answered", "call_id", c.id, "agent_id", o.AgentID, "error", err)
		return
	}
	defer func() { _ = agent.Hangup(context.Background()) }()
	if c.ctx.Err() != nil {
		s.m.internalOffers.WithLabelValues("received", offerNoAnswer).Inc()
		return // withdrawn as the agent answered
	}
	channel := ""
	if ch, ok := agent.(ivr.ChanneledLeg); ok {
		channel = ch.Channel()
	}
	if err := c.answerInternal(c.ctx, channel); err != nil {
		s.m.internalOffers.WithLabelValues("received", offerNoAnswer).Inc()
		s.log.Info("sip: internal leg not confirmed", "call_id", c.id, "error", err)
		return
	}
	s.m.internalOffers.WithLabelValues("received", offerAnswered).Inc()
	c.mu.Lock()
	c.relayLeg = agent // an attended transfer from the phone bridges its consult call instead, for a while
	c.mu.Unlock()
	if err := c.bridgeRelay(agent); err != nil {
		s.log.Info("sip: bridge the internal leg to the agent", "call_id", c.id, "error", err)
		return
	}
	defer c.closeRelayBridge()
	select {
	case <-c.ctx.Done(): // BYE from the call's node, media timeout, shutdown
	case <-agent.Done(): // the agent hung up: BYE to the call's node (deferred above)
		agentLeft = true
	}
}

// relayCallKey is the context key under which runInternal hands the local dialer the relay
// it rings the agent for: during a consult to another agent of this node the call's node
// places a second internal leg of the same call here, and the phone's leg must be that
// relay's (looked up by call id it could be the first agent's, and end with it).
type relayCallKey struct{}

// answerInternal answers the internal INVITE: 200 with our SDP answer and the channel the
// agent answered on, retransmitted until the ACK (RFC 3261 §13.3.1.4).
func (c *Call) answerInternal(ctx context.Context, channel string) error {
	if !c.markFinal() {
		return errors.New("sip: internal leg already answered or cancelled")
	}
	ans, err := c.carrier.acceptInternalOffer()
	if err != nil {
		return err
	}
	var hdrs []sip.Header
	if channel != "" {
		hdrs = append(hdrs, sip.NewHeader(hdrChannel, channel))
	}
	return c.confirmInternal(ctx, ans, hdrs...)
}

// acceptInternalOffer answers the internal INVITE's SDP offer and applies it to the leg's
// endpoint (the other node's RTP address); it returns our answer for the 200.
func (l *leg) acceptInternalOffer() ([]byte, error) {
	ans, m, err := Negotiate(l.invite.Body(), l.localDesc(false))
	if err != nil {
		return nil, err
	}
	l.applyMedia(m)
	return ans, nil
}

// confirmInternal sends the internal INVITE's 200 with our SDP answer ans and hdrs,
// retransmitted until the ACK (RFC 3261 §13.3.1.4), and starts the session timer. The caller
// marked the answer final (markFinal).
func (c *Call) confirmInternal(ctx context.Context, ans []byte, hdrs ...sip.Header) error {
	l := c.carrier
	res := l.response(l.invite, 200, "OK", ans)
	l.addTimerHeaders(res)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := l.respond2xx(ctx, l.inviteTx, res, c.s.opts.AnswerAckTimeout); err != nil {
		if errors.Is(err, causeAckTimeout) {
			l.byeWithin(causeAckTimeout, 4*c.s.opts.T1)
		}
		return err
	}
	l.startSessionTimer()
	return nil
}

// holdInternalLegs passes a change of the call's hold state, made on leg from, to the other
// node over the call's internal legs (re-INVITE sendonly to hold, sendrecv to resume; RFC 3264
// §8.4). It runs after holdChanged released the call's lock, on a goroutine per leg: the
// re-INVITE waits for its answer and the caller is a request handler.
func (c *Call) holdInternalLegs(from *leg, held bool) {
	c.mu.Lock()
	legs := append([]*leg(nil), c.legs...)
	c.mu.Unlock()
	if c.carrier != nil {
		legs = append(legs, c.carrier)
	}
	for _, l := range legs {
		if l == from || !l.internal || l.isEnded() {
			continue
		}
		go func() {
			if err := l.sendDirection(held); err != nil {
				c.s.log.Info("sip: hold across the internal leg", "call_id", c.id, "held", held, "error", err)
			}
		}()
	}
}

// sendDirection re-INVITEs the leg with our description marked sendonly (held) or sendrecv
// (resumed), and applies the answer. A re-INVITE already under way is waited out briefly.
func (l *leg) sendDirection(held bool) error {
	for attempt := 0; ; attempt++ {
		l.mu.Lock()
		busy := l.reinviteIn || l.reinviteOut || l.ackPending || !l.confirmed
		if !busy {
			l.reinviteOut = true
		}
		l.mu.Unlock()
		if !busy {
			break
		}
		if attempt >= 20 {
			return errors.New("sip: the leg stayed busy with another offer")
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-l.ended:
			return nil
		}
	}
	defer func() {
		l.mu.Lock()
		l.reinviteOut = false
		l.mu.Unlock()
	}()
	l.mu.Lock()
	m := l.med
	l.mu.Unlock()
	local := l.localDesc(true)
	local.Direction = SendRecv
	if held {
		local.Direction = SendOnly
	}
	codecs := []Codec{m.Codec}
	if m.Codec.Name == "" {
		codecs = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 64*l.s.opts.T1)
	defer cancel()
	var res *sip.Response
	for attempt := 0; ; attempt++ {
		req := l.newRequest(sip.INVITE, 0)
		req.SetBody(Offer(local, codecs, eventPTOr(m.EventPT)))
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		var err error
		if res, err = l.do(ctx, req); err != nil {
			return err
		}
		// Overtaken by another request of the dialog sent at the same time (a relayed
		// transfer's INFO: a phone's consult resumes the call as it starts), the re-INVITE is
		// refused as out of order (RFC 3261 §12.2.2: 500): sent again with a new CSeq, as
		// sendInfo does. Lost, the call's node would keep the call held.
		if res.StatusCode != 500 || !strings.Contains(res.Reason, "CSeq out of order") || attempt >= 3 {
			break
		}
	}
	if !res.IsSuccess() {
		return fmt.Errorf("sip: hold re-INVITE answered %d", res.StatusCode)
	}
	ans, err := ParseAnswer(res.Body())
	if err != nil {
		return err
	}
	l.applyMedia(ans)
	return nil
}

// isConfirmed reports whether the leg's dialog is confirmed (its 2xx ACKed, or received).
func (l *leg) isConfirmed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirmed
}

// RelayControl passes a softphone button (hold, resume, transfer, consult_complete,
// consult_cancel) pressed on this node for a call it relays for another node to that node,
// whose ACD owns the call: an INFO on the internal leg (ctlContentType; relay_transfer.go). A
// blind transfer to an outside number returns once the number answered or did not, as on one
// node. It returns ErrNotInternal when this node relays no call callID (the caller then asks
// its own ACD), and the call's node's refusal otherwise.
func (s *Server) RelayControl(ctx context.Context, callID, op string, to ivr.TransferTo) error {
	c := s.relayedCall(callID)
	if c == nil {
		return ErrNotInternal
	}
	if op == "transfer" && to.Number != "" {
		return c.relayWaiting(ctx, op, to, nil)
	}
	return c.carrier.sendControl(ctx, op, relayValues(op, to))
}

// handleControl runs a softphone button relayed by the agent's node (an INFO with
// ctlContentType on an internal leg this node placed) on ClusterOptions.Control, and maps its
// answer to a status — 200, 404 (no such call), 409 (refused), 400, 500 — and the name of the
// refusal's sentinel error (relayErrors, "" for none). A request with a ref (a consult, a
// blind transfer to an outside number) is answered 200 at once and run on a goroutine of its
// own, which tells the result later (runRelayed).
func (l *leg) handleControl(body []byte) (int, string, string, []sip.Header) {
	if v, err := url.ParseQuery(string(body)); err == nil && v.Get("op") == "conference" {
		return l.handleConference(v) // relay_conference.go
	}
	code, reason, tok := l.handleButton(body)
	return code, reason, tok, nil
}

// handleButton is handleControl's hold, resume, transfers and consults.
func (l *leg) handleButton(body []byte) (int, string, string) {
	ctl := l.s.opts.Cluster.Control
	if ctl == nil || l.call == nil {
		return 501, "Not Implemented", ""
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return 400, "Bad Request", ""
	}
	var to ivr.TransferTo
	if a := v.Get("agent"); a != "" {
		if to.AgentID, err = strconv.ParseInt(a, 10, 64); err != nil || to.AgentID <= 0 {
			return 400, "Bad Request", ""
		}
	}
	to.Queue = cleanText(v.Get("queue"), 128)
	if n := v.Get("number"); n != "" {
		if !isDialNumber(n) {
			return 400, "Bad Request", ""
		}
		to.Number = n
	}
	id := l.call.id
	op := v.Get("op")
	if ref := v.Get("ref"); ref != "" {
		if len(ref) > 64 || (op != "consult" && (op != "transfer" || to.Number == "")) {
			return 400, "Bad Request", ""
		}
		l.relayStart()
		go l.runRelayed(ctl, op, id, ref, to)
		return 200, "OK", ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch op {
	case "hold":
		err = ctl.Hold(ctx, id)
	case "resume":
		err = ctl.Resume(ctx, id)
	case "transfer":
		if to.Number != "" {
			return 400, "Bad Request", "" // waits for the number: relayed with a ref
		}
		err = ctl.Transfer(ctx, id, to)
	case "consult_complete":
		err = ctl.CompleteConsult(ctx, id)
	case "consult_cancel":
		err = ctl.CancelConsult(ctx, id)
	default:
		return 400, "Bad Request", ""
	}
	tok := errToken(err)
	switch {
	case err == nil:
		return 200, "OK", ""
	case errors.Is(err, ivr.ErrNoCall):
		return 404, "Not Found", tok
	case tok != "internal":
		return 409, "Conflict", tok
	}
	l.s.log.Info("sip: relayed control", "call_id", id, "op", logValue(op), "error", err)
	return 500, "Server Internal Error", ""
}

// isDialNumber reports whether n is an E.164 number (what the agent's node's dial plan check
// lets through).
func isDialNumber(n string) bool {
	if len(n) < 3 || len(n) > 16 || n[0] != '+' {
		return false
	}
	for _, r := range n[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
