package sip

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestProvisionalNeverFollowsTheFinalResponse: a 180 relayed while the call is being answered
// (a bridge's far end rings and answers at once) must never reach the caller after the 200
// (RFC 3261 §13.3.1.1; SIPp counted such 180s as unexpected in TestNoLeaksAfter200Calls under
// load). The 180 is held between its check and its send (the window a busy machine opens)
// while the call answers: the 200 must wait for it. Before the fix the 200 went first and the
// 180 was lost or sent after it.
func TestProvisionalNeverFollowsTheFinalResponse(t *testing.T) {
	entered := make(chan struct{}, 1)
	g := startGateway(t, func(o *Options) {
		o.beforeProvisional = func() {
			entered <- struct{}{}
			time.Sleep(150 * time.Millisecond)
		}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			go func() { _ = c.Ringing() }()
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Error("Ringing never reached its send")
			}
			if err := c.Answer(ctx); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		})}}
	})
	for i := range 3 {
		p := newUDPPeer(t, g.port())
		p.send(rawInvite("+15550197", "", pcmuOffer))
		var ok string
		ringing := false
		deadline := time.Now().Add(15 * time.Second)
		for ok == "" && time.Now().Before(deadline) {
			m := p.recv(time.Until(deadline))
			switch {
			case strings.HasPrefix(m, "SIP/2.0 180"):
				ringing = true
			case strings.HasPrefix(m, "SIP/2.0 200"):
				ok = m
			}
		}
		if ok == "" {
			t.Fatalf("call %d: no 200", i)
		}
		p.send(ackFor(g.port(), ok, 1))
		// What arrives after the 200: its retransmissions are allowed, a 1xx is not.
		after := time.Now().Add(400 * time.Millisecond)
		for time.Now().Before(after) {
			if m := p.recv(time.Until(after)); strings.HasPrefix(m, "SIP/2.0 1") {
				t.Fatalf("call %d: a provisional after the 200:\n%s", i, m)
			}
		}
		if !ringing {
			t.Errorf("call %d: the 180 was never sent", i)
		}
		p.send(byeFor(g.port(), ok, 2))
		if p.recvUntil(15*time.Second, func(m string) bool {
			return strings.HasPrefix(m, "SIP/2.0 200") && strings.Contains(m, "BYE")
		}) == "" {
			t.Fatalf("call %d: no 200 for the BYE", i)
		}
	}
}
