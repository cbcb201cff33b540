package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Transfers of a call taken on another node (issues 19 and 21).
//
// The consult leg lives on the node that owns the call (node A): its ACD holds the caller with
// music, rings the target (an agent, a queue's agent, or an outside number through A's trunk),
// bridges the agent's side of the call — the internal leg to node B, where the agent is — to
// the target, and completes or gives up, exactly as on one node. Node B only relays what the
// agent asks for, on the internal leg (INFO, ctlContentType), the way hold and blind transfer
// to an agent already were:
//
//   - Quick requests (hold, resume, a blind transfer to an agent or a queue, consult_complete,
//     consult_cancel) are answered by A's ACD within the INFO's transaction: 200, or a refusal
//     whose X-Switchboard-Error names the ivr sentinel error (relayErrors).
//   - Requests that wait for a target to answer (a consult, a blind transfer to an outside
//     number: the ring can outlast a non-INVITE transaction's 32 s, RFC 3261 §17.1.2.2) carry
//     a ref. A answers the INFO at once (200: taken) and runs the request on a goroutine of its
//     own; when the ACD answered, A sends B an INFO op=result (ref, err), and, for a consult
//     that reached its target, an INFO op=end (ref, how it ended) when it ends. B's waiter
//     (Call.relays) hands the result to whoever asked (RelayConsult, RelayControl) and the end
//     to the consult's onEnd. A sends the end before it hangs up the agent's side (the ACD
//     tells a completion before it releases the agent), so B hears "completed" before the BYE.
//     If B's relay of the call ends first, its pending waiters are told the call ended.
//
// The agent's node checks who asks and what they name (web.Transfers: the agent on the call,
// the dial plan's destinations, the agent's outbound limits); the call's node trusts an
// in-dialog request on its own internal leg from the cluster's internal networks.

// hdrError, in the call's node's answer to a relayed request, names the sentinel error of the
// refusal (relayErrors), so the agent's node answers as the call's node's ACD did.
const hdrError = "X-Switchboard-Error"

// relayNoteTimeout bounds an INFO of a relayed request's result or end; relayRunTimeout bounds
// how long the call's node waits for its ACD to answer a relayed consult or transfer (the ACD
// is bounded by its ring timeouts; this only keeps a wedged call from holding a goroutine).
const (
	relayNoteTimeout = 2 * time.Second
	relayRunTimeout  = 10 * time.Minute
)

// relayErrors are the ivr refusals that cross the internal leg by name.
var relayErrors = []struct {
	token string
	err   error
}{
	{"no_call", ivr.ErrNoCall},
	{"agent_unavailable", ivr.ErrAgentUnavailable},
	{"unknown_agent", ivr.ErrUnknownAgent},
	{"unknown_queue", ivr.ErrUnknownQueue},
	{"no_agent_free", ivr.ErrNoAgentFree},
	{"transfer_busy", ivr.ErrTransferBusy},
	{"no_consult", ivr.ErrNoConsult},
	{"transfer_failed", ivr.ErrTransferFailed},
	{"no_trunk", ivr.ErrNoTrunk},
	{"conference_consult", ivr.ErrConferenceConsult},
	{"conference_number", ivr.ErrConferenceNumber},
	{"conference_caller_left", ivr.ErrConferenceCallerLeft},
	{"conference_agent_left", ivr.ErrConferenceAgentLeft},
	{"conferenced", ivr.ErrConferenced},
	// A supervisor's leg's refusals (supervise_cluster.go).
	{"not_bridged", ivr.ErrNotBridged},
	{"supervised", ivr.ErrSupervised},
	{"conference_full", ivr.ErrConferenceFull},
	{"bad_mode", ivr.ErrBadMode},
	// A conference party the call's node could not dial (relay_conference.go).
	{"no_outbound_trunk", ErrNoOutboundTrunk},
	{"draining", ErrDraining},
	{"over_capacity", ErrOverCapacity},
}

