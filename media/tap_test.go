package media

import (
	"sync/atomic"
	"testing"
	"time"
)

// Two taps on one endpoint both see every packet (a call's recording and a voicemail message
// tapping the same carrier leg), and removing one leaves the other in place: with the single
// tap slot of before, the voicemail replaced the recording's tap and clearing it left the
// recording silent.
func TestTwoTapsSeeEveryPacketAndRemoveOnlyTheirOwn(t *testing.T) {
	e := newTestEndpoint(t, EndpointOptions{})
	e.SetCodec(0, PCMU)
	recording := newTapper(e) // first, as a recording started at call start
	var voicemail atomic.Int64
	removeVoicemail := e.AddTap(func(p TapPacket) {
		if p.Flow == Received {
			voicemail.Add(1)
		}
	})
	caller := newPeer(t)
	e.SetRemote(caller.addr())
	caller.send(e.LocalAddr(), audio(0, 1, 160, 0xAAAA, 0xFF))
	recording.until(t, 1)
	// The taps run one after the other on the poll loop: the second may not have run yet when
	// the first's packet arrives here.
	for deadline := time.Now().Add(wait); voicemail.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if voicemail.Load() != 1 {
		t.Fatalf("the second tap saw %d packets, want 1", voicemail.Load())
	}
	removeVoicemail()
	removeVoicemail() // twice is harmless
	caller.send(e.LocalAddr(), audio(0, 2, 320, 0xAAAA, 0xFF))
	if p := recording.until(t, 2); p.Sequence != 2 {
		t.Fatalf("the first tap saw seq %d, want 2", p.Sequence)
	}
	if voicemail.Load() != 1 {
		t.Errorf("the removed tap saw %d packets, want still 1", voicemail.Load())
	}
}
