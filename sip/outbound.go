package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// DialOptions describes an outbound leg placed by call control (never on a request's behalf:
// the gateway is no open relay).
type DialOptions struct {
	// URI is the target (sip:desk@127.0.0.1:5090). When empty, Number is dialled through Trunk's
	// OutboundURI.
	URI string
	// Trunk names the trunk to call through: its OutboundURI (when URI is empty), caller ID and
	// digest credentials for 401/407.
	Trunk string
	// Number is the dialled number when calling through a trunk.
	Number string
	// FromUser and FromName are the caller ID, as plain text (we escape and quote them, and drop
	// control characters); FromUser defaults to the trunk's CallerID.
	FromUser string
	FromName string
	// Codecs is our offer in preference order; default PCMU, PCMA.
	Codecs []Codec
	// OnProgress is called for each provisional response above 100 (on the dialling goroutine).
	// early is non-nil when the response carried an SDP answer (early media, RFC 3960): it was
	// already applied to the leg's endpoint, whose Endpoint() it passes.
	OnProgress func(code int, early *EarlyMedia)
	// RingTimeout overrides Options.RingTimeout.
	RingTimeout time.Duration
	// Destination, when set ("host:port"), is where the leg's requests are sent instead of the
	// URI's host (a registered phone behind NAT: the REGISTER's source address). The
	// Request-URI stays URI.
	Destination string

	// headers are added to the INVITE (the internal leg's signed offer, internal_leg.go).
	headers []sip.Header
	// callID, when set, is the leg's SIP Call-ID (the internal leg signs it); else a new UUID.
	callID string
	// internal marks the leg as the cluster's internal leg.
	internal bool
	// offerAgent marks the leg as ringing that agent's phone with a queue offer (pickup.go).
	offerAgent int64
}

// EarlyMedia is an SDP answer that came in a provisional response of an outbound leg.
type EarlyMedia struct {
	Endpoint *media.Endpoint
	Media    Media
}

// OutboundLeg is an answered leg placed by Call.Dial. It ends with the call, or earlier when the
// far end hangs up (Done).
type OutboundLeg struct {
	l *leg
	// answer is the 2xx that answered the leg (read by the internal leg for the channel the
	// agent answered on).
	answer *sip.Response
}

// Endpoint is the leg's RTP endpoint.
func (o *OutboundLeg) Endpoint() *media.Endpoint {
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	return o.l.ep
}

// Done is closed when the leg has ended.
func (o *OutboundLeg) Done() <-chan struct{} { return o.l.ended }

// Hangup sends BYE on the leg.
func (o *OutboundLeg) Hangup() { o.l.bye(causeLocalHangup) }