// errToken names err's sentinel ("" for none known, "internal" for another error).
func errToken(err error) string {
	if err == nil {
		return ""
	}
	for _, e := range relayErrors {
		if errors.Is(err, e.err) {
			return e.token
		}
	}
	return "internal"
}

// tokenErr is errToken's inverse: nil for "", a plain error for an unknown token.
func tokenErr(token string) error {
	if token == "" {
		return nil
	}
	for _, e := range relayErrors {
		if e.token == token {
			return e.err
		}
	}
	return fmt.Errorf("the call's node failed (%s)", logValue(token))
}

// consultEnds are the ends of a consult that cross the internal leg.
var consultEnds = []ivr.ConsultEnd{ivr.ConsultCompleted, ivr.ConsultCancelled, ivr.ConsultTargetLeft,
	ivr.ConsultCallerLeft, ivr.ConsultAgentLeft}

// relayWait is the agent's node's wait for a relayed request's result and, for a consult that
// reached its target, its end. Its fields are guarded by the call's mu.
type relayWait struct {
	result   chan error // one send: the call's node's answer
	answered bool       // result sent
	onEnd    func(ivr.ConsultEnd)
	end      ivr.ConsultEnd // an end that came before the result
}

// relayedCall returns the call this node relays for another node under callID (nil if none).
// During a consult to another agent of this node the call's node places a second internal leg
// of the same call here (the target's): the first one offered is the call's agent's, until
// the transfer completes and it ends.
func (s *Server) relayedCall(callID string) *Call {
	var found []*Call
	s.mu.Lock()
	for cc := range s.calls {
		if cc.id == callID && cc.internal {
			found = append(found, cc)
		}
	}
	s.mu.Unlock()
	var c *Call
	for _, cc := range found {
		if cc.carrier == nil || cc.carrier.isEnded() {
			continue
		}
		if c == nil || cc.received.Before(c.received) {
			c = cc // received is set before the call is visible and never changes
		}
	}
	return c
}

// RelayedAgent returns the agent of this node who answered call callID, a call this node
// relays for the node that owns it, and whether there is one: the agent may transfer it
// (web.Transfers asks the ACD's CallAgent, which a ClusterACD answers so).
func (s *Server) RelayedAgent(callID string) (int64, bool) {
	c := s.relayedCall(callID)
	if c == nil || !c.carrier.isConfirmed() {
		return 0, false
	}
	return c.relayAgent, true
}

// RelayConsult starts a consult transfer of callID, a call this node relays for another node,
// on that node (the call's ACD): it returns once the target answered (nil: the agent talks
// with it over the internal leg) or was not reached (the call's node's refusal, e.g.
// ivr.ErrTransferFailed: the caller is back with the agent), as ivr.ACD.Consult does. onEnd is
// told once how a consult that reached its target ended, on a goroutine of its own.
// ErrNotInternal when this node relays no call callID.
func (s *Server) RelayConsult(ctx context.Context, callID string, to ivr.TransferTo, onEnd func(ivr.ConsultEnd)) error {
	c := s.relayedCall(callID)
	if c == nil {
		return ErrNotInternal
	}
	return c.relayWaiting(ctx, "consult", to, onEnd)
}

// relayValues encodes a relayed request.
func relayValues(op string, to ivr.TransferTo) url.Values {
	v := url.Values{}
	v.Set("op", op)
	if to.AgentID != 0 {
		v.Set("agent", strconv.FormatInt(to.AgentID, 10))
	}
	if to.Queue != "" {
		v.Set("queue", to.Queue)
	}
	if to.Number != "" {
		v.Set("number", to.Number)
	}
	return v
}

