package acdpg_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ivr"
)

// Rule (issue 21, the agent page's Extend, shared queues): the node that ran the call times
// its wrap-up, so ExtendWrapUp there keeps the agent in wrap_up past the queue's wrap-up time
// (as the other node sees) and the agent is available when the extension ends; the other node
// refuses it (ErrBadState: it times no wrap-up of the agent).
func TestSharedACD_ExtendWrapUpOnTheCallsNode(t *testing.T) {
	url := pgtest.URL(t)
	wrap := func(q *ivr.Queue) { q.WrapUp = 5 * time.Second }
	a := startNode(t, url, "A", nil, wrap)
	b := startNode(t, url, "B", nil)
	b.acd.AgentAttached(1, ivr.ViaPage)
	b.setState(t, 1, ivr.StateAvailable)
	_, _ = a.call(t, "extended")
	al := a.dialer.next(t).answer()
	awaitCond(t, "agent 1 busy", func() bool { return b.agent(t, 1).State == ivr.StateBusy })
	al.Hangup(context.Background())
	awaitCond(t, "agent 1 in wrap-up", func() bool { return a.agent(t, 1).State == ivr.StateWrapUp })
	began := time.Now()
	if _, err := b.acd.ExtendWrapUp(1, 8*time.Second); !errors.Is(err, ivr.ErrBadState) {
		t.Fatalf("extend on the other node: %v, want ErrBadState", err)
	}
	// Node A writes the wrap-up to the shared store before it arms its own timer of it, so the
	// state can read wrap_up a moment before A can extend it: await A's timer (a page whose
	// Extend came that early gets ErrBadState and can press it again).
	var st ivr.AgentStatus
	var err error
	awaitCond(t, "node A extends the wrap-up it times", func() bool {
		st, err = a.acd.ExtendWrapUp(1, 8*time.Second)
		return err == nil || !errors.Is(err, ivr.ErrBadState)
	})
	if err != nil || st.State != ivr.StateWrapUp {
		t.Fatalf("extend on the call's node: %+v %v", st, err)
	}
	// Past the queue's 5 s but within the extension (8 s from the extend, which came after began).
	time.Sleep(time.Until(began.Add(6500 * time.Millisecond)))
	if s := b.agent(t, 1).State; s != ivr.StateWrapUp {
		t.Fatalf("agent 1 is %s 6.5 s into a wrap-up extended to 8 s, want wrap_up", s)
	}
	awaitCond(t, "agent 1 available after the extension", func() bool { return b.agent(t, 1).State == ivr.StateAvailable })
}