// Dial places an outbound leg for this call and waits until it is answered (2xx, ACKed) or has
// failed. Provisional responses are reported to opts.OnProgress. When ctx ends first, the leg is
// cancelled (CANCEL after the first provisional, RFC 3261 §9.1); a 2xx that crosses the CANCEL
// is ACKed and then ended with BYE (§15). Failures come back as *StatusError with the status to
// relay and the call outcome.
func (c *Call) Dial(ctx context.Context, opts DialOptions) (*OutboundLeg, error) {
	s := c.s
	var trunk Trunk
	if opts.Trunk != "" {
		found := false
		for _, t := range s.opts.Trunks {
			if t.Name == opts.Trunk {
				trunk, found = t, true
			}
		}
		if !found {
			return nil, fmt.Errorf("sip: dial: unknown trunk %q", opts.Trunk)
		}
	}
	target := opts.URI
	if target == "" {
		if trunk.OutboundURI == "" || opts.Number == "" {
			return nil, errors.New("sip: dial: no URI and no trunk outbound URI/number")
		}
		var tu sip.Uri
		if err := sip.ParseUri(trunk.OutboundURI, &tu); err != nil {
			return nil, fmt.Errorf("sip: dial: trunk uri: %w", err)
		}
		tu.User = opts.Number
		target = tu.String()
	}
	var ruri sip.Uri
	if err := sip.ParseUri(target, &ruri); err != nil {
		return nil, fmt.Errorf("sip: dial: target %q: %w", target, err)
	}
	if opts.FromUser == "" {
		opts.FromUser = trunk.CallerID
	}
	if opts.FromUser == "" {
		opts.FromUser = "switchboard"
	}
	ringTimeout := opts.RingTimeout
	if ringTimeout <= 0 {
		ringTimeout = s.opts.RingTimeout
	}

	l := newLeg(s, c, roleUAC)
	l.callID = uuid.NewString()
	if opts.callID != "" {
		l.callID = opts.callID
	}
	l.internal = opts.internal
	l.offerAgent = opts.offerAgent
	l.transport = "UDP"
	if ruri.UriParams != nil {
		if tp, ok := ruri.UriParams.Get("transport"); ok && tp != "" {
			l.transport = strings.ToUpper(tp)
		}
	}
	l.localHdr = sip.Uri{Scheme: "sip", User: escapeUser(opts.FromUser), Host: s.opts.ExternalAddr.String()}
	l.localName = quoteDisplayName(cleanText(opts.FromName, maxNameLen))
	l.remoteHdr = sip.Uri{Scheme: ruri.Scheme, User: ruri.User, Host: ruri.Host, Port: ruri.Port}
	l.remoteTarget = *ruri.Clone()
	l.dest = opts.Destination
	c.mu.Lock()
	c.legs = append(c.legs, l)
	c.mu.Unlock()
	if _, err := l.endpoint(); err != nil {
		l.end(err)
		return nil, &StatusError{Code: 503, Reason: "Service Unavailable", Outcome: callevent.OutcomeFailed}
	}
	local := l.localDesc(false)
	local.Direction = SendRecv
	inv := l.newRequest(sip.INVITE, 0)
	// The hop count carried across the B2BUA (RFC 7332 §4): the carrier's Max-Forwards − 1.
	inv.RemoveHeader("Max-Forwards")
	maxf := sip.MaxForwardsHeader(max(c.maxFwd, 0))
	inv.AppendHeader(&maxf)
	inv.SetBody(Offer(local, opts.Codecs, DefaultEventPayload))
	inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv.AppendHeader(sip.NewHeader("Allow", allowMethods))
	for _, h := range opts.headers {
		inv.AppendHeader(h)
	}
	if s.opts.SessionExpires > 0 {
		// RFC 4028 §7.1: we support session timers and ask for our interval; the far end picks
		// the refresher in its 2xx (timerFromResponse); one that does not do session timers
		// leaves refreshing to us. A leg we placed is watched like the carrier's: a vanished far
		// end ends it.
		inv.AppendHeader(sip.NewHeader("Supported", "timer"))
		inv.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(int(s.opts.SessionExpires/time.Second))))
		inv.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(int(s.opts.MinSE/time.Second))))
	}
	s.addDialog(l)

	res, err := l.invite2xx(ctx, inv, trunk, ringTimeout, opts.OnProgress)
	if err != nil {
		l.end(err)
		return nil, err
	}
	m, err := ParseAnswer(res.Body())
	if err != nil {
		l.bye(err)
		return nil, &StatusError{Code: 488, Reason: "Not Acceptable Here", Outcome: callevent.OutcomeFailed}
	}
	l.applyMedia(m)
	l.timerFromResponse(res, true)
	l.startSessionTimer()
	l.watchMedia()
	return &OutboundLeg{l: l, answer: res}, nil
}