// relayWaiting relays a request that waits for its target's answer (a consult, a blind
// transfer to an outside number) to the call's node and waits for its result.
func (c *Call) relayWaiting(ctx context.Context, op string, to ivr.TransferTo, onEnd func(ivr.ConsultEnd)) error {
	var b [12]byte
	_, _ = rand.Read(b[:])
	ref := hex.EncodeToString(b[:])
	w := &relayWait{result: make(chan error, 1), onEnd: onEnd}
	c.mu.Lock()
	if c.relays == nil {
		c.relays = map[string]*relayWait{}
	}
	c.relays[ref] = w
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.relays, ref)
		c.mu.Unlock()
	}
	v := relayValues(op, to)
	v.Set("ref", ref)
	if err := c.carrier.sendControl(ctx, op, v); err != nil {
		forget()
		return err
	}
	select {
	case err := <-w.result:
		return err
	case <-ctx.Done():
		// The request runs on at the call's node: a later end still reaches onEnd.
		return ctx.Err()
	}
}

// sendInfo sends v in an INFO (ctlContentType) on the internal leg l. An INFO overtaken by
// another request of the dialog (the hold re-INVITE a transfer's end sends across, on its own
// goroutine) is refused by the other node as out of order (RFC 3261 §12.2.2: 500); it is sent
// again with a new CSeq, a few times at most.
func (l *leg) sendInfo(ctx context.Context, v url.Values) (*sip.Response, error) {
	for attempt := 0; ; attempt++ {
		req := l.newRequest(sip.INFO, 0)
		req.SetBody([]byte(v.Encode()))
		req.AppendHeader(sip.NewHeader("Content-Type", ctlContentType))
		res, err := l.do(ctx, req)
		if err != nil || res.StatusCode != 500 || !strings.Contains(res.Reason, "CSeq out of order") || attempt >= 3 {
			return res, err
		}
	}
}

// sendControl sends a relayed request on the internal leg l (this node's side of it) and maps
// the call's node's answer to an error.
func (l *leg) sendControl(ctx context.Context, op string, v url.Values) error {
	res, err := l.sendInfo(ctx, v)
	return controlError(op, res, err)
}

// handleRelayNote takes the call's node's result or end of a request this node relayed (an
// INFO op=result or op=end on the internal leg it answered). The waiter is updated under the
// call's mu; onEnd is told after, on a goroutine of its own.
func (l *leg) handleRelayNote(body []byte) (int, string) {
	c := l.call
	if c == nil {
		return 481, "Call/Transaction Does Not Exist"
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return 400, "Bad Request"
	}
	ref := v.Get("ref")
	var (
		tell  func(ivr.ConsultEnd)
		ended ivr.ConsultEnd
	)
	switch v.Get("op") {
	case "result":
		rerr := tokenErr(cleanText(v.Get("err"), 32))
		var se *StatusError
		if code, err := strconv.Atoi(v.Get("status")); err == nil && code >= 300 && code <= 699 && rerr != nil {
			se = &StatusError{Code: code, Reason: cleanText(v.Get("reason"), 64)}
		}
		c.mu.Lock()
		w := c.relays[ref]
		if w != nil && !w.answered {
			w.answered = true
			switch {
			case se != nil:
				rerr = fmt.Errorf("sip: relayed transfer: the call's node: %w: the target answered %w", rerr, se)
			case rerr != nil:
				rerr = fmt.Errorf("sip: relayed transfer: the call's node: %w", rerr)
			}
			w.result <- rerr
			switch {
			case w.end != "" && w.onEnd != nil:
				tell, ended = w.onEnd, w.end
				delete(c.relays, ref)
			case rerr != nil || w.onEnd == nil:
				delete(c.relays, ref)
			}
		}
		c.mu.Unlock()
	case "party_ended":
		// A conference party's leg is over (relay_conference.go).
		p := cleanText(v.Get("party"), 64)
		if p == "" {
			return 400, "Bad Request"
		}
		c.partyEnded(p)
		return 200, "OK"
	case "end":
		e := ivr.ConsultEnd(v.Get("end"))
		known := false
		for _, k := range consultEnds {
			known = known || k == e
		}
		if !known {
			return 400, "Bad Request"
		}
		c.mu.Lock()
		if w := c.relays[ref]; w != nil {
			if w.answered {
				tell, ended = w.onEnd, e
				delete(c.relays, ref)
			} else {
				w.end = e // the result is on its way: told after it
			}
		}
		c.mu.Unlock()
	default:
		return 400, "Bad Request"
	}
	if tell != nil {
		go tell(ended)
	}
	return 200, "OK"
}

