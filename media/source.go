package media

import (
	"net/netip"
	"time"
)

// Strict source: who may send to an endpoint.
//
// A bare symmetric-RTP latch (RFC 4961: the first valid packet fixes the peer) lets anyone who
// reaches the port first take the call — the "RTP bleed" attack: a sprayer sends to every port
// of the range, receives the prompts and the agent's voice, injects audio and RFC 4733 digits,
// and the caller's own packets are then dropped as foreign. The rules here are those of
// rtpengine's heuristic endpoint learning with strict-source, plus Asterisk's strictrtp
// probation for sources that match nothing:
//
//  1. A source is ranked against what signalling told us: the SDP c= address and port
//     (rankExact), the c= address (rankAddr), the signalling source's address (rankSignal, a
//     NAT'd phone), anything else (rankStranger).
//  2. Until something is latched, a source ranked rankSignal or better latches at once. A
//     stranger must send Probation packets with consecutive sequence numbers within
//     ProbationWindow, and may latch only after the learning window has closed with nobody
//     better heard (rtpengine's "delayed" learning), so a peer that matches signalling always
//     wins and a sprayer is never sent anything while the real peer is expected.
//  3. While a learning window is open (LearningWindow after SetRemote first names an address,
//     and again after a re-INVITE moves it) a better-ranked source takes the latch.
//  4. A re-INVITE that moves c= away from a source latched for matching (it now matches worse:
//     the port or the address changed) abandons it: we send to the new c=, and the first source
//     matching the new c= or the signalling source takes the latch whenever it speaks. The
//     abandoned source is still accepted until then (the peer may keep sending from it a while).
//  5. Otherwise the latch is final: any other source is dropped and counted
//     (foreign_source, the security hook). A re-INVITE never drops the latch and never lets a
//     stranger in again: after the first latch a stranger's rank can beat nothing.
//
// RTCP follows the same rules on its own latch (the c= port + 1 for rankExact); a source at the
// latched RTP address counts as rankSignal, so a peer that proved itself on RTP has its RTCP
// accepted, and a stranger never latches RTCP on its own (RTCP has no sequence to probe).

// Defaults of the strict-source options.
const (
	DefaultProbation       = 4
	DefaultProbationWindow = time.Second
	DefaultLearningWindow  = 3 * time.Second
)

// Ranks of a source against the negotiated addresses (higher is better).
const (
	rankStranger int8 = iota
	rankSignal
	rankAddr
	rankExact
)

// latchState is a latched source; immutable once stored.
type latchState struct {
	addr netip.AddrPort
	rank int8 // the source's rank when it latched
}

// probation follows the one stranger currently trying to prove itself (reader goroutine only).
// A packet from another source, another SSRC, out of sequence, or after a gap longer than the
// window restarts the run.
type probation struct {
	src    netip.AddrPort
	ssrc   uint32
	seq    uint16
	n      int
	first  int64 // ns since the endpoint's start: the run's first packet
	last   int64
	proven bool
}

// observe records one packet and reports whether its run has proven itself: n consecutive
// sequence numbers with the n-th within window of the first, the run unbroken since.
func (p *probation) observe(src netip.AddrPort, h rtpHeader, now int64, n int, window time.Duration) bool {
	if p.n == 0 || src != p.src || h.ssrc != p.ssrc || h.seq != p.seq+1 || now-p.last > int64(window) {
		*p = probation{src: src, ssrc: h.ssrc, seq: h.seq, n: 1, first: now, last: now}
	} else {
		p.seq, p.last, p.n = h.seq, now, p.n+1
	}
	if !p.proven && p.n >= n {
		if now-p.first <= int64(window) {
			p.proven = true
		} else {
			p.n, p.first = 1, now // too slow: the run starts again here
		}
	}
	return p.proven
}

// verdict is what the strict-source check decided about one packet.
type verdict uint8

const (
	admitted   verdict = iota
	heldBack           // a stranger on probation or waiting for the window: dropped, not a security event
	foreignSrc         // not the latched source: dropped and reported
)

