package media

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
)

// PortAllocatorOptions configures NewPortAllocatorWithOptions.
type PortAllocatorOptions struct {
	// Addr is the local address every pair is bound on (0.0.0.0 or :: for all interfaces; SIP
	// then writes the external address in SDP c=). Required.
	Addr netip.Addr
	// Min and Max bound the range [Min, Max]. Min is rounded up to even; the range must hold at
	// least one even port whose successor is ≤ Max.
	Min, Max int
	// Rand shuffles the free list: the order in which the range's pairs are first handed out.
	// Default: a ChaCha8 generator seeded from crypto/rand, so the sequence cannot be guessed
	// from outside. Tests pass a seeded generator. Used only by the constructor.
	Rand *rand.Rand
}

// PortAllocator hands out RTP/RTCP port pairs from a configured range on one local address.
// RTP ports are always even and RTCP uses RTP+1 (RFC 3550 §11; many carriers and SBCs insist).
//
// Ports come from a free list, not in sequence: the list starts as a random permutation of the
// range's even ports (PortAllocatorOptions.Rand), Allocate takes the head and Release appends to
// the tail. So the next port cannot be predicted from the last one (an RTP sprayer cannot aim at
// the port of the call being set up — the "RTP bleed" attack), and a port just released is the
// last to be reused: late packets of the previous call land on a closed port instead of the next
// call. A port that cannot be bound (another process holds it) goes to the tail and is skipped.
// Safe for concurrent use.
type PortAllocator struct {
	addr     netip.Addr
	min, max int // even min; max is the highest usable RTP port (max+1 is its RTCP)

	mu    sync.Mutex
	free  []uint16 // ring buffer of free even ports: head at free[head], count of them
	head  int
	count int
	inUse map[int]bool

	// rx reads every socket of the allocator (recv_linux.go: a few epoll-driven loops, each
	// with its own receive buffers).
	rx *receiver
	// sendBufs: a sender borrows a send buffer only while it writes, so an idle leg holds
	// none and the pool holds about one per running goroutine.
	sendBufs sync.Pool // *[maxPacket]byte
}

// slot is a socket's index among the receiver's: its port's offset in the range.
func (a *PortAllocator) slot(port int) int { return port - a.min }

func (a *PortAllocator) getSendBuf() *[maxPacket]byte  { return a.sendBufs.Get().(*[maxPacket]byte) }
func (a *PortAllocator) putSendBuf(b *[maxPacket]byte) { a.sendBufs.Put(b) }

// PortPair is one allocated pair: bound sockets for RTP (even Port) and RTCP (Port+1).
type PortPair struct {
	Port int
	RTP  *Socket
	RTCP *Socket
}

// NewPortAllocator returns an allocator of the ports [min, max] on addr with a free list
// shuffled from crypto/rand: NewPortAllocatorWithOptions with the default Rand.
func NewPortAllocator(addr netip.Addr, min, max int) (*PortAllocator, error) {
	return NewPortAllocatorWithOptions(PortAllocatorOptions{Addr: addr, Min: min, Max: max})
}

// NewPortAllocatorWithOptions returns an allocator as configured by opts (see
// PortAllocatorOptions for the defaults).
func NewPortAllocatorWithOptions(opts PortAllocatorOptions) (*PortAllocator, error) {
	addr, min, max := opts.Addr, opts.Min, opts.Max
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
	r := opts.Rand
	if r == nil {
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails (Go 1.24+: crypto/rand.Read panics rather than err)
		r = rand.New(rand.NewChaCha8(seed))
	}
	n := (last-min)/2 + 1
	free := make([]uint16, n)
	for i := range free {
		free[i] = uint16(min + 2*i)
	}
	r.Shuffle(n, func(i, j int) { free[i], free[j] = free[j], free[i] })
	a := &PortAllocator{addr: addr.Unmap(), min: min, max: last, free: free, count: n, inUse: make(map[int]bool),
		rx: newReceiver(last + 2 - min)}
	a.sendBufs.New = func() any { return new([maxPacket]byte) }
	return a, nil
}

// pop takes the head of the free list (a.mu held; count > 0).
func (a *PortAllocator) pop() int {
	p := a.free[a.head]
	a.head = (a.head + 1) % len(a.free)
	a.count--
	return int(p)
}

// push appends port to the tail of the free list (a.mu held; the port is not in the list).
func (a *PortAllocator) push(port int) {
	a.free[(a.head+a.count)%len(a.free)] = uint16(port)
	a.count++
}

// Allocate binds the pair at the head of the free list (even port and its successor). It
// returns ErrNoPorts (wrapped) when every pair of the range is in use or cannot be bound.
func (a *PortAllocator) Allocate() (PortPair, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for tries := a.count; tries > 0; tries-- {
		port := a.pop()
		rtp, err := listenUDP(netip.AddrPortFrom(a.addr, uint16(port)))
		if err != nil {
			a.push(port) // held by someone else: try it again after the others
			continue
		}
		rtcp, err := listenUDP(netip.AddrPortFrom(a.addr, uint16(port+1)))
		if err != nil {
			rtp.Close()
			a.push(port)
			continue
		}
		a.inUse[port] = true
		return PortPair{Port: port, RTP: rtp, RTCP: rtcp}, nil
	}
	return PortPair{}, fmt.Errorf("media: allocate RTP port in %d-%d: %w", a.min, a.max+1, ErrNoPorts)
}

// Release closes the pair's sockets and returns the port to the tail of the free list.
// Releasing twice is harmless.
func (a *PortAllocator) Release(p PortPair) {
	if p.RTP != nil {
		p.RTP.Close()
	}
	if p.RTCP != nil {
		p.RTCP.Close()
	}
	a.mu.Lock()
	if a.inUse[p.Port] {
		delete(a.inUse, p.Port)
		a.push(p.Port)
	}
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
