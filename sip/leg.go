package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/media"
)

// Causes a leg or call ends with (context.Cause of the call's context).
var (
	causeRemoteBye      = errors.New("remote hung up")
	causeCancelled      = errors.New("caller cancelled")
	causeAckTimeout     = errors.New("no ACK for 2xx")
	causeSessionExpired = errors.New("session timer expired (RFC 4028)")
	causeMediaTimeout   = errors.New("media timeout")
	causeShutdown       = errors.New("server shutting down")
	causeLocalHangup    = errors.New("hung up by call control")
	causeRefreshFailed  = errors.New("session refresh failed")
)

type legRole int

const (
	roleUAS legRole = iota // the leg that called us (carrier inbound)
	roleUAC                // a leg we placed
)

// leg is one SIP dialog of a call with its RTP endpoint. A B2BUA call has a carrier leg and,
// when bridged, an outbound leg; each has its own Call-ID, tags, CSeq spaces, route set and
// offer/answer state (RFC 3261 §12). The mutex guards the dialog state; requests of the
// dialog are handled in sipgo's per-request goroutines.
type leg struct {
	s         *Server
	call      *Call
	role      legRole
	callID    string
	transport string
	dest      string // host:port every request of the leg goes to, when set (DialOptions.Destination)
	// internal marks the cluster's internal leg between two nodes (internal_leg.go), on either
	// node: hold changes of the call's other legs are passed across it with re-INVITEs.
	internal bool
	// referAgent is the agent whose SIP phone this leg reaches (set by PhoneDialer once it
	// answered): only such a leg may transfer the call with REFER (refer.go). 0: none.
	referAgent atomic.Int64
	// consultOf, set before the leg is visible, marks an agent's phone's consult call (a UAS
	// leg, phoneconsult.go): the phone's leg of the call it consults on. Its end ends no call.
	consultOf *leg
	// referring is the REFER in progress on this leg, whose final NOTIFY is sent once.
	referring atomic.Pointer[referState]
	// offerAgent, set before the leg is visible, marks the leg PhoneDialer placed to ring an
	// agent's phone with a queue offer (pickup.go): the agent it rings.
	offerAgent int64
	// pickedUp, set before the leg is visible, marks an agent's phone's leg that picked the
	// call up (a UAS leg, pickup.go): it is the agent's leg of the call as PhoneDialer's are.
	pickedUp bool
	// ownCall, set before the leg is visible, marks an agent's phone's leg placing its own
	// call (a UAS leg, phonecall.go): the agent's leg of the call, its caller's.
	ownCall bool
	// cancelHook is what sipgo's INVITE server transaction holds of the leg (onCancel); end
	// empties it.
	cancelHook atomic.Pointer[cancelHook]

	mu           sync.Mutex
	localTag     string
	remoteTag    string
	localHdr     sip.Uri // our URI in From (UAC) or To (UAS)
	localName    string
	remoteHdr    sip.Uri
	remoteName   string
	remoteTarget sip.Uri
	routeSet     []sip.Uri // in the order Route headers are sent
	localSeq     uint32
	remoteSeq    uint32
	sessID       uint64
	sessVer      uint64
	ep           *media.Endpoint
	med          Media
	held         bool
	acdHeld      bool          // the phone's hold was taken by Options.PhoneHold (phonehold.go)
	earlyTag     string        // the far end's To tag in its first provisional (UAC; pickup.go)
	offerInAck   bool          // we sent an offer in a 2xx; the ACK carries the answer
	ackSeq       uint32        // CSeq of the 2xx awaiting ACK
	ackCh        chan struct{} // closed when that ACK arrives
	ackPending   bool          // a 2xx of ours awaits its ACK (respond2xx runs)
	reinviteIn   bool          // a re-INVITE from the peer awaits our final response or its ACK
	reinviteOut  bool          // our re-INVITE is in progress (glare → 491)
	confirmed    bool
	sessExpires  time.Duration // RFC 4028 session interval, 0 when no timer
	weRefresh    bool
	// The session timer (startSessionTimer): a time.AfterFunc, no goroutine; sessWait and
	// sessWe are what it was armed with (a refresh from the far end re-arms it with sessWait).
	sessTimer *time.Timer
	sessWait  time.Duration
	sessWe    bool
	// relayPending counts the relayed requests run for the agent's node on this internal leg
	// whose result is not sent yet; relayIdle is closed when it drops to zero (nil at zero).
	// Hanging the leg up waits for them (relay_transfer.go), so the result goes before the BYE.
	relayPending int
	relayIdle    chan struct{}

	ended    chan struct{}
	endOnce  sync.Once
	endCause error
	stats    media.Stats // final endpoint statistics, set when the leg ends

	// UAS: the initial INVITE and its server transaction.
	invite   *sip.Request
	inviteTx sip.ServerTransaction
	// offerOnce parses the initial INVITE's offer once (inviteOffer): its admission, a
	// bridge's codec order and the answer all read it.
	offerOnce sync.Once
	offerDesc *remoteDesc
	offerErr  error
	// UAC: our INVITE.
	outInvite *sip.Request
}

