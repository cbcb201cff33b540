package web

import (
	"context"
	"testing"

	"github.com/switchboard-voice/switchboard/ivr"
)

// TestOffer_QueueCallbackShownAsOne: a queue callback offered to the page (ivr.Offer.Callback)
// reaches it marked as one ("callback": true in the incoming message: the page then says
// "Callback" and "Accept and call back"); an ordinary offer is not marked.
func TestOffer_QueueCallbackShownAsOne(t *testing.T) {
	h := newHarness(t, Options{})
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	p.answerOffer(p.expect("offer").SDP)
	awaitConnected(t, h, 1)
	for _, cb := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = h.srv.Offer(ctx, ivr.Offer{CallID: "cb", AgentID: 1, From: "+15550123", Queue: "support", Callback: cb})
		}()
		m := p.expect("incoming")
		cancel()
		<-done
		p.expect("withdrawn")
		if m.Call == nil || m.Call.Callback != cb || m.Call.From != "+15550123" {
			t.Errorf("incoming %+v, want callback %v", m.Call, cb)
		}
	}
}
