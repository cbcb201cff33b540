package media

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// Rule: the receive loop parks after a batch that came back short of full without the EAGAIN
// read (recv_linux.go). This proves it loses nothing by it: a backlog of several batches queued
// before the reader starts is all handled, and a datagram arriving after the reader parked
// wakes it. A loop that parked after a full batch would leave the backlog's tail unread until
// the next datagram; one that ignored the wake-up would never see the late one.
func TestReadLoopDrainsABacklogAndWakesForTheNext(t *testing.T) {
	alloc := testAllocator(t, 2)
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	p := newPeer(t)
	const backlog = 3*recvBatch + 1
	for i := range backlog {
		if _, err := p.conn.WriteToUDPAddrPort([]byte{byte(i)}, conn.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
			t.Fatal(err)
		}
	}
	var got atomic.Int64
	var last atomic.Int64
	var fromPeer atomic.Bool
	fromPeer.Store(true)
	seen := make(chan struct{}, 1)
	done := make(chan struct{})
	var closed atomic.Bool
	go func() {
		defer close(done)
		readLoop(conn, alloc, closed.Load, func(b []byte, src netip.AddrPort, _ time.Time) {
			if src != p.addr() || len(b) != 1 {
				fromPeer.Store(false)
			}
			last.Store(int64(b[0]))
			got.Add(1)
			select {
			case seen <- struct{}{}:
			default:
			}
		})
	}()
	await := func(n int64) {
		t.Helper()
		deadline := time.After(wait)
		for got.Load() < n {
			select {
			case <-seen:
			case <-deadline:
				t.Fatalf("handled %d datagrams, want %d", got.Load(), n)
			}
		}
	}
	await(backlog)
	// The reader is parked now (or about to): one more must wake it.
	time.Sleep(20 * time.Millisecond) // not a synchronisation: gives the reader time to park
	if _, err := p.conn.WriteToUDPAddrPort([]byte{200}, conn.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	await(backlog + 1)
	if last.Load() != 200 || !fromPeer.Load() {
		t.Errorf("last datagram %d (want 200), every source the peer's: %v", last.Load(), fromPeer.Load())
	}
	closed.Store(true)
	conn.Close()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("readLoop did not end when its socket closed")
	}
}