func newLeg(s *Server, c *Call, role legRole) *leg {
	return &leg{
		s:        s,
		call:     c,
		role:     role,
		localTag: sip.GenerateTagN(16),
		sessID:   uint64(s.now().UnixNano() & 0x7fffffffffff),
		sessVer:  1,
		ackCh:    make(chan struct{}),
		ended:    make(chan struct{}),
	}
}

// end marks the leg ended with cause (first cause wins) and releases its media.
func (l *leg) end(cause error) {
	l.endOnce.Do(func() {
		l.mu.Lock()
		l.endCause = cause
		ep := l.ep
		l.mu.Unlock()
		// Who ended the call is noted before anyone can see the leg end: the call's goroutine,
		// woken by l.ended or by the endpoint closing, would otherwise note its own
		// call_control first (seen as a callee's BYE reported as the gateway's hang-up).
		if l.call != nil {
			l.call.noteLegEnd(l, cause)
		}
		// So are its RTP counters (stats): the call's summary (OnCallEnd) reads them once the
		// call ended, and a leg ended by its far end's BYE (on sipgo's goroutine) ends the call
		// on other goroutines meanwhile — the ACD sees its agent's leg done. Recorded only once
		// the endpoint was closed, they read as zero there on a loaded machine (issue 21: a
		// picked-up call showed no RTP although its audio had flowed). Packets of the instant
		// until the endpoint closes below are not counted.
		if ep != nil {
			st := ep.Stats()
			l.mu.Lock()
			l.stats = st
			l.mu.Unlock()
		}
		close(l.ended)
		// The session timer is armed only while the leg has not ended (startSessionTimer
		// checks under l.mu): after the close above, whatever is armed is here to stop.
		l.mu.Lock()
		st := l.sessTimer
		l.mu.Unlock()
		if st != nil {
			st.Stop()
		}
		l.releaseCancel()
		l.s.removeDialog(l)
		if ep != nil {
			_ = ep.Close()
		}
		if l.call != nil {
			l.call.legEnded(l, cause)
		}
	})
}

// cancelHook holds a leg's CANCEL callback for as long as the leg lives (onCancel).
type cancelHook struct{ fn atomic.Pointer[func()] }

// onCancel registers fn to run when the INVITE that tx answers is CANCELled (sipgo answers
// the CANCEL with 200 and the INVITE with 487 itself), as tx.OnCancel does, and reports false
// when the INVITE was CANCELled already. The transaction keeps only a hook that the leg's end
// empties: sipgo keeps a server transaction, with its callbacks, until its timers end — up
// to 64×T1 (32 s) after the final response for a 2xx (RFC 6026's Accepted state) — and a
// callback holding the leg kept every call of the last 32 s in memory, with its media
// endpoint, poll loop and recording buffers: 800 MB of live heap at 300 calls a second,
// whose collections on the one-core gateway stalled every call and ticket (session 14).
// A CANCEL after the leg ended has nothing left to cancel.
func (l *leg) onCancel(tx sip.ServerTransaction, fn func()) bool {
	h := &cancelHook{}
	h.fn.Store(&fn)
	l.cancelHook.Store(h)
	if l.isEnded() { // ended meanwhile: end may have looked before the Store
		h.fn.Store(nil)
	}
	return tx.OnCancel(func(*sip.Request) {
		if f := h.fn.Load(); f != nil {
			(*f)()
		}
	})
}

// releaseCancel empties the hook onCancel left with the INVITE's transaction (end).
func (l *leg) releaseCancel() {
	if h := l.cancelHook.Swap(nil); h != nil {
		h.fn.Store(nil)
	}
}

func (l *leg) isEnded() bool {
	select {
	case <-l.ended:
		return true
	default:
		return false
	}
}

// matches checks the tags of an in-dialog request against ours (RFC 3261 §12.2.2).
func (l *leg) matches(req *sip.Request) bool {
	toTag, _ := req.To().Params.Get("tag")
	fromTag, _ := req.From().Params.Get("tag")
	l.mu.Lock()
	defer l.mu.Unlock()
	return toTag == l.localTag && (l.remoteTag == "" || fromTag == l.remoteTag)
}

