package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Frame timing of G.711 at 8 kHz with the usual 20 ms packetisation (RFC 3551 §4.5).
const (
	FrameDuration = 20 * time.Millisecond
	FrameSize     = 160 // bytes = samples per 20 ms frame
)

// Play sends the G.711 audio read from src, in codec c (converted if the endpoint negotiated the
// other law), as 160-byte frames paced every 20 ms on the monotonic clock, on the endpoint's
// continuous outgoing stream. While it plays it overrides a bridge towards this endpoint's peer
// (prompts, music on hold). A short last frame is padded with silence.
//
// It returns nil when src ends (io.EOF), context.Cause(ctx) when ctx is cancelled (barge-in:
// cancel it when a digit arrives), ErrClosed when the endpoint closes, and read errors wrapped.
// If the sender falls behind by more than 100 ms (a stall), pacing restarts from now instead of
// bursting the backlog.
func (e *Endpoint) Play(ctx context.Context, src io.Reader, c Codec) error {
	if e.closed.Load() {
		return ErrClosed
	}
	id := e.out.push()
	defer e.out.pop(id)
	frame := make([]byte, FrameSize)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	for n := uint32(0); ; n++ {
		k, err := io.ReadFull(src, frame)
		last := false
		switch {
		case err == io.EOF:
			return nil
		case errors.Is(err, io.ErrUnexpectedEOF):
			for i := k; i < FrameSize; i++ {
				frame[i] = c.Silence()
			}
			last = true
		case err != nil:
			return fmt.Errorf("media: play: read frame: %w", err)
		}
		due := start.Add(time.Duration(n) * FrameDuration)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-e.done:
				return ErrClosed
			case <-timer.C:
			}
		} else if wait < -5*FrameDuration {
			start = time.Now().Add(-time.Duration(n) * FrameDuration)
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		h := rtpHeader{marker: n == 0, seq: uint16(n), timestamp: n * FrameSize}
		e.out.write(id, h, frame, kindAudio, c, time.Now(), nil)
		if last {
			return nil
		}
	}
}

// DTMF generation parameters (RFC 4733 §2.5.1): an update every 20 ms, the end packet sent
// three times, a volume of −10 dBm0.
const (
	dtmfVolume     = 10
	dtmfEndRepeats = 3
	maxDTMFSamples = 0xFFFF
)

// SendDTMF sends one RFC 4733 event for digit ('0'-'9', '*', '#', 'A'-'D') lasting d (at least
// 40 ms, at most ~8 s; 0 means 100 ms) on the endpoint's continuous outgoing stream: the first
// packet with the marker bit, an update every 20 ms with the growing duration, then three end
// packets; all carry the event's start timestamp. Audio from a bridge or Play is suppressed
// meanwhile (§2.5.1.3). If ctx is cancelled mid-event the end packets are still sent, so the far
// end never hears a stuck tone; the cause is returned. Nothing is sent when the peer did not
// negotiate telephone-event (SetDTMFPayloadType).
func (e *Endpoint) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	ev, ok := EventOf(digit)
	if !ok {
		return fmt.Errorf("media: send DTMF: %q is not a DTMF key", digit)
	}
	if e.closed.Load() {
		return ErrClosed
	}
	if d == 0 {
		d = 100 * time.Millisecond
	}
	steps := int(min(max(d, 2*FrameDuration), time.Duration(maxDTMFSamples/FrameSize)*FrameDuration) / FrameDuration)
	id := e.out.push()
	defer e.out.pop(id)
	var buf [telephoneEventSize]byte
	seq := uint16(0)
	send := func(dur uint16, end bool) {
		p := TelephoneEvent{Event: ev, End: end, Volume: dtmfVolume, Duration: dur}.AppendTo(buf[:0])
		e.out.write(id, rtpHeader{marker: seq == 0, seq: seq}, p, kindDTMF, CodecNone, time.Now(), nil)
		seq++
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	var cause error
	dur := uint16(0)
	for i := 1; i <= steps+dtmfEndRepeats-1 && cause == nil; i++ {
		if i <= steps {
			dur = uint16(i * FrameSize)
		}
		send(dur, i >= steps)
		if i == steps+dtmfEndRepeats-1 {
			break
		}
		timer.Reset(time.Until(start.Add(time.Duration(i) * FrameDuration)))
		select {
		case <-ctx.Done():
			cause = context.Cause(ctx)
		case <-e.done:
			return ErrClosed
		case <-timer.C:
		}
	}
	if cause != nil {
		for range dtmfEndRepeats {
			send(dur, true)
		}
		return cause
	}
	return nil
}
