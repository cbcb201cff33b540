package sip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// DialogState is the state RFC 3261 §12 says a UA needs to send a request inside a dialog:
// Call-ID, both tags, both URIs, the remote target, the route set, our CSeq, and where the
// requests go. Saved when a leg is answered (Call.DialogStates), it lets the next process end a
// leg that a crash orphaned — the far end still up, in a call with nobody — with BYE
// (Server.ByeOrphan). It is plain data, meant to be written to disk as JSON.
type DialogState struct {
	CallID       string   `json:"call_id"`
	LocalTag     string   `json:"local_tag"`
	RemoteTag    string   `json:"remote_tag"`
	LocalURI     string   `json:"local_uri"`
	LocalName    string   `json:"local_name,omitempty"`
	RemoteURI    string   `json:"remote_uri"`
	RemoteName   string   `json:"remote_name,omitempty"`
	RemoteTarget string   `json:"remote_target"`
	RouteSet     []string `json:"route_set,omitempty"`
	LocalCSeq    uint32   `json:"local_cseq"`
	Transport    string   `json:"transport"`
	Destination  string   `json:"destination,omitempty"`
}

// orphanCSeqGap is added to the saved CSeq: requests sent after the state was saved (session
// refreshes, re-INVITEs for hold) used the numbers in between, and a BYE with a lower CSeq than
// the last one the far end saw would be refused with 500 (RFC 3261 §12.2.2), while a gap is not
// an error there ("a UAS SHOULD be prepared to receive and process requests with CSeq values
// more than one higher than the previous received request").
const orphanCSeqGap = 1000

// DialogStates returns the dialog state of each answered leg of the call that is still up: the
// carrier leg once the gateway answered it, and each leg it placed once the far end answered.
func (c *Call) DialogStates() []DialogState {
	c.mu.Lock()
	legs := append([]*leg(nil), c.legs...)
	carrierAnswered := !c.gwAnswered.IsZero()
	c.mu.Unlock()
	var out []DialogState
	if c.carrier != nil && carrierAnswered {
		if d, ok := c.carrier.dialogState(); ok {
			out = append(out, d)
		}
	}
	for _, l := range legs {
		if d, ok := l.dialogState(); ok {
			out = append(out, d)
		}
	}
	return out
}

