package media

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Rule: after 200 bridged endpoints (100 calls) carrying RTP are closed, no goroutine is left
// and every port is back in the allocator.
func TestNoGoroutineLeakAfter200Endpoints(t *testing.T) {
	defer goleak.VerifyNone(t)
	alloc := testAllocator(t, 256)
	p := newPeer(t)
	for i := range 100 {
		a, err := NewEndpoint(EndpointOptions{Allocator: alloc, RTCPInterval: 10 * time.Millisecond, MediaTimeout: time.Second, SignalSource: loopback})
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewEndpoint(EndpointOptions{Allocator: alloc, RTCPInterval: 10 * time.Millisecond, MediaTimeout: time.Second, SignalSource: loopback})
		if err != nil {
			t.Fatal(err)
		}
		a.SetCodec(0, PCMU)
		b.SetCodec(0, PCMU)
		b.SetRemote(p.addr())
		if _, err := Bridge(a, b); err != nil {
			t.Fatal(err)
		}
		tap := newTapper(a)
		p.send(a.LocalAddr(), audio(0, uint16(i), 160, 1, 0xFF))
		tap.until(t, uint16(i))
		if i%2 == 0 { // close in both orders
			a.Close()
			b.Close()
		} else {
			b.Close()
			a.Close()
		}
	}
	if n := alloc.InUse(); n != 0 {
		t.Errorf("%d port pairs still allocated", n)
	}
}