// endpoint returns the leg's RTP endpoint, creating it on first use.
func (l *leg) endpoint() (*media.Endpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ep != nil {
		return l.ep, nil
	}
	ep, err := media.NewEndpoint(media.EndpointOptions{
		Allocator:    l.s.ports,
		MediaTimeout: l.s.opts.MediaTimeout,
		HoldTimeout:  l.s.opts.HoldTimeout,
		// Zero would turn these off (media's convention): a trunk leg reports RTCP and learns
		// its source like any.
		RTCPInterval:   media.DefaultRTCPInterval,
		LearningWindow: media.DefaultLearningWindow,
		Metrics:        l.s.opts.MediaMetrics,
		SignalSource:   l.signalSource(),
	})
	if err != nil {
		return nil, fmt.Errorf("sip: rtp endpoint: %w", err)
	}
	l.ep = ep
	return ep, nil
}

// localDesc returns our SDP parameters; bump increments the o= version (a new description).
func (l *leg) localDesc(bump bool) Local {
	l.mu.Lock()
	defer l.mu.Unlock()
	if bump {
		l.sessVer++
	}
	port := 0
	if l.ep != nil {
		port = int(l.ep.LocalAddr().Port())
	}
	return Local{Addr: l.s.opts.ExternalAddr, Port: port, SessionID: l.sessID, Version: l.sessVer}
}

// applyMedia pushes a negotiated Media onto the endpoint and reports hold transitions.
func (l *leg) applyMedia(m Media) {
	l.mu.Lock()
	ep := l.ep
	l.med = m
	wasHeld := l.held
	l.held = m.Hold
	l.mu.Unlock()
	if ep != nil {
		remote := m.Remote
		if !remote.IsValid() {
			remote = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		}
		ep.SetRemote(remote)
		c := media.PCMU
		if m.Codec.Name == "PCMA" {
			c = media.PCMA
		}
		ep.SetCodec(m.Codec.PT, c)
		if m.EventPT >= 0 {
			ep.SetDTMFPayloadType(uint8(m.EventPT))
		} else {
			ep.SetDTMFPayloadType(0)
		}
		ep.SetDirection(media.Direction(m.Direction))
	}
	if l.call != nil && wasHeld != m.Hold {
		l.holdChanged(m.Hold) // phonehold.go: an agent's phone's hold goes to the ACD
	}
}

