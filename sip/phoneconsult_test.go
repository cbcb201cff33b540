package sip

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestInviteWithReplaces_481ForNoDialog_403ForALiveOne: an INVITE carrying Replaces (RFC 3891)
// outside any dialog is never taken as a new call: one naming no dialog of the gateway gets 481
// (RFC 3891 §3), one naming a live dialog (the caller's own call) 403 — the gateway replaces
// its dialogs itself (a phone transfers with REFER) — and that call goes on.
func TestInviteWithReplaces_481ForNoDialog_403ForALiveOne(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: answerTarget}}
	})
	p := newUDPPeer(t, g.port())
	p.send(rawInvite("+15550197", "", pcmuOffer))
	ok := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "SIP/2.0 200") })
	if ok == "" {
		t.Fatal("no 200 for the call")
	}
	callID, to := header(ok, "Call-ID")[0], header(ok, "To")[0]
	_, tag, _ := strings.Cut(to, ";tag=")
	p.send(fmt.Sprintf("ACK sip:switchboard@127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bKack1\nFrom: \"Bob\" <sip:+15557654321@127.0.0.1>;tag=abc\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
		g.port(), to, callID))

	final := func(m string) bool {
		return strings.HasPrefix(m, "SIP/2.0 ") && !strings.HasPrefix(m, "SIP/2.0 1") && header(m, "Call-ID")[0] != callID
	}
	p.send(rawInvite("+15550197", "Replaces: nosuch@test;to-tag=1;from-tag=2\n", pcmuOffer))
	if m := p.recvUntil(5*time.Second, final); !strings.HasPrefix(m, "SIP/2.0 481") {
		t.Errorf("INVITE replacing no dialog: %q, want 481", firstLine(m))
	}
	time.Sleep(time.Millisecond) // rawInvite's Call-ID is the clock's nanoseconds: a new one
	p.send(rawInvite("+15550197", fmt.Sprintf("Replaces: %s;to-tag=%s;from-tag=abc\n", callID, tag), pcmuOffer))
	if m := p.recvUntil(5*time.Second, final); !strings.HasPrefix(m, "SIP/2.0 403") {
		t.Errorf("INVITE replacing the live call: %q, want 403", firstLine(m))
	}
	if n := g.s.ActiveCalls(); n != 1 {
		t.Errorf("%d calls in progress, want the first one only (going on)", n)
	}
}
