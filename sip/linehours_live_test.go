package sip

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestSetLines_LineAddedLiveWithHoursSendsClosedCallsToItsClosedTarget: a line the server was
// not started with — one only the database has, handed over by the roster's reload
// (SetLines) with the opening hours the admin API stored — takes a SIPp call outside its hours
// to its closed target (the queue support) instead of its own target (hangup); swapped again
// with hours open now, the next call goes to the line's target. Holidays today and tomorrow
// (UTC) keep "closed" true whenever the test runs.
func TestSetLines_LineAddedLiveWithHoursSendsClosedCallsToItsClosedTarget(t *testing.T) {
	qp := newQueuePhone(t, 10*time.Second, nil)
	eng, err := ivr.New(ivr.Options{ACD: qp.acd})
	if err != nil {
		t.Fatal(err)
	}
	base := Line{Number: "+15550197", Target: &IVRTarget{IVR: eng, Line: ivr.Line{Number: "+15550197", Target: ivr.QueueTarget("support")}}}
	lineWith := func(h *ivr.Hours) Line {
		return Line{Number: "+15550198", Target: &IVRTarget{IVR: eng, Line: ivr.Line{Number: "+15550198", Target: ivr.HangupTarget(), Hours: h}}}
	}
	allWeek := func() *ivr.Hours {
		h := &ivr.Hours{Location: time.UTC, Closed: ivr.QueueTarget("support"), ClosedPrompt: "-"}
		for d := time.Sunday; d <= time.Saturday; d++ {
			h.Weekly[d] = []ivr.TimeRange{{Start: 0, End: 24 * time.Hour}}
		}
		return h
	}
	closed := allWeek()
	for _, d := range []time.Time{time.Now().UTC(), time.Now().UTC().Add(24 * time.Hour)} {
		closed.Holidays = append(closed.Holidays, ivr.Date{Year: d.Year(), Month: d.Month(), Day: d.Day()})
	}
	if err := qp.g.s.SetLines([]Line{base, lineWith(closed)}); err != nil {
		t.Fatal(err)
	}
	call := func() *sippProc {
		return startSipp(t, qp.dir, "uac_silent_wait_bye.xml", fmt.Sprintf("127.0.0.1:%d", qp.g.port()), "-s", "15550198",
			"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")
	}

	caller := call()
	var queued callevent.Event
	if !waitFor(30*time.Second, func() bool {
		if e := lastOf(qp.g.sink.all(), callevent.EventQueued); e != nil {
			queued = *e
			return true
		}
		return false
	}) {
		t.Fatalf("the closed line's call never reached its closed target: %v", eventTypes(qp.g.sink.all()))
	}
	if queued.Queue != "support" {
		t.Errorf("queued in %q, want support (the closed target)", queued.Queue)
	}
	if st := lastOf(qp.g.sink.callEvents(queued.CallID), callevent.EventStarted); st == nil || st.Line != "+15550198" {
		t.Errorf("the queued call's call.started %+v, want line +15550198", st)
	}
	c := qp.g.s.callByID(queued.CallID)
	if c == nil {
		t.Fatal("the queued call is gone")
	}
	c.Hangup()
	caller.wait(t)
	qp.g.sink.waitEnded(t, 30*time.Second)

	// Open now: the line's own target (hangup), never the queue.
	if err := qp.g.s.SetLines([]Line{base, lineWith(allWeek())}); err != nil {
		t.Fatal(err)
	}
	caller = call()
	evs := qp.g.sink.waitEnded(t, 30*time.Second)
	caller.wait(t)
	if st := lastOf(evs, callevent.EventStarted); st == nil || st.Line != "+15550198" {
		t.Fatalf("the open line's call: %v", eventTypes(evs))
	}
	if q := lastOf(evs, callevent.EventQueued); q != nil {
		t.Errorf("the open line's call was queued in %q: its hours were not swapped", q.Queue)
	}
}