// newRequest builds an in-dialog request (RFC 3261 §12.2.1.1): Request-URI the remote target,
// From/To with our and their tags, the next CSeq (except ACK, which reuses the INVITE's),
// and the route set as Route headers in order.
func (l *leg) newRequest(method sip.RequestMethod, seq uint32) *sip.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	req := sip.NewRequest(method, *l.remoteTarget.Clone())
	for _, r := range l.routeSet {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	from := &sip.FromHeader{DisplayName: l.localName, Address: *l.localHdr.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", l.localTag)
	to := &sip.ToHeader{DisplayName: l.remoteName, Address: *l.remoteHdr.Clone(), Params: sip.NewParams()}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	callID := sip.CallIDHeader(l.callID)
	if seq == 0 {
		l.localSeq++
		seq = l.localSeq
	}
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(&maxf)
	req.AppendHeader(l.s.contact(l.transport))
	req.AppendHeader(sip.NewHeader("User-Agent", l.s.opts.UserAgent))
	req.SetTransport(l.transport)
	if l.dest != "" {
		req.SetDestination(l.dest)
	}
	return req
}

// do sends an in-dialog request and waits for its final response. A re-INVITE's 2xx is ACKed
// here (RFC 3261 §13.2.2.4), and its transaction is left to end by itself (Timer M, RFC 6026
// §7.2) so that every retransmission of the 2xx is ACKed again; callers send no ACK of their own.
func (l *leg) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := l.s.client.TransactionRequest(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("sip: send %s: %w", req.Method, err)
	}
	accepted := false
	defer func() {
		if !accepted {
			tx.Terminate()
		}
	}()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if req.Method == sip.INVITE && res.IsSuccess() {
				accepted = true
				if err := l.ackSuccess(req, res, tx); err != nil {
					return nil, fmt.Errorf("sip: ACK: %w", err)
				}
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, fmt.Errorf("sip: %s transaction: %w", req.Method, err)
			}
			return nil, fmt.Errorf("sip: %s transaction ended without response", req.Method)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// bye ends a confirmed (or early, UAS-answered) dialog with BYE (RFC 3261 §15).
func (l *leg) bye(cause error) { l.byeWithin(cause, 64*l.s.opts.T1) }

// byeWithin is bye waiting at most wait for the BYE's answer.
func (l *leg) byeWithin(cause error, wait time.Duration) {
	if l.isEnded() {
		return
	}
	l.awaitReferFinal(referFinalWait) // an agent's phone hears its REFER's outcome first
	l.end(cause)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := l.do(ctx, l.newRequest(sip.BYE, 0)); err != nil {
		l.s.log.Debug("sip: BYE failed", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "error", err)
	}
}

// --- UAS side ---------------------------------------------------------------------------

// initUAS sets the dialog state from the initial INVITE (RFC 3261 §12.1.1): the route set is
// the Record-Route list in order, the remote target the Contact.
func (l *leg) initUAS(req *sip.Request, tx sip.ServerTransaction) {
	// req is read by sipgo's transaction on other goroutines: never written here. Our responses
	// get our tag from response(); the 487 sipgo builds on CANCEL gets it from the 100 Trying
	// the INVITE handler sent (uastag.go).
	l.invite, l.inviteTx = req, tx
	l.callID = req.CallID().Value()
	l.transport = req.Transport()
	l.remoteTag, _ = req.From().Params.Get("tag")
	l.remoteHdr = *req.From().Address.Clone()
	l.remoteName = req.From().DisplayName
	l.localHdr = *req.To().Address.Clone()
	l.localName = req.To().DisplayName
	l.remoteSeq = req.CSeq().SeqNo
	if c := req.Contact(); c != nil {
		l.remoteTarget = *c.Address.Clone()
	} else {
		l.remoteTarget = *req.From().Address.Clone()
	}
	for _, h := range req.GetHeaders("Record-Route") {
		for _, v := range splitHeaderList(h.Value()) {
			var rr sip.RouteHeader
			if err := parseRouteValue(v, &rr); err == nil {
				l.routeSet = append(l.routeSet, rr.Address)
			}
		}
	}
}

// inviteOffer returns the offer of the leg's initial INVITE (a UAS leg, after initUAS),
// parsed once; ErrSDPMalformed for an empty or unparseable body. The body never changes, and
// the parsed description is only read.
func (l *leg) inviteOffer() (*remoteDesc, error) {
	l.offerOnce.Do(func() { l.offerDesc, l.offerErr = parseRemote(l.invite.Body()) })
	return l.offerDesc, l.offerErr
}

// response builds a response to req carrying our To tag and Contact.
func (l *leg) response(req *sip.Request, code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	if to := res.To(); to != nil && code != 100 {
		// sipgo puts a random tag on every response; a dialog needs ours on all of them.
		to.Params.Remove("tag")
		to.Params.Add("tag", l.localTag)
	}
	if code > 100 && code < 300 && req.Method != sip.BYE && req.Method != sip.CANCEL {
		res.AppendHeader(l.s.contact(l.transport))
	}
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	return res
}

// respond2xx sends a 2xx to an INVITE and retransmits it (T1, doubling up to T2) until the ACK
// arrives, as RFC 3261 §13.3.1.4 asks of the UAS core: sipgo's server transaction passes 2xx
// through (RFC 6026 Accepted state) but does not retransmit it. Without an ACK within
// wait (AckTimeout, or AnswerAckTimeout for the first answer of a call) it returns
// causeAckTimeout; the caller then sends BYE.
func (l *leg) respond2xx(ctx context.Context, tx sip.ServerTransaction, res *sip.Response, wait time.Duration) error {
	l.mu.Lock()
	l.ackSeq = res.CSeq().SeqNo
	ackCh := make(chan struct{})
	l.ackCh = ackCh
	l.ackPending = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.ackCh == ackCh {
			l.ackPending = false
		}
		l.mu.Unlock()
	}()
	if err := l.s.respond(tx, res); err != nil {
		return fmt.Errorf("sip: send 2xx: %w", err)
	}
	// Over a reliable transport the transport carries the 2xx and we only wait for the ACK.
	t1 := l.s.opts.T1
	interval := t1
	timer := time.NewTimer(interval)
	defer timer.Stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case <-ackCh:
			return nil
		case <-timer.C:
			if !sip.IsReliable(l.transport) {
				if err := tx.Respond(res); err != nil {
					// The transaction ended (Timer L); keep waiting for the ACK on the core.
					l.s.log.Debug("sip: 2xx retransmission", "error", err)
				}
			}
			interval = min(2*interval, 4*time.Second)
			timer.Reset(interval)
		case <-deadline.C:
			return causeAckTimeout
		case <-l.ended:
			// The answer happened if the ACK came, or if the peer hung up with BYE: it can only
			// send BYE in this dialog once it had our 2xx, and sipgo handles each request on its
			// own goroutine, so the BYE of a caller who hangs up at once can be handled before
			// the ACK it sent first (whose dialog is gone by then).
			if acked(ackCh) || errors.Is(l.cause(), causeRemoteBye) {
				return nil
			}
			return l.cause()
		case <-ctx.Done():
			if acked(ackCh) {
				return nil
			}
			return context.Cause(ctx)
		}
	}
}

