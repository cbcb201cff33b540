package media

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// PortAllocator hands out RTP/RTCP port pairs from a configured range on one local address.
// RTP ports are always even and RTCP uses RTP+1 (RFC 3550 §11; many carriers and SBCs insist).
// Allocation is round-robin over the range so that a port just released is not reused at once:
// late packets of the previous call then land on a closed port instead of the next call.
// A port that cannot be bound (another process holds it) is skipped. Safe for concurrent use.
type PortAllocator struct {
	addr     netip.Addr
	min, max int // even min; max is the highest usable RTP port (max+1 is its RTCP)

	mu    sync.Mutex
	next  int
	inUse map[int]bool
}

// PortPair is one allocated pair: bound sockets for RTP (even Port) and RTCP (Port+1).
type PortPair struct {
	Port int
	RTP  *net.UDPConn
	RTCP *net.UDPConn
}

// NewPortAllocator returns an allocator of the ports [min, max] on addr (0.0.0.0 or :: for all
// interfaces; SIP then writes the external address in SDP c=). min is rounded up to even; the
// range must hold at least one even port whose successor is ≤ max.
func NewPortAllocator(addr netip.Addr, min, max int) (*PortAllocator, error) {
	if !addr.IsValid() {
		return nil, fmt.Errorf("media: new port allocator: invalid address")
	}
	if min%2 == 1 {
		min++
	}
	last := max - 1 // highest RTP port that leaves room for RTCP
	if last%2 == 1 {
		last--
	}
	if min < 1 || max > 65535 || last < min {
		return nil, fmt.Errorf("media: new port allocator: range %d-%d holds no even RTP/RTCP pair", min, max)
	}
	return &PortAllocator{addr: addr.Unmap(), min: min, max: last, next: min, inUse: make(map[int]bool)}, nil
}

// Allocate binds the next free even port and its successor. It returns ErrNoPorts (wrapped)
// when every pair of the range is in use or cannot be bound.
func (a *PortAllocator) Allocate() (PortPair, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := (a.max-a.min)/2 + 1
	for range n {
		port := a.next
		a.next += 2
		if a.next > a.max {
			a.next = a.min
		}
		if a.inUse[port] {
			continue
		}
		rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.addr, uint16(port))))
		if err != nil {
			continue // held by someone else: skip it
		}
		rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.addr, uint16(port+1))))
		if err != nil {
			rtp.Close()
			continue
		}
		a.inUse[port] = true
		return PortPair{Port: port, RTP: rtp, RTCP: rtcp}, nil
	}
	return PortPair{}, fmt.Errorf("media: allocate RTP port in %d-%d: %w", a.min, a.max+1, ErrNoPorts)
}

// Release closes the pair's sockets and returns the port to the pool. Releasing twice is harmless.
func (a *PortAllocator) Release(p PortPair) {
	if p.RTP != nil {
		p.RTP.Close()
	}
	if p.RTCP != nil {
		p.RTCP.Close()
	}
	a.mu.Lock()
	delete(a.inUse, p.Port)
	a.mu.Unlock()
}

// InUse reports how many pairs are allocated.
func (a *PortAllocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.inUse)
}

// Addr is the local address the allocator binds.
func (a *PortAllocator) Addr() netip.Addr { return a.addr }