// invite2xx runs the INVITE client transaction(s) of a new leg until a 2xx was ACKed.
func (l *leg) invite2xx(ctx context.Context, inv *sip.Request, trunk Trunk, ringTimeout time.Duration, onProgress func(int, *EarlyMedia)) (*sip.Response, error) {
	s := l.s
	txCtx, txCancel := context.WithTimeout(context.Background(), ringTimeout+64*s.opts.T1)
	defer txCancel()
	send := func(r *sip.Request) (sip.ClientTransaction, error) {
		l.mu.Lock()
		l.outInvite = r
		l.mu.Unlock()
		tx, err := s.client.TransactionRequest(txCtx, r)
		if err != nil {
			return nil, &StatusError{Code: 503, Reason: "Service Unavailable", Outcome: callevent.OutcomeFailed}
		}
		return tx, nil
	}
	tx, err := send(inv)
	if err != nil {
		return nil, err
	}
	// A transaction answered 2xx is left to end by itself (Timer M, 64*T1: RFC 6026 §7.2): until
	// then each retransmission of the 2xx — our ACK was lost or late — is ACKed again
	// (ackSuccess). Terminating it at once dropped those retransmissions unanswered, and the far
	// end went on retransmitting and then hung up for want of an ACK.
	accepted := false
	defer func() {
		if !accepted {
			tx.Terminate()
		}
	}()

	ring := time.NewTimer(ringTimeout)
	defer ring.Stop()
	done := ctx.Done()
	var (
		gotProvisional bool
		cancelWanted   error // why we abandon the leg (nil: we don't)
		cancelSent     bool
		authTries      int
		retried422     bool
		cancelWG       sync.WaitGroup
		// giveUp fires 64×T1 after our CANCEL went: RFC 3261 §9.1 takes the INVITE as
		// cancelled then, whatever the far end did. An INVITE transaction that had a
		// provisional has no timer of its own (Timer B stops in Proceeding), so without this a
		// far end that answered neither the CANCEL nor the INVITE (crashed, or aborted the
		// call, as SIPp does on a CANCEL it did not expect) held the call for the whole ring
		// timeout plus 64×T1.
		giveUp <-chan time.Time
	)
	// A CANCEL still retransmitting when the INVITE got its final response is no longer needed.
	cancelCtx, stopCancel := context.WithTimeout(context.Background(), 64*s.opts.T1)
	defer cancelWG.Wait()
	defer stopCancel()
	stopGiveUp := func() bool { return false }
	defer func() { stopGiveUp() }()
	sendCancel := func() {
		if cancelSent || !gotProvisional {
			return
		}
		cancelSent = true
		t := time.NewTimer(64 * s.opts.T1)
		stopGiveUp = t.Stop
		giveUp = t.C
		cr := l.cancelRequest()
		if errors.Is(cancelWanted, errCompletedElsewhere) {
			// RFC 3326 §2 (the example of RFC 3261 §16.7's forking): the phone shows no
			// missed call for a call another phone of the agent answered.
			cr.AppendHeader(sip.NewHeader("Reason", `SIP;cause=200;text="Call completed elsewhere"`))
		}
		cancelWG.Add(1)
		go func() {
			defer cancelWG.Done()
			if _, err := l.do(cancelCtx, cr); err != nil {
				s.log.Debug("sip: CANCEL", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "error", err)
			}
		}()
	}
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				gotProvisional = true
				if res.StatusCode > 100 {
					l.noteEarlyTag(res)
					l.call.markRinging()
					var early *EarlyMedia
					if len(res.Body()) > 0 {
						if m, err := ParseAnswer(res.Body()); err == nil {
							l.applyMedia(m)
							l.mu.Lock()
							early = &EarlyMedia{Endpoint: l.ep, Media: m}
							l.mu.Unlock()
						}
					}
					if onProgress != nil && cancelWanted == nil {
						onProgress(res.StatusCode, early)
					}
				}
				if cancelWanted != nil {
					sendCancel()
				}
				continue
			}
			if res.IsSuccess() {
				l.call.noteFarFinal(res.StatusCode, res.Reason)
				l.established(res)
				accepted = true
				if err := l.ackSuccess(inv, res, tx); err != nil {
					s.log.Debug("sip: ACK", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "error", err)
				}
				if cancelWanted != nil {
					// RFC 3261 §15: a 2xx that crossed our CANCEL: ACK it, then BYE.
					l.bye(cancelWanted)
					return nil, cancelWanted
				}
				return res, nil
			}
			if (res.StatusCode == 401 || res.StatusCode == 407) && trunk.OutboundPassword != "" && authTries < 2 && cancelWanted == nil {
				authTries++
				s.log.Debug("sip: outbound leg challenged", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "code", res.StatusCode)
				next, err := l.authorize(inv, res, trunk)
				if err != nil {
					return nil, &StatusError{Code: 503, Reason: "Service Unavailable", Outcome: callevent.OutcomeFailed}
				}
				tx.Terminate()
				inv = next
				if tx, err = send(inv); err != nil {
					s.log.Debug("sip: resend with credentials", "call_id", l.callRef(), "sip_call_id", logValue(l.callID), "error", err)
					return nil, err
				}
				gotProvisional = false
				continue
			}
			if res.StatusCode == 422 && !retried422 && cancelWanted == nil {
				// RFC 4028 §7.4 (422): ask again with the far end's Min-SE as our interval.
				retried422 = true
				next, err := l.retryInterval(inv, res)
				if err != nil {
					return nil, mapFailure(res.StatusCode)
				}
				tx.Terminate()
				inv = next
				if tx, err = send(inv); err != nil {
					return nil, err
				}
				gotProvisional = false
				continue
			}
			if cancelWanted != nil {
				return nil, cancelWanted
			}
			l.call.noteFarFinal(res.StatusCode, res.Reason)
			fail := mapFailure(res.StatusCode)
			if h := res.GetHeader(hdrError); h != nil && l.internal {
				// Another node's refusal names its ivr error (relay_transfer.go).
				fail.token = cleanText(h.Value(), 32)
			}
			return nil, fail
		case <-tx.Done():
			if cancelWanted != nil {
				return nil, cancelWanted
			}
			return nil, &StatusError{Code: 480, Reason: "Temporarily Unavailable", Outcome: callevent.OutcomeNoAnswer}
		case <-done:
			done = nil
			cancelWanted = context.Cause(ctx)
			if cancelWanted == nil {
				cancelWanted = causeCancelled
			}
			sendCancel()
		case <-giveUp:
			s.log.Debug("sip: no final response 64×T1 after our CANCEL: the INVITE is taken as cancelled", "call_id", l.callRef(), "sip_call_id", logValue(l.callID))
			return nil, cancelWanted
		case <-ring.C:
			if cancelWanted == nil {
				cancelWanted = &StatusError{Code: 480, Reason: "Temporarily Unavailable", Outcome: callevent.OutcomeNoAnswer}
				sendCancel()
			}
		}
	}
}