func acked(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (l *leg) cause() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.endCause == nil {
		return causeLocalHangup
	}
	return l.endCause
}

// handleRequest handles a request inside this leg's dialog.
func (l *leg) handleRequest(req *sip.Request, tx sip.ServerTransaction) {
	seq := req.CSeq().SeqNo
	if !req.IsAck() && req.Method != sip.CANCEL {
		l.mu.Lock()
		// RFC 3261 §12.2.2: a lower CSeq than the last is out of order → 500.
		if l.remoteSeq != 0 && seq < l.remoteSeq {
			l.mu.Unlock()
			l.s.reply(req, tx, 500, "Server Internal Error (CSeq out of order)")
			return
		}
		l.remoteSeq = seq
		l.mu.Unlock()
	}
	switch req.Method {
	case sip.ACK:
		l.handleAck(req)
	case sip.BYE:
		if l.call != nil && l.call.carrier == l {
			l.s.markEnding(l.call) // before the caller can see the call end
		}
		l.s.respond(tx, l.response(req, 200, "OK", nil))
		l.end(causeRemoteBye)
	case sip.INVITE:
		l.handleReinvite(req, tx)
	case sip.UPDATE:
		l.handleUpdate(req, tx)
	case sip.INFO:
		code, reason := 200, "OK"
		ct := ""
		if hdr := req.ContentType(); hdr != nil {
			ct = hdr.Value()
		}
		if l.internal && l.role == roleUAC && ct == ctlContentType {
			// A softphone button relayed by the agent's node (internal_leg.go).
			code, reason = 403, "Forbidden"
			tok := ""
			var hdrs []sip.Header
			if l.s.inInternalNetworks(l.s.sourceAddr(req)) {
				code, reason, tok, hdrs = l.handleControl(req.Body())
			}
			res := l.response(req, code, reason, nil)
			if tok != "" {
				res.AppendHeader(sip.NewHeader(hdrError, tok))
			}
			for _, h := range hdrs {
				res.AppendHeader(h)
			}
			l.s.respond(tx, res)
			return
		}
		if l.internal && l.role == roleUAS && ct == ctlContentType && l.call != nil && l.call.superviseOf != "" {
			// A supervisor's mode change, from the supervisor's node (supervise_cluster.go).
			code, reason = 403, "Forbidden"
			var hdrs []sip.Header
			if l.s.inInternalNetworks(l.s.sourceAddr(req)) {
				code, reason, hdrs = l.handleSuperviseControl(req.Body())
			}
			res := l.response(req, code, reason, nil)
			for _, h := range hdrs {
				res.AppendHeader(h)
			}
			l.s.respond(tx, res)
			return
		}
		if l.internal && l.role == roleUAS && ct == ctlContentType {
			// The call's node's result or end of a transfer this node relayed
			// (relay_transfer.go).
			code, reason = 403, "Forbidden"
			if l.s.inInternalNetworks(l.s.sourceAddr(req)) {
				code, reason = l.handleRelayNote(req.Body())
			}
			l.s.respond(tx, l.response(req, code, reason, nil))
			return
		}
		if c := l.call; c != nil && c.carrier == l {
			if h := c.info.Load(); h != nil {
				ct := ""
				if hdr := req.ContentType(); hdr != nil {
					ct = hdr.Value()
				}
				code, reason = (*h)(ct, req.Body())
			}
		}
		l.s.respond(tx, l.response(req, code, reason, nil))
	case sip.REFER:
		l.handleRefer(req, tx)
	case sip.OPTIONS, sip.NOTIFY:
		l.s.respond(tx, l.response(req, 200, "OK", nil))
	case sip.CANCEL:
		// A CANCEL of a re-INVITE we already answered: nothing left to cancel.
		l.s.reply(req, tx, 200, "OK")
	default:
		l.s.reply(req, tx, 405, "Method Not Allowed", sip.NewHeader("Allow", allowMethods))
	}
}

