package ivr

import (
	"errors"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Rule (issue 21, the agent page's Extend): ExtendWrapUp keeps an agent in wrap_up d from now
// instead of the queue's wrap-up time — no call is offered when the queue's 30 s run out —
// and the agent becomes available (and is offered the waiting call) when the extension ends;
// it is refused (ErrBadState) for an agent not in wrap-up. Before, the ACD had no extension:
// the wrap-up ended at 30 s whatever the agent was doing.
func TestExtendWrapUpKeepsTheAgentOutOfCallsUntilTheExtensionEnds(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", WrapUp: 30 * time.Second}, Queue{Name: "sales"})
	if _, err := r.acd.ExtendWrapUp(1, time.Minute); !errors.Is(err, ErrBadState) {
		t.Fatalf("extend while not in wrap-up: %v, want ErrBadState", err)
	}
	r.available(t, 1)
	legA, _, resA := r.queueCall(t, "call-x1", "support")
	r.dialer.next(t).answer()
	r.events.next(t, legA.id, callevent.EventAnswered)
	legA.hangup()
	result(t, resA)
	if st := r.state(t, 1); st != StateWrapUp {
		t.Fatalf("agent 1 is %s after the call, want wrap_up", st)
	}
	r.clk.advance(10 * time.Second)
	st, err := r.acd.ExtendWrapUp(1, time.Minute)
	if err != nil || st.State != StateWrapUp {
		t.Fatalf("extend: %+v %v", st, err)
	}
	legB, _, resB := r.queueCall(t, "call-x2", "support")
	r.clk.advance(25 * time.Second) // past the queue's 30 s: still in the extension
	r.dialer.none(t, 30*time.Millisecond)
	if st := r.state(t, 1); st != StateWrapUp {
		t.Fatalf("agent 1 is %s 35 s after the call with a 60 s extension, want wrap_up", st)
	}
	r.clk.advance(35 * time.Second) // the extension ends
	o := r.dialer.next(t)
	if o.CallID != "call-x2" || r.state(t, 1) != StateAvailable {
		t.Errorf("offer %+v, agent %s", o.Offer, r.state(t, 1))
	}
	legB.hangup()
	o.ended(t)
	result(t, resB)
}
