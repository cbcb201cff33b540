package sip

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Recorder records calls (the recordings package's Service). StartCall creates the call's
// stereo recording and returns its tap — what the tapped endpoint receives (the customer) on the
// left, what it sends (the agent, the far end, the prompts) on the right — and the function that
// closes it, returning the recording's id and length. Neither may wait on the database: a
// recording's row follows in the background.
type Recorder interface {
	StartCall(ctx context.Context, callID string) (tap media.Tap, finish func(context.Context) (id string, seconds int64, err error), err error)
}

// RecordStart says when a call's recording begins.
type RecordStart int

const (
	// RecordAtAnswer begins when a person answers (an agent, the far end of a bridge, the
	// callee of an outbound call).
	RecordAtAnswer RecordStart = iota
	// RecordAtCallStart begins when the gateway answers an IVR line's call, so the recording
	// holds the menus and the queue too.
	RecordAtCallStart
)

// DialogJournal keeps the dialog state of a call's answered legs on local disk, so that after
// a crash the next start can send each a BYE (the call journal's Leg).
type DialogJournal interface {
	Leg(callID string, dialog json.RawMessage) error
}

// recording is a call's recording as the call sees it. finish is guarded by Call.mu; where
// the tap is, by move.
type recording struct {
	ready  chan struct{} // closed once the start finished (well or not)
	finish func(context.Context) (string, int64, error)

	// move serializes the tap's place: its first tap (startRecording), a move to another
	// endpoint (recordFrom: a conference the caller left) and its removal (finishRecording).
	// It is held across media's AddTap and untap, which take only the endpoint's own lock and
	// call nothing back.
	move  sync.Mutex
	tap   media.Tap       // guarded by move; nil until the recording started
	from  *media.Endpoint // guarded by move: the endpoint tapped (or to tap once started)
	untap func()          // guarded by move: removes the tap from from
	ended bool            // guarded by move: finishRecording took the tap off for good
}

// startRecording records the call from ep from now on, once (later calls do nothing). The
// file is created off the caller's goroutine (it is fsynced disk work); the tap goes on as soon
// as it is ready, unless the call ended meanwhile, in which case finishRecording closes what
// there is.
func (c *Call) startRecording(ep *media.Endpoint) {
	rec := c.s.opts.Recorder
	if rec == nil || ep == nil {
		return
	}
	c.mu.Lock()
	if c.rec != nil || c.recEnded {
		c.mu.Unlock()
		return
	}
	r := &recording{ready: make(chan struct{}), from: ep}
	c.rec = r
	c.mu.Unlock()
	go func() {
		defer close(r.ready)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tap, finish, err := rec.StartCall(ctx, c.id)
		if err != nil {
			c.s.log.Error("sip: recording not started", "call_id", c.id, "error", err)
			return
		}
		r.move.Lock()
		r.tap = tap
		if !r.ended {
			r.untap = r.from.AddTap(tap) // from: ep, or where recordFrom moved it meanwhile
		}
		r.move.Unlock()
		c.mu.Lock()
		r.finish = finish
		c.mu.Unlock()
	}()
}

// recordFrom moves the call's recording to ep from now on: what ep receives on the left
// channel, what it sends on the right. A conference the caller left goes on between the agent
// and the parties (ivr.RecordingFollower): ep is the agent's endpoint, so the agent is on the
// left and the parties they hear on the right. A recording still starting taps ep once
// started; no recording, or one closed, does nothing.
func (c *Call) recordFrom(ep *media.Endpoint) {
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r == nil || ep == nil {
		return
	}
	r.move.Lock()
	defer r.move.Unlock()
	if r.ended || r.from == ep {
		return
	}
	r.from = ep
	if r.tap == nil {
		return // still starting: it taps ep
	}
	if r.untap != nil {
		r.untap()
	}
	r.untap = ep.AddTap(r.tap)
}

// finishRecording runs once the call ended and call.ended is queued: it waits for a recording
// still being set up, closes it, and queues call.recording_ready as the call's last event.
// It runs on the call's goroutine (the call keeps its slot until its recording is closed:
// local disk work, its row follows in the background) and closes the event queue either way.
func (c *Call) finishRecording() {
	c.mu.Lock()
	c.recEnded = true
	r := c.rec
	c.mu.Unlock()
	if r == nil {
		c.events.pushLast(callevent.Event{}, &c.seq)
		return
	}
	<-r.ready
	c.mu.Lock()
	finish := r.finish
	c.mu.Unlock()
	r.move.Lock()
	r.ended = true
	if r.untap != nil {
		r.untap()
		r.untap = nil
	}
	r.move.Unlock()
	if finish == nil {
		c.events.pushLast(callevent.Event{}, &c.seq)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, seconds, err := finish(ctx)
	if err != nil {
		c.s.log.Error("sip: recording failed", "call_id", c.id, "error", err)
		c.events.pushLast(callevent.Event{}, &c.seq)
		return
	}
	c.events.pushLast(c.stamp(callevent.Event{Type: callevent.EventRecordingReady, RecordingID: id, Seconds: seconds}), &c.seq)
}

// journalLegs journals the dialog state of the call's answered legs (for the BYE after a
// crash). It runs at each answer: a new agent's SIP phone leg, a bridge's far end.
func (c *Call) journalLegs() {
	j := c.s.opts.Journal
	if j == nil {
		return
	}
	for _, d := range c.DialogStates() {
		b, err := json.Marshal(d)
		if err != nil {
			continue
		}
		_ = j.Leg(c.id, b) // a failure is counted and logged by the journal
	}
}

// answeredBy records that a person answered the call: the first time it emits call.answered
// (starting talk time) and starts the recording from ep when recordings start at the answer;
// every time it journals the legs (a transferred call has a new agent leg).
func (c *Call) answeredBy(agentID int64, channel string, ep *media.Endpoint) bool {
	first := c.markAnsweredOn(agentID, channel)
	c.journalLegs()
	if first && c.s.opts.RecordStart == RecordAtAnswer {
		c.startRecording(ep)
	}
	return first
}