func (l *leg) handleAck(req *sip.Request) {
	l.mu.Lock()
	if req.CSeq().SeqNo != l.ackSeq {
		l.mu.Unlock()
		l.s.log.Debug("sip: ACK for another CSeq", "cseq", req.CSeq().SeqNo, "want", l.ackSeq)
		return
	}
	ch := l.ackCh
	offerInAck := l.offerInAck
	l.offerInAck = false
	l.confirmed = true
	l.reinviteIn = false
	l.ackPending = false
	l.mu.Unlock()
	if offerInAck {
		// Late offer: the ACK carries the answer to the offer in our 2xx (RFC 3264 §4, RFC 3261 §13.2.1).
		if m, err := ParseAnswer(req.Body()); err == nil {
			l.applyMedia(m)
		} else {
			l.s.log.Info("sip: unusable answer in ACK; hanging up", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "error", err)
			go l.bye(fmt.Errorf("answer in ACK: %w", err))
		}
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// handleReinvite answers a re-INVITE (RFC 3261 §14.2): glare with our own pending re-INVITE gets
// 491, an overlapping one 500 with Retry-After; an offer is answered (hold/resume, address change)
// and an empty one (late offer) gets our offer in the 200 with the answer expected in the ACK.
func (l *leg) handleReinvite(req *sip.Request, tx sip.ServerTransaction) {
	l.mu.Lock()
	if l.ackPending {
		// sipgo runs each request on its own goroutine, so a re-INVITE the peer sent right after
		// its ACK can reach us first: give that ACK up to T1 before calling this an overlap.
		ch := l.ackCh
		l.mu.Unlock()
		t := time.NewTimer(l.s.opts.T1)
		select {
		case <-ch:
		case <-t.C:
		case <-l.ended:
		}
		t.Stop()
		l.mu.Lock()
	}
	switch {
	case l.reinviteOut:
		l.mu.Unlock()
		l.s.reply(req, tx, 491, "Request Pending")
		return
	case l.reinviteIn || l.ackPending:
		// RFC 3261 §14.2: an INVITE overlapping one still in progress gets 500 with
		// Retry-After. A 2xx of ours still awaiting its ACK counts, the initial INVITE's too:
		// answering would replace the ACK we wait for (respond2xx) and leave that answer
		// unconfirmed.
		l.mu.Unlock()
		l.s.reply(req, tx, 500, "Server Internal Error", sip.NewHeader("Retry-After", "1"))
		return
	}
	l.reinviteIn = true
	l.mu.Unlock()
	if r := req.GetHeader("Require"); r != nil && hasToken(r.Value(), "100rel") {
		l.setReinviteIn(false)
		l.s.reply(req, tx, 420, "Bad Extension", sip.NewHeader("Unsupported", "100rel"))
		return
	}
	l.noteRefresh(req)
	var body []byte
	if len(req.Body()) > 0 {
		ans, m, err := Negotiate(req.Body(), l.localDesc(true))
		if err != nil {
			l.setReinviteIn(false)
			// RFC 3261 §14.2: a failed re-INVITE leaves the session as it was.
			l.s.reply(req, tx, 488, "Not Acceptable Here")
			return
		}
		l.applyMedia(m)
		body = ans
	} else {
		l.mu.Lock()
		l.offerInAck = true
		l.mu.Unlock()
		local := l.localDesc(true)
		local.Direction = SendRecv
		l.mu.Lock()
		m := l.med
		l.mu.Unlock()
		codecs := []Codec{m.Codec}
		if m.Codec.Name == "" {
			codecs = nil
		}
		body = Offer(local, codecs, eventPTOr(m.EventPT))
	}
	res := l.response(req, 200, "OK", body)
	l.addTimerHeaders(res)
	if err := l.respond2xx(context.Background(), tx, res, l.s.opts.AckTimeout); err != nil {
		l.setReinviteIn(false)
		if errors.Is(err, causeAckTimeout) {
			l.bye(causeAckTimeout)
		}
	}
}

func eventPTOr(pt int) int {
	if pt < 0 {
		return DefaultEventPayload
	}
	return pt
}

func (l *leg) setReinviteIn(v bool) {
	l.mu.Lock()
	l.reinviteIn = v
	l.mu.Unlock()
}

// handleUpdate answers UPDATE (RFC 3311): a session refresh (RFC 4028 §7.4) or a new offer.
func (l *leg) handleUpdate(req *sip.Request, tx sip.ServerTransaction) {
	l.noteRefresh(req)
	var body []byte
	if len(req.Body()) > 0 {
		l.mu.Lock()
		busy := l.reinviteOut
		l.mu.Unlock()
		if busy {
			l.s.reply(req, tx, 491, "Request Pending")
			return
		}
		ans, m, err := Negotiate(req.Body(), l.localDesc(true))
		if err != nil {
			l.s.reply(req, tx, 488, "Not Acceptable Here")
			return
		}
		l.applyMedia(m)
		body = ans
	}
	res := l.response(req, 200, "OK", body)
	l.addTimerHeaders(res)
	l.s.respond(tx, res)
}

// --- session timers (RFC 4028) -----------------------------------------------------------

// negotiateTimer settles the session interval of the initial INVITE. It returns the Min-SE to
// answer 422 with when the offered interval is too small, else 0.
func (l *leg) negotiateTimer(req *sip.Request) time.Duration {
	if l.s.opts.SessionExpires <= 0 {
		return 0 // session timers off
	}
	supported := false
	if h := req.GetHeader("Supported"); h != nil && hasToken(h.Value(), "timer") {
		supported = true
	}
	if h := req.GetHeader("k"); h != nil && hasToken(h.Value(), "timer") {
		supported = true
	}
	h := req.GetHeader("Session-Expires")
	if h == nil {
		h = req.GetHeader("x")
	}
	if h == nil {
		if supported {
			l.sessExpires = l.s.opts.SessionExpires
			l.weRefresh = false
		}
		return 0
	}
	val, params, _ := strings.Cut(h.Value(), ";")
	secs, err := strconv.Atoi(strings.TrimSpace(val))
	if err != nil || secs <= 0 {
		return 0
	}
	se := time.Duration(secs) * time.Second
	if se < l.s.opts.MinSE {
		return l.s.opts.MinSE
	}
	l.sessExpires = se
	// refresher=uas names us; absent or uac names the caller (RFC 4028 §9). A caller that does
	// not support timers cannot refresh, so we do.
	l.weRefresh = strings.Contains(strings.ReplaceAll(params, " ", ""), "refresher=uas") || !supported
	return 0
}

func (l *leg) addTimerHeaders(res *sip.Response) {
	l.mu.Lock()
	se, we := l.sessExpires, l.weRefresh
	l.mu.Unlock()
	if se == 0 {
		return
	}
	ref := "uac"
	if we {
		ref = "uas"
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=%s", int(se/time.Second), ref)))
	if !we {
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

// noteRefresh re-arms the session timer on a refresh from the far end (a re-INVITE or UPDATE)
// when the far end is the refresher.
func (l *leg) noteRefresh(req *sip.Request) {
	l.mu.Lock()
	// Not after the leg ended: leg.end stops the timer once, after closing l.ended.
	if l.sessTimer != nil && !l.sessWe && !l.isEnded() {
		l.sessTimer.Reset(l.sessWait)
	}
	l.mu.Unlock()
}

// sessionWait is how long the session timer waits: as refresher half the interval (RFC 4028
// §10), otherwise the interval minus min(32 s, interval/3); 0 when the leg has no timer.
func (l *leg) sessionWait() (wait time.Duration, we bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessExpires == 0 {
		return 0, false
	}
	if l.weRefresh {
		return l.sessExpires / 2, true
	}
	return l.sessExpires - min(32*time.Second, l.sessExpires/3), false
}

// startSessionTimer enforces the session interval until the leg ends, on either kind of leg
// (the carrier's, and those we place): as refresher we send a re-INVITE with our current
// description at half the interval (RFC 4028 §10); otherwise a missing refresh ends the leg
// with BYE at expiry minus min(32 s, interval/3). A refresh that fails (no answer: the far end
// vanished) ends the leg with BYE too. It holds no goroutine while it waits (until session 7 a
// goroutine per leg waited for the whole call): a time.AfterFunc runs onSessionTimer when due,
// leg.end stops it.
func (l *leg) startSessionTimer() {
	wait, we := l.sessionWait()
	if wait == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isEnded() || l.sessTimer != nil {
		return
	}
	l.sessWait, l.sessWe = wait, we
	l.sessTimer = time.AfterFunc(wait, l.onSessionTimer)
}

// onSessionTimer runs on the timer's own goroutine when the session timer is due.
func (l *leg) onSessionTimer() {
	if l.isEnded() {
		return
	}
	l.mu.Lock()
	we := l.sessWe
	l.mu.Unlock()
	if !we {
		l.s.log.Info("sip: session expired, no refresh from the far end", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "leg", l.roleName())
		l.bye(causeSessionExpired)
		return
	}
	if err := l.refresh(); err != nil {
		l.s.log.Info("sip: session refresh failed", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "leg", l.roleName(), "error", err)
		l.bye(causeRefreshFailed)
		return
	}
	wait, we := l.sessionWait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if wait == 0 || l.isEnded() {
		return
	}
	l.sessWait, l.sessWe = wait, we
	l.sessTimer.Reset(wait)
}

// roleName names the leg in log lines.
func (l *leg) roleName() string {
	if l.role == roleUAC {
		return "outbound"
	}
	return "carrier"
}

// refresh sends a re-INVITE with our unchanged description (same o= version, RFC 4028 §7.4) and
// ACKs the 2xx; the 2xx's Session-Expires, when present, becomes the interval (§7.2). 491
// (glare) is retried once after a short pause.
func (l *leg) refresh() error {
	for attempt := 0; attempt < 2; attempt++ {
		l.mu.Lock()
		if l.reinviteIn || l.reinviteOut {
			l.mu.Unlock()
			return nil // a re-INVITE is under way: it refreshes the session itself
		}
		l.reinviteOut = true
		m := l.med
		se := l.sessExpires
		l.mu.Unlock()
		local := l.localDesc(false)
		local.Direction = m.Direction
		codecs := []Codec{m.Codec}
		if m.Codec.Name == "" {
			codecs = nil
		}
		req := l.newRequest(sip.INVITE, 0)
		req.SetBody(Offer(local, codecs, m.EventPT))
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		// RFC 4028 §7.4: refresher names a role in this transaction; we send the refresh and go
		// on refreshing, so we are its UAC.
		req.AppendHeader(sip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=uac", int(se/time.Second))))
		req.AppendHeader(sip.NewHeader("Supported", "timer"))
		ctx, cancel := context.WithTimeout(context.Background(), 64*l.s.opts.T1)
		res, err := l.do(ctx, req)
		cancel()
		l.mu.Lock()
		l.reinviteOut = false
		l.mu.Unlock()
		if err != nil {
			return err
		}
		if res.IsSuccess() {
			l.timerFromResponse(res, false)
			return nil
		}
		if res.StatusCode != 491 {
			return fmt.Errorf("refresh answered %d", res.StatusCode)
		}
		select {
		case <-time.After(time.Duration(2100+attempt*1000) * time.Millisecond):
		case <-l.ended:
			return nil
		}
	}
	return errors.New("refresh: glare persisted")
}

// timerFromResponse takes the session interval and refresher from a 2xx to an INVITE we sent
// (RFC 4028 §7.2): Session-Expires with refresher=uac makes us the refresher (the refresher
// names a role of that INVITE transaction, and we sent it), refresher=uas the far end. A 2xx
// to our initial INVITE without Session-Expires comes from a far end that does not do session
// timers: it cannot refresh, so we do, at our own interval, as on a carrier leg that asked for
// none (a re-INVITE is plain RFC 3261 to it, and one left unanswered shows it vanished). A 2xx
// to a refresh without Session-Expires leaves the timer as it was.
func (l *leg) timerFromResponse(res *sip.Response, initial bool) {
	if l.s.opts.SessionExpires <= 0 {
		return
	}
	h := res.GetHeader("Session-Expires")
	if h == nil {
		h = res.GetHeader("x")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h == nil {
		if initial {
			l.sessExpires, l.weRefresh = l.s.opts.SessionExpires, true
		}
		return
	}
	val, params, _ := strings.Cut(h.Value(), ";")
	secs, err := strconv.Atoi(strings.TrimSpace(val))
	if err != nil || secs <= 0 {
		return
	}
	l.sessExpires = time.Duration(secs) * time.Second
	uas := strings.Contains(strings.ToLower(strings.ReplaceAll(params, " ", "")), "refresher=uas")
	l.weRefresh = !uas
}

// watchMedia arranges for the leg to end with BYE when its endpoint reports a media timeout
// (no RTP for MediaTimeout, HoldTimeout on hold): a far end that vanished without BYE must not
// hold the call up. It holds no goroutine while it waits: the endpoint calls back, on a
// goroutine of its own, only when the timeout fires (media.Endpoint.OnMediaTimeout).
func (l *leg) watchMedia() {
	l.mu.Lock()
	ep := l.ep
	l.mu.Unlock()
	if ep == nil {
		return
	}
	ep.OnMediaTimeout(func(err error) {
		if l.isEnded() {
			return
		}
		l.s.log.Info("sip: media timeout", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "leg", l.roleName(), "error", err)
		l.bye(causeMediaTimeout)
	})
}

// --- helpers --------------------------------------------------------------------------------

func hasToken(list, tok string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// splitHeaderList splits a comma-separated header value, respecting <...> and quotes.
func splitHeaderList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				out = append(out, strings.TrimSpace(v[start:i]))
				start = i + 1
			}
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// parseRouteValue parses one name-addr of a Record-Route/Route header.
func parseRouteValue(v string, h *sip.RouteHeader) error {
	v = strings.TrimSpace(v)
	lt := strings.IndexByte(v, '<')
	gt := strings.LastIndexByte(v, '>')
	if lt < 0 || gt < lt {
		return sip.ParseUri(v, &h.Address)
	}
	return sip.ParseUri(v[lt+1:gt], &h.Address)
}

// callRef is the id of the leg's call for log lines ("" for a leg without a call); the leg's
// own Call-ID, which comes from outside on a carrier leg, is logged through logValue.
func (l *leg) callRef() string {
	if l.call == nil {
		return ""
	}
	return l.call.id
}