// established records the dialog state from a 2xx (RFC 3261 §12.1.2): remote tag, remote target
// from Contact, and the route set as the Record-Route list reversed.
func (l *leg) established(res *sip.Response) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remoteTag, _ = res.To().Params.Get("tag")
	if c := res.Contact(); c != nil {
		l.remoteTarget = *c.Address.Clone()
	}
	var rs []sip.Uri
	for _, h := range res.GetHeaders("Record-Route") {
		for _, v := range splitHeaderList(h.Value()) {
			var rr sip.RouteHeader
			if err := parseRouteValue(v, &rr); err == nil {
				rs = append(rs, rr.Address)
			}
		}
	}
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	l.routeSet = rs
	l.confirmed = true
}

// ackSuccess sends the ACK for a 2xx (a new transaction-less request, RFC 3261 §13.2.2.4) and
// re-sends it for every retransmission of that 2xx.
func (l *leg) ackSuccess(inv *sip.Request, res *sip.Response, tx sip.ClientTransaction) error {
	ack := l.newRequest(sip.ACK, inv.CSeq().SeqNo)
	for _, h := range inv.GetHeaders("Authorization") {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	for _, h := range inv.GetHeaders("Proxy-Authorization") {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	// Registered before the first ACK goes out: a retransmission crossing that ACK must find
	// it (registered after, one that came at once was dropped unanswered on a loaded machine).
	// The callback holds the ACK and the client, not the leg: sipgo keeps the transaction and
	// its callbacks up to 64×T1 after the 2xx (Timer M), and the leg would keep the whole
	// call in memory as long (leg.onCancel).
	tmpl, client := ack.Clone(), l.s.client
	tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			a := tmpl.Clone()
			a.RemoveHeader("Via")
			_ = client.WriteRequest(a)
		}
	})
	return l.s.client.WriteRequest(ack)
}