// dialogState reads the leg's dialog state; ok is false for a leg that ended or whose dialog
// is not established (a UAC leg before the far end's 2xx).
func (l *leg) dialogState() (DialogState, bool) {
	if l.isEnded() {
		return DialogState{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.remoteTag == "" || l.callID == "" || (l.role == roleUAC && !l.confirmed) {
		return DialogState{}, false
	}
	d := DialogState{
		CallID: l.callID, LocalTag: l.localTag, RemoteTag: l.remoteTag,
		LocalURI: l.localHdr.String(), LocalName: l.localName,
		RemoteURI: l.remoteHdr.String(), RemoteName: l.remoteName,
		RemoteTarget: l.remoteTarget.String(), LocalCSeq: l.localSeq,
		Transport: l.transport, Destination: l.dest,
	}
	for _, r := range l.routeSet {
		d.RouteSet = append(d.RouteSet, r.String())
	}
	return d, true
}

// ErrBadDialogState is returned by ByeOrphan for a state that does not parse.
var ErrBadDialogState = errors.New("sip: bad dialog state")

// ByeOrphan ends a dialog a crashed process left behind with BYE (RFC 3261 §15.1.1), built from
// its saved state, and returns the far end's final status: 200 when it hung up, 481 when it no
// longer knew the dialog. The Server must be started. ctx bounds the wait for the answer.
func (s *Server) ByeOrphan(ctx context.Context, d DialogState) (int, error) {
	if d.CallID == "" || d.LocalTag == "" || d.RemoteTag == "" {
		return 0, fmt.Errorf("%w: Call-ID and both tags are required", ErrBadDialogState)
	}
	l := &leg{s: s, role: roleUAC, callID: d.CallID, transport: d.Transport, dest: d.Destination,
		localTag: d.LocalTag, remoteTag: d.RemoteTag, localName: d.LocalName, remoteName: d.RemoteName,
		localSeq: d.LocalCSeq + orphanCSeqGap, ended: make(chan struct{})}
	for _, p := range []struct {
		dst *sip.Uri
		v   string
	}{{&l.localHdr, d.LocalURI}, {&l.remoteHdr, d.RemoteURI}, {&l.remoteTarget, d.RemoteTarget}} {
		if err := sip.ParseUri(p.v, p.dst); err != nil {
			return 0, fmt.Errorf("%w: %q: %v", ErrBadDialogState, p.v, err)
		}
	}
	for _, r := range d.RouteSet {
		var u sip.Uri
		if err := sip.ParseUri(r, &u); err != nil {
			return 0, fmt.Errorf("%w: route %q: %v", ErrBadDialogState, r, err)
		}
		l.routeSet = append(l.routeSet, u)
	}
	if l.transport == "" {
		l.transport = "UDP"
	}
	res, err := l.do(ctx, l.newRequest(sip.BYE, 0))
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// ByeOrphans sends BYE to each dialog a crashed process journaled (Call.DialogStates as JSON,
// internal/calljournal's OpenCall.Legs): the carrier or desk phone at the other end is still in
// a call with nobody. The state is journaled at each answer, so for each dialog the last one
// counts. Eight at a time; it returns when all are done or ctx ends. Each result is counted in
// switchboard_orphan_byes_total and logged.
func (s *Server) ByeOrphans(ctx context.Context, journaled []json.RawMessage) {
	var legs []DialogState
	seen := map[string]int{}
	for _, raw := range journaled {
		var d DialogState
		if err := json.Unmarshal(raw, &d); err != nil {
			s.log.Warn("sip: journaled dialog state unreadable", "error", err)
			continue
		}
		k := d.CallID + "\x00" + d.LocalTag
		if i, ok := seen[k]; ok {
			legs[i] = d
			continue
		}
		seen[k] = len(legs)
		legs = append(legs, d)
	}
	if len(legs) == 0 {
		return
	}
	work := make(chan DialogState)
	var wg sync.WaitGroup
	for range min(8, len(legs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				s.byeOrphan(ctx, d)
			}
		}()
	}
	defer func() { close(work); wg.Wait() }()
	for _, d := range legs {
		select {
		case work <- d:
		case <-ctx.Done():
			return
		}
	}
}

// ByeLostLegs sends BYE, in the background, to the far ends of the calls of another node of
// the cluster that this node closed when that node was lost: their dialog states as the lost
// node stored them (ticketing/eventlog's DialogStore, the same JSON as the journal's). The BYE
// leaves from this node's address but follows each dialog's route set: a carrier's call that
// came through a record-routing front (the shipped Kamailio) reaches the carrier from the
// front, as every request of the dialog did; a leg the lost node placed straight to a far end
// (a desk phone, an agent's SIP phone, a trunk's callee) gets it from this node's address,
// which RFC 3261 §12.2.2 lets a UA accept (a dialog is matched by Call-ID and tags, not by
// address; a far end that filters sources must allow every node). It returns false, sending
// nothing, when the server is not started or is closed; Close waits for the BYEs, which end
// with the server.
func (s *Server) ByeLostLegs(dialogs []json.RawMessage) bool {
	if !s.ready.Load() {
		return false
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return false
	}
	s.byeWG.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.byeWG.Done()
		s.ByeOrphans(s.ctx, dialogs)
	}()
	return true
}

func (s *Server) byeOrphan(ctx context.Context, d DialogState) {
	// RFC 3261 §17.1.2.2: a non-INVITE transaction gives up after 64*T1 (32 s); the far end
	// of a live call answers at once, so 10 s is plenty.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	callID, target := cleanText(d.CallID, 200), cleanText(d.RemoteTarget, 200)
	code, err := s.ByeOrphan(ctx, d)
	switch {
	case err != nil:
		s.m.orphanByes.WithLabelValues("error").Inc()
		s.log.Warn("sip: BYE to a leg orphaned by a crash or a lost node: no answer", "sip_call_id", callID, "target", target, "error", err)
	case code >= 200 && code < 300:
		s.m.orphanByes.WithLabelValues("ok").Inc()
		s.log.Info("sip: BYE to a leg orphaned by a crash or a lost node: the far end hung up", "sip_call_id", callID, "target", target)
	default:
		s.m.orphanByes.WithLabelValues("gone").Inc()
		s.log.Info("sip: BYE to a leg orphaned by a crash or a lost node: refused (the far end had hung up already)", "sip_call_id", callID,
			"target", target, "status", code)
	}
}
