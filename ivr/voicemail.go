package ivr

import (
	"context"
	"errors"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"time"
)

// ErrNoRecorder is the Result.Err of a voicemail target when Options.Recorder is nil.
var ErrNoRecorder = errors.New("ivr: voicemail without a recorder")

// voicemail plays the greeting and the beep, records the caller until '#', MaxLength or
// hang-up, and emits call.voicemail — or call.abandoned where=voicemail when the caller left
// before the beep or the message is shorter than MinLength (TC-5, VM-1).
func (c *Call) voicemail(ctx context.Context) Result {
	v := c.e.opts.Voicemail
	if err := c.playAll(ctx, v.Prompt); err != nil {
		return c.abandon(callevent.WhereVoicemail)
	}
	if !v.NoBeep {
		if err := c.playAll(ctx, PromptBeep); err != nil {
			return c.abandon(callevent.WhereVoicemail)
		}
	}
	c.drainDigits() // keys typed during the greeting do not end the message
	if c.e.opts.Recorder == nil {
		c.e.log.Error("ivr: voicemail target without a recorder", "call_id", c.ID())
		_ = c.playAll(ctx, PromptGoodbye)
		r := c.abandon(callevent.WhereVoicemail)
		r.Err = ErrNoRecorder
		return r
	}
	meta := VoicemailMeta{CallID: c.ID(), From: c.info.From, Line: c.info.Line, Language: c.Language()}
	sctx, cancel := context.WithTimeout(ctx, defaultStartBudget)
	rec, err := c.e.opts.Recorder.StartVoicemail(sctx, meta, c.leg.Endpoint())
	cancel()
	if err != nil {
		c.e.log.Error("ivr: start voicemail", "call_id", c.ID(), "error", err)
		_ = c.playAll(ctx, PromptGoodbye)
		r := c.abandon(callevent.WhereVoicemail)
		r.Err = err
		return r
	}
	clk := c.e.opts.Clock
	start := clk.Now()
	t := clk.NewTimer(v.MaxLength)
	defer t.Stop()
	hungUp := false
wait:
	for range 1 << 16 { // bounded: each turn consumes a digit
		select {
		case d := <-c.digits:
			if d == '#' {
				break wait
			}
		case <-t.C():
			break wait
		case <-ctx.Done():
			hungUp = true
			break wait
		}
	}
	length := clk.Now().Sub(start)
	keep := length >= v.MinLength
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultFinishBudget)
	defer cancel()
	id, err := rec.Finish(fctx, keep)
	if err != nil {
		c.e.log.Error("ivr: finish voicemail", "call_id", c.ID(), "error", err)
		keep = false
	}
	if !keep {
		return c.abandon(callevent.WhereVoicemail)
	}
	c.emit(callevent.Event{Type: callevent.EventVoicemail, RecordingID: id, Seconds: int64(length / time.Second)})
	if !hungUp {
		_ = c.playAll(ctx, PromptGoodbye)
	}
	return Result{Kind: ResultHangup, Outcome: callevent.OutcomeVoicemail}
}