// cancelRequest builds the CANCEL for our pending INVITE (RFC 3261 §9.1): same Request-URI,
// top Via, Call-ID, From, To and CSeq number, and the same Route headers.
func (l *leg) cancelRequest() *sip.Request {
	l.mu.Lock()
	inv := l.outInvite
	l.mu.Unlock()
	cr := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	if v := inv.Via(); v != nil {
		cr.AppendHeader(sip.HeaderClone(v))
	}
	for _, h := range inv.GetHeaders("Route") {
		cr.AppendHeader(sip.HeaderClone(h))
	}
	cr.AppendHeader(sip.HeaderClone(inv.From()))
	cr.AppendHeader(sip.HeaderClone(inv.To()))
	cr.AppendHeader(sip.HeaderClone(inv.CallID()))
	cr.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	maxf := sip.MaxForwardsHeader(70)
	cr.AppendHeader(&maxf)
	cr.SetTransport(inv.Transport())
	cr.SetDestination(inv.Destination())
	return cr
}

// authorize builds the INVITE retried with digest credentials for a 401/407 challenge
// (RFC 3261 §22.2, RFC 2617 §3.2.2 with qop=auth when offered).
func (l *leg) authorize(inv *sip.Request, res *sip.Response, trunk Trunk) (*sip.Request, error) {
	chName, authName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chName, authName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(chName)
	if h == nil {
		return nil, fmt.Errorf("sip: %d without %s", res.StatusCode, chName)
	}
	ch := parseDigest(h.Value())
	if ch == nil || ch["nonce"] == "" {
		return nil, fmt.Errorf("sip: unusable challenge %q", h.Value())
	}
	user := trunk.OutboundUsername
	if user == "" {
		user = trunk.CallerID
	}
	uri := inv.Recipient.String()
	ha1 := md5hex(user + ":" + ch["realm"] + ":" + trunk.OutboundPassword)
	ha2 := md5hex("INVITE:" + uri)
	var val string
	if qops := ch["qop"]; hasToken(qops, "auth") {
		cnonce := newNonce()[:16]
		resp := md5hex(ha1 + ":" + ch["nonce"] + ":00000001:" + cnonce + ":auth:" + ha2)
		val = fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="%s"`,
			user, ch["realm"], ch["nonce"], uri, resp, cnonce)
	} else {
		resp := md5hex(ha1 + ":" + ch["nonce"] + ":" + ha2)
		val = fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5`,
			user, ch["realm"], ch["nonce"], uri, resp)
	}
	if op := ch["opaque"]; op != "" {
		val += fmt.Sprintf(`, opaque="%s"`, op)
	}
	// Reuse the request (as sipgo's own WaitAnswer does): a clone keeps transport state of the
	// finished transaction and is not sent.
	next := inv
	next.RemoveHeader("Via")
	next.RemoveHeader(authName)
	next.AppendHeader(sip.NewHeader(authName, val))
	l.mu.Lock()
	l.localSeq++
	next.CSeq().SeqNo = l.localSeq
	l.mu.Unlock()
	return next, nil
}

