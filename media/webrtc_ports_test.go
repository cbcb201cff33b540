package media

import (
	"net"
	"net/netip"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// Rule (issue 21, firewalls): the ICE socket binds inside the configured port range — the
// first free port of it (here the first is taken, so the second) — and an exhausted range is
// an error naming it, never a random port outside what the firewall opened.
func TestWebRTCICESocketBindsTheFirstFreePortOfItsRange(t *testing.T) {
	lo := testport.FreeRange(t, 20000, 32000, 2)
	lp := netip.MustParseAddr("127.0.0.1")
	taken, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lp, uint16(lo))))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	w, err := NewWebRTC(WebRTCOptions{Allocator: testAllocator(t, 4), ICEAddress: netip.AddrPortFrom(lp, uint16(lo)), ICEPortMax: uint16(lo + 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := w.Addr().Port(); got != uint16(lo+1) {
		t.Fatalf("ICE socket on port %d, want %d (the first free one of %d-%d)", got, lo+1, lo, lo+1)
	}
	if _, err := NewWebRTC(WebRTCOptions{Allocator: testAllocator(t, 4), ICEAddress: netip.AddrPortFrom(lp, uint16(lo)), ICEPortMax: uint16(lo + 1)}); err == nil {
		t.Fatal("a second WebRTC got a port although the range is full")
	}
}