// rank ranks src against cfg (rtcp: the c= port + 1 is the exact match).
func (e *Endpoint) rank(c *epConfig, src netip.AddrPort, rtcp bool) int8 {
	if p := e.opts.Peer; p.IsValid() {
		if rtcp {
			p = netip.AddrPortFrom(p.Addr(), p.Port()+1)
		}
		if src == p {
			return rankExact
		}
		return rankStranger
	}
	if c.lastReal.IsValid() {
		want := c.lastReal
		if rtcp {
			want = netip.AddrPortFrom(want.Addr(), want.Port()+1)
		}
		if src == want {
			return rankExact
		}
		if src.Addr() == want.Addr() {
			return rankAddr
		}
	}
	if s := e.opts.SignalSource; s.IsValid() && src.Addr() == s {
		return rankSignal
	}
	return rankStranger
}

// learning reports whether a learning window is open at now.
func (c *epConfig) learning(now int64) bool { return c.windowEnd != 0 && now < c.windowEnd }

// admitRTP applies the strict-source rules to an RTP packet whose source is not the latched one
// (l is the current latch, nil if none). Reader goroutine only: it is the latch's one writer.
func (e *Endpoint) admitRTP(l *latchState, c *epConfig, src netip.AddrPort, h rtpHeader, now int64) verdict {
	r := e.rank(c, src, false)
	if l == nil {
		if r >= rankSignal {
			e.latched.Store(&latchState{addr: src, rank: r})
			return admitted
		}
		proven := e.probe.observe(src, h, now, e.opts.Probation, e.opts.ProbationWindow)
		if !proven || c.windowEnd == 0 || now < c.windowEnd {
			return heldBack
		}
		e.latched.Store(&latchState{addr: src, rank: rankStranger})
		return admitted
	}
	if r >= rankSignal && (c.learning(now) && r > e.rank(c, l.addr, false) || e.current(c, l, false) == nil) {
		e.latched.Store(&latchState{addr: src, rank: r})
		return admitted
	}
	return foreignSrc
}

// admitRTCP is admitRTP for RTCP, on the RTCP latch. RTCP carries no sequence to probe, so a
// stranger never latches it; the address RTP latched counts as the signalling source.
func (e *Endpoint) admitRTCP(l *latchState, c *epConfig, src netip.AddrPort, now int64) verdict {
	r := e.rtcpRank(c, src)
	if l == nil {
		if r >= rankSignal {
			e.rtcpLatched.Store(&latchState{addr: src, rank: r})
			return admitted
		}
		if e.latched.Load() != nil {
			return foreignSrc // RTP knows its peer: this is someone else
		}
		return heldBack
	}
	if r >= rankSignal && (c.learning(now) && r > e.rtcpRank(c, l.addr) || e.current(c, l, true) == nil) {
		e.rtcpLatched.Store(&latchState{addr: src, rank: r})
		return admitted
	}
	return foreignSrc
}

func (e *Endpoint) rtcpRank(c *epConfig, src netip.AddrPort) int8 {
	r := e.rank(c, src, true)
	if r == rankStranger {
		if rl := e.latched.Load(); rl != nil && rl.addr.Addr() == src.Addr() {
			r = rankSignal
		}
	}
	return r
}

// current is the latch to send to, or nil when there is none or the peer moved away from it: a
// source latched for matching signalling whose match got worse after a re-INVITE moved c= (the
// c= port changed under an exact match, or the c= address no longer matches at all). We then
// send to the new c= until the peer is heard from an address that matches.
func (e *Endpoint) current(c *epConfig, l *latchState, rtcp bool) *latchState {
	if l == nil || l.rank == rankStranger {
		return l
	}
	r := e.rank(c, l.addr, false)
	if rtcp {
		r = e.rtcpRank(c, l.addr)
	}
	if r < l.rank {
		return nil
	}
	return l
}