// endRelays tells the pending waiters of the relayed requests of c, whose relay ended: a
// request not answered yet failed (the call's leg is gone); a consult that reached its target
// ended — with the agent, who hung up (agentLeft), or with the call, which the call's node
// ended (the caller left, or it was completed without telling us first).
func (c *Call) endRelays(agentLeft bool) {
	c.mu.Lock()
	relays := c.relays
	c.relays = nil
	c.mu.Unlock()
	c.endParties()
	end := ivr.ConsultCallerLeft
	if agentLeft {
		end = ivr.ConsultAgentLeft
	}
	for _, w := range relays {
		if !w.answered {
			w.answered = true
			w.result <- fmt.Errorf("sip: relayed transfer: the call's internal leg ended: %w", ivr.ErrTransferFailed)
			continue
		}
		if w.onEnd != nil {
			go w.onEnd(end)
		}
	}
}

// runRelayed runs a relayed request that waits for its target (a consult, a blind transfer to
// an outside number) on the call's ACD, on a goroutine of its own (the INFO was answered), and
// sends the agent's node its result, then the consult's end. The end is sent from here too,
// in that order (one sender for the request's notes: their CSeqs go out in order); the ACD's
// onEnd waits for it to be sent (bounded), so that the end reaches the agent's node before the
// BYE that may follow it. The caller counted the request (relayStart).
func (l *leg) runRelayed(ctl CallControl, op, callID, ref string, to ivr.TransferTo) {
	ctx, cancel := context.WithTimeout(l.call.ctx, relayRunTimeout)
	defer cancel()
	ends := make(chan ivr.ConsultEnd, 1)
	sent := make(chan struct{})
	onEnd := func(e ivr.ConsultEnd) {
		select {
		case ends <- e:
		default:
			return
		}
		select {
		case <-sent:
		case <-time.After(relayNoteTimeout + time.Second):
		}
	}
	var err error
	if op == "consult" {
		err = ctl.Consult(ctx, callID, to, onEnd)
	} else {
		err = ctl.Transfer(ctx, callID, to)
	}
	if err != nil && errToken(err) == "internal" {
		l.s.log.Info("sip: relayed transfer", "call_id", callID, "op", op, "error", err)
	}
	res := url.Values{"op": {"result"}, "ref": {ref}}
	if t := errToken(err); t != "" {
		res.Set("err", t)
	}
	var se *StatusError
	if errors.As(err, &se) && se.Code >= 300 && se.Code <= 699 {
		// What the target answered (486 Busy Here, …): an agent's phone's REFER reports it
		// in its NOTIFY (referFailure).
		res.Set("status", strconv.Itoa(se.Code))
		res.Set("reason", cleanText(se.Reason, 64))
	}
	l.sendNote(res)
	l.relayDone()
	defer close(sent)
	if err != nil || op != "consult" {
		return
	}
	select {
	case e := <-ends:
		l.sendNote(url.Values{"op": {"end"}, "ref": {ref}, "end": {string(e)}})
	case <-ctx.Done():
	}
}

// relayStart counts a relayed request whose result is not sent yet; relayDone uncounts it.
func (l *leg) relayStart() {
	l.mu.Lock()
	if l.relayPending == 0 {
		l.relayIdle = make(chan struct{})
	}
	l.relayPending++
	l.mu.Unlock()
}

func (l *leg) relayDone() {
	l.mu.Lock()
	l.relayPending--
	if l.relayPending == 0 {
		close(l.relayIdle)
		l.relayIdle = nil
	}
	l.mu.Unlock()
}

