package media

import (
	"context"
	"errors"
	"github.com/pion/rtp"
	"io"
	"testing"
	"time"
)

// Rule: prompts are paced at 20 ms per 160-byte frame; a short last frame is padded with silence.
func TestPlayPacesFrames(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{})
	e.SetCodec(8, PCMA)
	p := newPeer(t)
	e.SetRemote(p.addr())
	start := time.Now()
	// 9.5 frames of μ-law, played to an A-law leg.
	if err := e.Play(ctxTimeout(t), bytesOf(9*FrameSize+FrameSize/2, 0xFF), PCMU); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 9*FrameDuration {
		t.Errorf("10 frames took %s, want ≥ %s (paced)", el, 9*FrameDuration)
	}
	var pkts []*rtp.Packet
	for range 10 {
		pkts = append(pkts, p.recv())
	}
	for i, q := range pkts {
		if len(q.Payload) != FrameSize || q.PayloadType != 8 {
			t.Fatalf("frame %d: %d bytes PT %d", i, len(q.Payload), q.PayloadType)
		}
		if i > 0 && q.Timestamp-pkts[i-1].Timestamp != FrameSize {
			t.Errorf("frame %d: timestamp step %d", i, q.Timestamp-pkts[i-1].Timestamp)
		}
	}
	last := pkts[9].Payload
	if last[0] != ULawToALaw(0xFF) || last[FrameSize-1] != PCMA.Silence() {
		t.Errorf("last frame %#x…%#x, want converted audio then A-law silence padding", last[0], last[FrameSize-1])
	}
}

// endless is a music-on-hold source that never ends.
type endless struct{}

func (endless) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 0xFF
	}
	return len(b), nil
}

// Rule: barge-in — cancelling the context stops the prompt at once with the cancel cause.
func TestPlayBargeIn(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{})
	e.SetCodec(0, PCMU)
	p := newPeer(t)
	e.SetRemote(p.addr())
	digit := errors.New("caller pressed 1")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- e.Play(ctx, endless{}, PCMU) }()
	for range 3 {
		p.recv()
	}
	cancel(digit)
	select {
	case err := <-done:
		if !errors.Is(err, digit) {
			t.Errorf("Play returned %v, want the cause", err)
		}
	case <-time.After(wait):
		t.Fatal("Play did not stop")
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestPlayReadErrorWrapped(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{})
	if err := e.Play(ctxTimeout(t), failing{}, PCMU); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("err = %v", err)
	}
}

// Close ends a running Play with ErrClosed.
func TestPlayEndsOnClose(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{})
	e.SetCodec(0, PCMU)
	e.SetRemote(newPeer(t).addr())
	tap := newTapper(e)
	done := make(chan error, 1)
	go func() { done <- e.Play(context.Background(), endless{}, PCMU) }()
	tap.next(t, Sent) // Play is running once a frame went out
	e.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Play did not end on Close")
	}
}