// retryInterval builds the INVITE retried after a 422 (RFC 4028 §7.4): Session-Expires and
// Min-SE set to the Min-SE of the 422, a new CSeq and branch.
func (l *leg) retryInterval(inv *sip.Request, res *sip.Response) (*sip.Request, error) {
	h := res.GetHeader("Min-SE")
	if h == nil {
		return nil, errors.New("sip: 422 without Min-SE")
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || secs <= 0 || secs > 86400 {
		return nil, fmt.Errorf("sip: 422 with unusable Min-SE %q", logValue(h.Value()))
	}
	next := inv // reused as authorize does: a clone keeps the finished transaction's state
	next.RemoveHeader("Via")
	next.RemoveHeader("Session-Expires")
	next.RemoveHeader("Min-SE")
	next.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(secs)))
	next.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(secs)))
	l.mu.Lock()
	l.localSeq++
	next.CSeq().SeqNo = l.localSeq
	l.mu.Unlock()
	return next, nil
}

// mapFailure maps a far end's final failure to the status we relay on the carrier leg and the
// call outcome (busy, no answer and declines are no_answer; the rest failed).
func mapFailure(code int) *StatusError {
	switch code {
	case 486, 600:
		return &StatusError{Code: 486, Reason: "Busy Here", Outcome: callevent.OutcomeNoAnswer}
	case 480, 408, 487:
		return &StatusError{Code: 480, Reason: "Temporarily Unavailable", Outcome: callevent.OutcomeNoAnswer}
	case 603:
		return &StatusError{Code: 603, Reason: "Decline", Outcome: callevent.OutcomeNoAnswer}
	case 482:
		// A loop came back to us: our own leg's Call-ID (admitInvite) or a proxy's detection.
		return &StatusError{Code: 482, Reason: "Loop Detected", Outcome: callevent.OutcomeFailed}
	case 483:
		return &StatusError{Code: 483, Reason: "Too Many Hops", Outcome: callevent.OutcomeFailed}
	case 404, 604:
		return &StatusError{Code: 404, Reason: "Not Found", Outcome: callevent.OutcomeFailed}
	case 488, 606:
		return &StatusError{Code: 488, Reason: "Not Acceptable Here", Outcome: callevent.OutcomeFailed}
	case 401, 407, 403:
		return &StatusError{Code: 403, Reason: "Forbidden", Outcome: callevent.OutcomeFailed}
	}
	if code >= 500 && code < 600 {
		return &StatusError{Code: 502, Reason: "Bad Gateway", Outcome: callevent.OutcomeFailed}
	}
	return &StatusError{Code: 480, Reason: "Temporarily Unavailable", Outcome: callevent.OutcomeFailed}
}

// BridgeTarget bridges the call to a SIP URI (a desk phone, another PBX): it dials the URI with
// the caller's number as caller ID, relays ringing, answers the carrier leg when the far end
// answers, and bridges the two RTP endpoints until either side hangs up.
type BridgeTarget struct {
	// URI is the far end, e.g. sip:desk@127.0.0.1:5090.
	URI string
	// Trunk, when set, names the trunk whose credentials answer the far end's challenges.
	Trunk string

	// beforeBridge, for tests, runs after the carrier leg is answered and before the media is
	// bridged: the window a BYE can fall into.
	beforeBridge func(*Call)
}

// BridgeTo returns a BridgeTarget for uri.
func BridgeTo(uri string) *BridgeTarget { return &BridgeTarget{URI: uri} }

// Serve implements Target.
//
// The call's goroutine parks here for the whole call: the setup (connect) has a frame of its
// own, so what stays on the stack while the call talks is small (Server.handle says why).
func (b *BridgeTarget) Serve(ctx context.Context, c *Call) error {
	out, stopBridge, err := b.connect(ctx, c)
	if stopBridge != nil {
		defer stopBridge()
	}
	if out == nil {
		return err
	}
	waitFarEnd(ctx, c, out)
	return nil
}

