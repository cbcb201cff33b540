package media

import (
	"errors"
	"net/netip"
	"testing"
)

// Rule: RTP ports are even, RTCP is RTP+1, exhaustion is ErrNoPorts, and released ports return.
func TestPortAllocatorEvenPortsExhaustionAndRelease(t *testing.T) {
	a := testAllocator(t, 4)
	var pairs []PortPair
	for {
		p, err := a.Allocate()
		if errors.Is(err, ErrNoPorts) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Port%2 != 0 {
			t.Errorf("RTP port %d is odd", p.Port)
		}
		if got := p.RTP.LocalAddr().(interface{ String() string }).String(); got != netip.AddrPortFrom(loopback, uint16(p.Port)).String() {
			t.Errorf("RTP bound to %s, want port %d", got, p.Port)
		}
		if got := p.RTCP.LocalAddr().String(); got != netip.AddrPortFrom(loopback, uint16(p.Port+1)).String() {
			t.Errorf("RTCP bound to %s, want port %d", got, p.Port+1)
		}
		pairs = append(pairs, p)
		if len(pairs) > 4 {
			t.Fatal("allocated more pairs than the range holds")
		}
	}
	if len(pairs) == 0 {
		t.Fatal("nothing allocated")
	}
	if a.InUse() != len(pairs) {
		t.Errorf("InUse = %d, want %d", a.InUse(), len(pairs))
	}
	freed := pairs[0]
	a.Release(freed)
	a.Release(freed) // twice is harmless
	p, err := a.Allocate()
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if p.Port != freed.Port {
		t.Errorf("got port %d, want the released %d", p.Port, freed.Port)
	}
	a.Release(p)
	for _, p := range pairs[1:] {
		a.Release(p)
	}
	if a.InUse() != 0 {
		t.Errorf("InUse = %d after releasing all", a.InUse())
	}
}

// Rule: a just-released port is not handed out again while others are free (round-robin).
func TestPortAllocatorRoundRobin(t *testing.T) {
	a := testAllocator(t, 8)
	p1, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	a.Release(p1)
	p2, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(p2)
	if p2.Port == p1.Port {
		t.Errorf("port %d reused at once", p1.Port)
	}
}

func TestNewPortAllocatorRejectsEmptyRanges(t *testing.T) {
	for _, r := range [][2]int{{10001, 10001}, {10000, 10000}, {20, 10}, {0, 1}, {65534, 65536}} {
		if _, err := NewPortAllocator(loopback, r[0], r[1]); err == nil {
			t.Errorf("range %d-%d accepted", r[0], r[1])
		}
	}
	a, err := NewPortAllocator(loopback, 10001, 10003) // rounds up to 10002/10003
	if err != nil {
		t.Fatal(err)
	}
	if a.min != 10002 || a.max != 10002 {
		t.Errorf("range = %d-%d", a.min, a.max)
	}
}

// Rule: an endpoint that cannot get ports fails with ErrNoPorts (SIP answers 503).
func TestNewEndpointExhaustion(t *testing.T) {
	a := testAllocator(t, 1)
	e1, err := NewEndpoint(EndpointOptions{Allocator: a})
	if err != nil {
		t.Skipf("the single pair is held by another process: %v", err)
	}
	defer e1.Close()
	if _, err := NewEndpoint(EndpointOptions{Allocator: a}); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("err = %v, want ErrNoPorts", err)
	}
	e1.Close()
	e2, err := NewEndpoint(EndpointOptions{Allocator: a})
	if err != nil {
		t.Fatalf("after Close the pair must be free again: %v", err)
	}
	e2.Close()
}
