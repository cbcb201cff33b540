package sip

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// cancelOf builds the CANCEL of an INVITE built by rawInvite (same Via branch, Call-ID, To;
// RFC 3261 §9.1).
func cancelOf(inv string) string {
	var via, callID, to string
	for _, l := range strings.Split(inv, "\n") {
		switch {
		case strings.HasPrefix(l, "Via: "):
			via = strings.TrimPrefix(l, "Via: ")
		case strings.HasPrefix(l, "Call-ID: "):
			callID = strings.TrimPrefix(l, "Call-ID: ")
		case strings.HasPrefix(l, "To: "):
			to = strings.TrimPrefix(l, "To: ")
		}
	}
	return "CANCEL sip:+15550197@127.0.0.1 SIP/2.0\nVia: " + via + "\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: " + to +
		"\nCall-ID: " + callID + "\nCSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n"
}

// TestInviteFloodWithRetransmitsAndCancelsHasNoDataRace: a flood of INVITEs at an answering
// target, each retransmitted at once and CANCELled at once, runs while sipgo's server
// transaction reads the INVITE on its own goroutines (the 487 it builds on CANCEL, RFC 3261
// §9.2; the 100 Trying of its timer, §17.2.1). The UAS side must never write to that request;
// under -race any such write is reported and fails the test. Every CANCELled INVITE that got a
// tagged response must get its 487 with the same tag (§8.2.6.2).
func TestInviteFloodWithRetransmitsAndCancelsHasNoDataRace(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
	})
	p := newUDPPeer(t, g.port())
	const calls = 150
	deadline := time.Now().Add(20 * time.Second)
	invites := make(map[string]string, calls) // Call-ID -> INVITE
	for i := 0; i < calls && time.Now().Before(deadline); i++ {
		inv := rawInvite("+15550197", "", pcmuOffer)
		inv = strings.Replace(inv, ";branch=z9hG4bK", fmt.Sprintf(";branch=z9hG4bK%d-", i), 1)
		inv = strings.Replace(inv, "@test\n", fmt.Sprintf("-%d@test\n", i), 1)
		invites[header(strings.ReplaceAll(inv, "\n", "\r\n"), "Call-ID")[0]] = inv
		p.send(inv)
		p.send(inv)   // a retransmission, absorbed by the server transaction
		if i%3 != 2 { // two of three CANCELled, one answered
			p.send(cancelOf(inv))
		}
	}
	// Drain: ACK/BYE every 2xx so calls end; collect the tags of 487s and other responses.
	// Until 5 s pass without a message: a response the flood dropped on this socket comes again
	// within T2 (4 s, RFC 3261 §17.2.1); with 2 s a 200 retransmitted after that was never
	// ACKed, and its call outlived the wait below (one CI run).
	tags := map[string]string{} // Call-ID -> first tag seen on a non-100 response
	deadline = time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		m := p.recv(5 * time.Second)
		if m == "" {
			break
		}
		if !strings.HasPrefix(m, "SIP/2.0 ") || strings.HasPrefix(m, "SIP/2.0 100") {
			continue
		}
		cid := header(m, "Call-ID")[0]
		if strings.Contains(header(m, "CSeq")[0], "CANCEL") {
			continue
		}
		tag := tagOf(header(m, "To")[0])
		if prev, ok := tags[cid]; ok && tag != prev && strings.Contains(header(m, "CSeq")[0], "INVITE") {
			t.Errorf("call %s: response %q carries To tag %q, earlier responses %q (RFC 3261 §8.2.6.2)", cid, strings.SplitN(m, "\r\n", 2)[0], tag, prev)
		}
		if _, ok := tags[cid]; !ok && strings.Contains(header(m, "CSeq")[0], "INVITE") {
			tags[cid] = tag
		}
		switch {
		case strings.HasPrefix(m, "SIP/2.0 200") && strings.Contains(header(m, "CSeq")[0], "INVITE"):
			p.send(ackFor(g.port(), m, 1))
			p.send(byeFor(g.port(), m, 2))
		case strings.HasPrefix(m, "SIP/2.0 487"):
			// The ACK of a non-2xx final is part of the INVITE transaction: its Via branch
			// (RFC 3261 §17.1.1.3).
			ack := ackFor(g.port(), m, 1)
			ack = ack[:strings.Index(ack, "branch=")] + "branch=z9hG4bK" + branchOf(invites[cid]) + ack[strings.Index(ack, "\nFrom:"):]
			p.send(ack)
		}
	}
	// Leave nothing behind for the next test (its gateway may get the same RTP ports): every
	// call of the flood has ended and settled.
	// Bounded by an ACK timeout and a BYE's (64*T1 each): a 200 this socket missed for good is
	// ended by the gateway's own timers.
	if !waitFor(70*time.Second, func() bool {
		return g.s.ActiveCalls() == 0 && g.counter("switchboard_sip_calls_settling") == 0
	}) {
		t.Errorf("calls still active %d, settling %v", g.s.ActiveCalls(), g.counter("switchboard_sip_calls_settling"))
	}
	g.s.Close()
}

func tagOf(to string) string {
	i := strings.Index(to, ";tag=")
	if i < 0 {
		return ""
	}
	t := to[i+5:]
	if j := strings.IndexAny(t, ";>"); j >= 0 {
		t = t[:j]
	}
	return t
}

func branchOf(inv string) string {
	i := strings.Index(inv, "branch=z9hG4bK")
	if i < 0 {
		return ""
	}
	b := inv[i+len("branch=z9hG4bK"):]
	if j := strings.IndexAny(b, ";\n"); j >= 0 {
		b = b[:j]
	}
	return b
}