// awaitRelays waits, at most d, until the results of the relayed requests of the leg are
// sent: the ACD hangs the agent's side up right after a blind transfer's target answered,
// and the agent's node must hear the result before the BYE.
func (l *leg) awaitRelays(d time.Duration) {
	l.mu.Lock()
	idle := l.relayIdle
	l.mu.Unlock()
	if idle == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// sendNote sends the agent's node a relayed request's result or end (best effort, bounded: the
// agent's node fails its waiters when the leg ends).
func (l *leg) sendNote(v url.Values) {
	if l.isEnded() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), relayNoteTimeout)
	defer cancel()
	res, err := l.sendInfo(ctx, v)
	if err == nil && !res.IsSuccess() {
		err = fmt.Errorf("answered %d", res.StatusCode)
	}
	if err != nil {
		l.s.log.Info("sip: tell the agent's node a relayed transfer's "+v.Get("op"), "call_id", l.call.id, "error", err)
	}
}

// ClusterACD is the ACD the softphone page's buttons and the transfer API drive on a node of
// a cluster: a call this node relays for the node that owns it (its agent answered here over
// the internal leg) has its hold, resume, transfers (blind or consult, to an agent, a queue or
// an outside number), consult completion and cancellation carried out by that node's ACD,
// which holds the call; any other call is this node's ACD's.
type ClusterACD struct {
	*ivr.ACD
	SIP *Server
}

// Hold implements the page's hold.
func (a ClusterACD) Hold(ctx context.Context, callID string) error {
	if err := a.SIP.RelayControl(ctx, callID, "hold", ivr.TransferTo{}); !errors.Is(err, ErrNotInternal) {
		return err
	}
	return a.ACD.Hold(ctx, callID)
}

// Resume implements the page's resume.
func (a ClusterACD) Resume(ctx context.Context, callID string) error {
	if err := a.SIP.RelayControl(ctx, callID, "resume", ivr.TransferTo{}); !errors.Is(err, ErrNotInternal) {
		return err
	}
	return a.ACD.Resume(ctx, callID)
}

// Transfer implements a blind transfer (to an outside number: once it answered).
func (a ClusterACD) Transfer(ctx context.Context, callID string, to ivr.TransferTo) error {
	if err := a.SIP.RelayControl(ctx, callID, "transfer", to); !errors.Is(err, ErrNotInternal) {
		return err
	}
	return a.ACD.Transfer(ctx, callID, to)
}

// Consult implements a consult transfer.
func (a ClusterACD) Consult(ctx context.Context, callID string, to ivr.TransferTo, onEnd func(ivr.ConsultEnd)) error {
	if err := a.SIP.RelayConsult(ctx, callID, to, onEnd); !errors.Is(err, ErrNotInternal) {
		return err
	}
	return a.ACD.Consult(ctx, callID, to, onEnd)
}

// CompleteConsult completes a consult transfer.
func (a ClusterACD) CompleteConsult(ctx context.Context, callID string) error {
	if err := a.SIP.RelayControl(ctx, callID, "consult_complete", ivr.TransferTo{}); !errors.Is(err, ErrNotInternal) {
		return err
	}
	return a.ACD.CompleteConsult(ctx, callID)
}

// CancelConsult goes back to the caller.
func (a ClusterACD) CancelConsult(ctx context.Context, callID string) error {
	if err := a.SIP.RelayControl(ctx, callID, "consult_cancel", ivr.TransferTo{}); !errors.Is(err, ErrNotInternal) {
		return err
	}
	return a.ACD.CancelConsult(ctx, callID)
}

// CallAgent tells the agent connected to a call: this node's agent on a call it relays, else
// this node's ACD's answer.
func (a ClusterACD) CallAgent(callID string) (int64, bool) {
	if id, ok := a.SIP.RelayedAgent(callID); ok {
		return id, true
	}
	return a.ACD.CallAgent(callID)
}
