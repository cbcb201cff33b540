package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func dial(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UDPConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// Each side latches on its first sender; datagrams cross unchanged to the other side's peer,
// and those arriving before the other side latched are dropped and counted.
func TestRelay_LatchesAndForwardsBothWays(t *testing.T) {
	r, err := New(netip.MustParseAddr("127.0.0.1"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ports := r.Ports()
	if len(ports) != 2 || ports[0][0] == ports[0][1] {
		t.Fatalf("ports %v", ports)
	}
	a, b := dial(t), dial(t)
	to := func(p int) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p} }
	if _, err := a.WriteToUDP([]byte("early"), to(ports[0][0])); err != nil { // B not latched yet
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, un := r.Counts(); un == 0 && time.Now().Before(deadline); _, un = r.Counts() {
		time.Sleep(time.Millisecond)
	}
	if _, err := b.WriteToUDP([]byte("from-b"), to(ports[0][1])); err != nil {
		t.Fatal(err)
	}
	if got := read(t, a); got != "from-b" {
		t.Errorf("a got %q", got)
	}
	if _, err := a.WriteToUDP([]byte("from-a"), to(ports[0][0])); err != nil {
		t.Fatal(err)
	}
	if got := read(t, b); got != "from-a" {
		t.Errorf("b got %q", got)
	}
	// The relay counts a packet after writing it, so b may read it first: await the count.
	fw, un := r.Counts()
	for deadline := time.Now().Add(5 * time.Second); fw < 2 && time.Now().Before(deadline); fw, un = r.Counts() {
		time.Sleep(time.Millisecond)
	}
	if fw != 2 || un != 1 {
		t.Errorf("forwarded %d unlatched %d, want 2 and 1", fw, un)
	}
	r.Close()
	r.Close() // idempotent
}
