// Package relay is the floor of the media benchmark: the least a Go program does to forward the
// RTP of calls between two legs, so that the gateway's CPU per forwarded packet can be read as
// a multiple of it, measured with the same packet load in the same run.
//
// A call is a pair of UDP sockets, A (the carrier's side) and B (the far end's). Each socket
// has one goroutine that reads with net.UDPConn and writes every datagram unchanged out of the
// other socket, to the address that other socket latched on — the source of the first packet
// it received (symmetric RTP, RFC 4961, as the gateway does). A packet that arrives before the
// other side has latched is dropped and counted. No parsing, no sequence rewriting, no
// recording, no per-call metrics: what is left is Go's runtime and net package, and the kernel.
package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// side is one socket of a pair.
type side struct {
	conn      *net.UDPConn
	peer      atomic.Pointer[netip.AddrPort] // latched on the first packet received
	other     *side
	forwarded atomic.Uint64
	unlatched atomic.Uint64
}

// Relay forwards between the sockets of its pairs until Close.
type Relay struct {
	sides []*side // A0, B0, A1, B1, …
	wg    sync.WaitGroup
	once  sync.Once
}

// New binds pairs socket pairs on addr (ports chosen by the kernel) and starts forwarding.
func New(addr netip.Addr, pairs int) (*Relay, error) {
	r := &Relay{}
	for range pairs {
		a, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("relay: listen: %w", err)
		}
		b, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			a.Close()
			r.Close()
			return nil, fmt.Errorf("relay: listen: %w", err)
		}
		sa, sb := &side{conn: a}, &side{conn: b}
		sa.other, sb.other = sb, sa
		r.sides = append(r.sides, sa, sb)
	}
	for _, s := range r.sides {
		r.wg.Add(1)
		go r.forward(s)
	}
	return r, nil
}

// Ports returns each pair's two ports: [A, B].
func (r *Relay) Ports() [][2]int {
	out := make([][2]int, 0, len(r.sides)/2)
	for i := 0; i+1 < len(r.sides); i += 2 {
		out = append(out, [2]int{port(r.sides[i].conn), port(r.sides[i+1].conn)})
	}
	return out
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// Counts returns the datagrams forwarded, and those dropped because the other side had not
// latched yet.
func (r *Relay) Counts() (forwarded, unlatched uint64) {
	for _, s := range r.sides {
		forwarded += s.forwarded.Load()
		unlatched += s.unlatched.Load()
	}
	return forwarded, unlatched
}

// Close stops forwarding and closes every socket. Idempotent.
func (r *Relay) Close() error {
	r.once.Do(func() {
		for _, s := range r.sides {
			s.conn.Close()
		}
		r.wg.Wait()
	})
	return nil
}

// forward is the whole relay: read, latch, write to the other side's peer. It does not allocate.
func (r *Relay) forward(s *side) {
	defer r.wg.Done()
	buf := make([]byte, 1500)
	for errs := 0; errs < 100; { // ends when the socket is closed, or after persistent errors
		n, src, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			errs++
			continue
		}
		errs = 0
		if s.peer.Load() == nil {
			a := src
			s.peer.CompareAndSwap(nil, &a)
		}
		dst := s.other.peer.Load()
		if dst == nil {
			s.unlatched.Add(1)
			continue
		}
		if _, err := s.other.conn.WriteToUDPAddrPort(buf[:n], *dst); err == nil {
			s.forwarded.Add(1)
		}
	}
}