// waitFarEnd waits until the call ends or its far end does; the latter ends the call with the
// far end's cause (the carrier leg gets BYE from call control).
func waitFarEnd(ctx context.Context, c *Call, out *OutboundLeg) {
	select {
	case <-ctx.Done():
	case <-out.Done():
		farEndEnded(c, out)
	}
}

// farEndEnded hangs the call up for its far end's end (hung up, stopped sending RTP, let its
// session expire).
func farEndEnded(c *Call, out *OutboundLeg) {
	c.hangup(fmt.Errorf("far end: %w", out.l.cause()))
}

// connect dials the far end, answers the carrier when it answers and bridges the two. It
// returns the far end's call once the two talk, or nil and the call's result (nil: ended
// normally) when the call ended during the setup; stopBridge, when not nil, unbridges the
// media (early media may have been bridged even when the setup failed).
func (b *BridgeTarget) connect(ctx context.Context, c *Call) (out *OutboundLeg, stopBridge func(), err error) {
	// Offer the far end the carrier's codec first, so no transcoding is needed.
	codecs := []Codec{{PT: PayloadPCMU, Name: "PCMU", Rate: 8000}, {PT: PayloadPCMA, Name: "PCMA", Rate: 8000}}
	if c.carrier == nil {
		return nil, nil, ErrNoCarrierLeg
	}
	c.carrier.mu.Lock()
	offer := c.carrier.invite.Body()
	c.carrier.mu.Unlock()
	if len(offer) > 0 {
		if rd, err := c.carrier.inviteOffer(); err == nil {
			if _, m, err := negotiate(rd, Local{}, false); err == nil && m.Codec.Name == "PCMA" {
				codecs[0], codecs[1] = codecs[1], codecs[0]
			}
		}
	}
	rang := false
	out, err = c.Dial(ctx, DialOptions{
		URI: b.URI, Trunk: b.Trunk, FromUser: c.From(), FromName: c.CallerName(), Codecs: codecs,
		OnProgress: func(code int, early *EarlyMedia) {
			if early != nil && stopBridge == nil {
				// Early media (ringback, announcements): 183 with our answer to the carrier and
				// the audio bridged before the answer.
				if err := c.Progress(ctx); err == nil {
					if stop, err := media.Bridge(c.Endpoint(), early.Endpoint); err == nil {
						stopBridge = stop
						rang = true
						return
					}
				}
			}
			if (code == 180 || code == 183) && !rang {
				rang = true
				_ = c.Ringing()
			}
		},
	})
	if err != nil {
		return nil, stopBridge, err
	}
	if err := c.Answer(ctx); err != nil {
		out.Hangup()
		return nil, stopBridge, err
	}
	if stopBridge == nil {
		if b.beforeBridge != nil {
			b.beforeBridge(c)
		}
		stop, err := media.Bridge(c.Endpoint(), out.Endpoint())
		if err != nil {
			// A BYE from either side between the answer and here closed that side's endpoint
			// (leg.end marks the leg ended before it closes the endpoint): the call was answered
			// and simply ended, like a hang-up a moment later; no error, no recording of it.
			switch {
			case c.carrier.isEnded():
				c.answeredBy(0, "", nil)
				return nil, nil, nil
			case out.l.isEnded():
				c.answeredBy(0, "", nil)
				c.hangup(fmt.Errorf("far end: %w", out.l.cause()))
				return nil, nil, nil
			}
			out.Hangup()
			return nil, nil, fmt.Errorf("sip: bridge media: %w", err)
		}
		stopBridge = stop
	}
	// A person answered: call.answered, the far end's leg journaled, the recording (from the
	// carrier's endpoint: the caller left, the far end right).
	c.answeredBy(0, "", c.Endpoint())
	return out, stopBridge, nil
}
