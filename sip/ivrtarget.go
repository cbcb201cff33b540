package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// IVRTarget runs a line's calls through the IVR: it answers the carrier leg, runs the line's
// flow (menus, business hours, queues through the ACD, voicemail) with the call as the IVR's
// leg, routes the carrier's SIP INFO digits to it, puts the IVR's and the queue's events on the
// call's own sequence, and bridges the call to a SIP URI when a menu sends it there. The call
// never leaves sip on its way: the IVR reports to the call, the call records itself.
type IVRTarget struct {
	IVR  *ivr.Engine
	Line ivr.Line
}

// Serve implements Target.
func (t *IVRTarget) Serve(ctx context.Context, c *Call) error {
	if err := c.Answer(ctx); err != nil {
		return err
	}
	c.journalLegs()
	if c.s.opts.RecordStart == RecordAtCallStart {
		c.startRecording(c.Endpoint())
	}
	ic := t.IVR.NewCall(ivrLeg{c: c, done: ctx.Done()},
		ivr.CallInfo{From: c.From(), CallerName: c.CallerName(), Line: c.Line(), Events: ivrEvents{c}})
	c.SetINFOHandler(func(contentType string, body []byte) (int, string) {
		switch err := ic.InjectINFO(contentType, body); {
		case err == nil:
			return 200, "OK"
		case errors.Is(err, ivr.ErrNotDTMF):
			return 415, "Unsupported Media Type"
		default:
			return 400, "Bad Request"
		}
	})
	res := ic.Run(ctx, t.Line)
	if ctx.Err() == nil && res.Outcome == callevent.OutcomeAnswered && res.Kind != ivr.ResultTransfer {
		// The IVR returns with the caller still there only when the agent's leg ended: the
		// agent hung up (a SIP phone's BYE is noted already, this is the softphone's).
		c.noteEnd(callevent.HangupByCallee, callevent.CauseBye)
	}
	c.AddHoldTime(res.HoldTime)
	if res.Outcome != "" {
		c.SetOutcome(res.Outcome)
	}
	if res.Kind != ivr.ResultTransfer {
		return nil
	}
	// A menu sent the call to a SIP URI: dial it and bridge (the carrier leg is answered).
	out, err := c.Dial(ctx, DialOptions{URI: res.URI, FromUser: c.From(), FromName: c.CallerName()})
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			c.SetOutcome(se.Outcome)
		}
		return nil
	}
	stop, err := media.Bridge(c.Endpoint(), out.Endpoint())
	if err != nil {
		out.Hangup()
		return fmt.Errorf("sip: bridge: %w", err)
	}
	defer stop()
	c.answeredBy(0, "", c.Endpoint())
	select {
	case <-ctx.Done():
	case <-out.Done():
	}
	return nil
}

// ivrLeg is the carrier leg as the IVR sees it.
type ivrLeg struct {
	c    *Call
	done <-chan struct{}
}

func (l ivrLeg) CallID() string            { return l.c.ID() }
func (l ivrLeg) Endpoint() *media.Endpoint { return l.c.Endpoint() }
func (l ivrLeg) Done() <-chan struct{}     { return l.done }

// RecordFrom moves the call's recording to ep (ivr.RecordingFollower: a conference the caller
// left is recorded from the agent's side).
func (l ivrLeg) RecordFrom(ep *media.Endpoint) { l.c.recordFrom(ep) }

// ivrEvents puts the IVR's and the queue's events on the call's sequence. The first
// call.answered is the call's answer (talk time, the recording); a later one (after a transfer)
// and call.transferred bring a new agent leg, whose dialog is journaled.
type ivrEvents struct{ c *Call }

func (e ivrEvents) Emit(ev callevent.Event) {
	c := e.c
	switch ev.Type {
	case callevent.EventAnswered:
		if c.answeredBy(ev.AgentID, ev.Channel, c.Endpoint()) {
			return // MarkAnswered emitted it
		}
	case callevent.EventTransferred:
		c.journalLegs()
	case callevent.EventHeld, callevent.EventResumed:
		// The ACD's hold (the softphone's button) unbridges the agent: an agent on another
		// node is told, so that its node takes the quiet for a hold, not a dead leg.
		c.holdInternalLegs(nil, ev.Type == callevent.EventHeld)
	}
	c.emit(ev)
}
