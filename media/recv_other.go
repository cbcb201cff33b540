//go:build !linux

package media

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

type rxBatch struct{ buf [maxPacket]byte }

func newRxBatch() *rxBatch { return &rxBatch{} }

// readLoop hands every datagram conn receives to handle, on the calling goroutine, until conn
// is closed (or fails 100 times in a row). See recv_linux.go for the batched version.
func readLoop(conn *net.UDPConn, pool *PortAllocator, closed func() bool, handle func(b []byte, src netip.AddrPort, at time.Time)) {
	b := pool.getBatch()
	defer pool.putBatch(b)
	for errs := 0; errs < 100; {
		n, src, err := conn.ReadFromUDPAddrPort(b.buf[:])
		if err != nil {
			if closed() || errors.Is(err, net.ErrClosed) {
				return
			}
			errs++
			continue
		}
		errs = 0
		handle(b.buf[:n], src, time.Now())
	}
}
