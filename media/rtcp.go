package media

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// ntpTime converts a wall-clock time to the 64-bit NTP format of RFC 3550 §4.
func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// timers are an endpoint's two clocks — the periodic RTCP report and the media timeout — run
// by time.AfterFunc rather than by a goroutine of their own: a leg costs no stack while it
// waits. mu serialises the callbacks, the re-checks configuration changes ask for, and Close;
// it is held across the report's sendto(2), never across a call out of the package.
type timers struct {
	mu      sync.Mutex
	stopped bool
	rtcp    *time.Timer // nil: RTCP sending off
	media   *time.Timer
	fired   bool  // the media timeout was reported
	err     error // what it reported
	onFire  func(error)
	rep     reportState
}

// startTimers arms the report timer and checks the media timeout once (NewEndpoint).
func (e *Endpoint) startTimers() {
	t := &e.tm
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.opts.RTCPInterval > 0 {
		t.rtcp = time.AfterFunc(e.rtcpDelay(), e.reportTick)
	}
	t.media = time.AfterFunc(time.Hour, e.checkTimeout)
	e.checkLocked()
}

// reportTick sends a report and arms the next one.
func (e *Endpoint) reportTick() {
	t := &e.tm
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	e.sendReport(&t.rep, false)
	t.rtcp.Reset(e.rtcpDelay())
}

// checkTimeout re-evaluates the media timeout (its timer fired, or the configuration changed).
func (e *Endpoint) checkTimeout() {
	e.tm.mu.Lock()
	defer e.tm.mu.Unlock()
	e.checkLocked()
}

// checkLocked fires the timeout when due and otherwise re-arms the timer for the remaining
// time (tm.mu held).
func (e *Endpoint) checkLocked() {
	t := &e.tm
	if t.stopped || t.fired {
		return
	}
	limit, hold := e.timeoutLimit()
	if limit <= 0 { // off
		t.media.Stop()
		return
	}
	last := max(e.lastRx.Load(), e.armedAt.Load())
	remaining := time.Duration(last) + limit - time.Since(e.start)
	if remaining > 0 {
		t.media.Reset(remaining)
		return
	}
	t.fired = true
	what := "no RTP"
	if e.lastRx.Load() == 0 {
		what = "no RTP ever"
	}
	if hold {
		what += " while on hold"
	}
	t.err = fmt.Errorf("%w: %s for %s", ErrMediaTimeout, what, limit)
	e.timeout <- t.err // capacity 1, sent once
	if t.onFire != nil {
		go t.onFire(t.err) // never under tm.mu, never on the caller's goroutine (SetRemote's)
	}
}

// OnMediaTimeout arranges for f to be called once, on a goroutine of its own, with the error
// MediaTimeout() delivers, when the media timeout fires (at once if it fired already). It is
// the way to watch an endpoint without a goroutine waiting on the channel for the whole call:
// nothing runs until the timeout. A later call replaces f; nil removes it. f is not called
// once Close has begun, unless it was already started.
func (e *Endpoint) OnMediaTimeout(f func(error)) {
	t := &e.tm
	t.mu.Lock()
	defer t.mu.Unlock()
	t.onFire = f
	if f != nil && t.fired && !t.stopped {
		go f(t.err)
	}
}

// stopTimers stops both clocks for good and sends the RTCP BYE (Close).
func (e *Endpoint) stopTimers() {
	t := &e.tm
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	t.media.Stop()
	if t.rtcp != nil {
		t.rtcp.Stop()
		e.sendReport(&t.rep, true) // RFC 3550 §6.3.7: say goodbye before the ports close
	}
}

// timeoutLimit is the timeout in force (0: none) and whether it is the hold one.
func (e *Endpoint) timeoutLimit() (time.Duration, bool) {
	if e.cfg.Load().onHold() {
		return e.opts.HoldTimeout, true
	}
	return e.opts.MediaTimeout, false
}

// rtcpDelay is the report interval randomised to [0.5, 1.5] × RTCPInterval (RFC 3550 §6.3.1)
// so that endpoints started together do not report in lockstep.
func (e *Endpoint) rtcpDelay() time.Duration {
	return e.opts.RTCPInterval/2 + time.Duration(rand.Int64N(int64(e.opts.RTCPInterval)))
}

// reportState remembers the counters at the previous report, for the interval fraction lost.
type reportState struct {
	received uint64
	lost     int64
}

// rtcpDestination is the latched RTCP source, else the RTP destination's port + 1 (RFC 3550
// §11; SDP a=rtcp is not supported). False while the remote is unknown or 0.0.0.0.
func (e *Endpoint) rtcpDestination() (netip.AddrPort, bool) {
	cfg := e.cfg.Load()
	if l := e.current(cfg, e.rtcpLatched.Load(), true); l != nil {
		return l.addr, true
	}
	if cfg.sdpRemote.IsValid() && cfg.sdpRemote.Addr().IsUnspecified() {
		return netip.AddrPort{}, false
	}
	dst := cfg.sdpRemote
	if l := e.current(cfg, e.latched.Load(), false); l != nil {
		dst = l.addr
	}
	if !dst.IsValid() || dst.Port() == 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(dst.Addr(), dst.Port()+1), true
}

// buildReport makes a compound RTCP packet (RFC 3550 §6.1): SR if we have sent RTP, else RR,
// with one report block on the peer's stream if we heard it, then SDES CNAME.
// With bye, an RTCP BYE for our SSRC follows (§6.6: we leave the session).
func (e *Endpoint) buildReport(rep *reportState, now time.Time, bye bool) ([]byte, error) {
	var blocks []rtcp.ReceptionReport
	if recv := e.rx.pubReceived.Load(); recv > 0 {
		lost := e.rx.pubLost.Load()
		dRecv, dLost := int64(recv-rep.received), lost-rep.lost
		rep.received, rep.lost = recv, lost
		var fraction uint8
		if exp := dRecv + dLost; exp > 0 && dLost > 0 { // §6.4.1 / A.3 fraction lost
			fraction = uint8(min(dLost<<8/exp, 255))
		}
		total := min(max(lost, -(1<<23)), 1<<23-1) // 24-bit signed
		jit, _ := e.rx.jitter()
		block := rtcp.ReceptionReport{
			SSRC:               e.rx.pubSSRC.Load(),
			FractionLost:       fraction,
			TotalLost:          uint32(total) & 0xFFFFFF,
			LastSequenceNumber: e.rx.pubExtMax.Load(),
			Jitter:             jit,
		}
		if at := e.lastSRAt.Load(); at > 0 {
			block.LastSenderReport = e.lastSR.Load()
			block.Delay = uint32((time.Since(e.start) - time.Duration(at)) * 65536 / time.Second)
		}
		blocks = append(blocks, block)
	}
	cname := rtcp.NewCNAMESourceDescription(e.out.ssrc, fmt.Sprintf("switchboard-%08x", e.out.ssrc))
	var first rtcp.Packet
	if sent := e.out.packets.Load(); sent > 0 {
		first = &rtcp.SenderReport{
			SSRC:        e.out.ssrc,
			NTPTime:     ntpTime(now),
			RTPTime:     e.out.rtpNow(now),
			PacketCount: uint32(sent),
			OctetCount:  uint32(e.out.octets.Load()),
			Reports:     blocks,
		}
	} else {
		first = &rtcp.ReceiverReport{SSRC: e.out.ssrc, Reports: blocks}
	}
	pkts := []rtcp.Packet{first, cname}
	if bye {
		pkts = append(pkts, &rtcp.Goodbye{Sources: []uint32{e.out.ssrc}})
	}
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		return nil, fmt.Errorf("media: marshal RTCP report: %w", err)
	}
	return b, nil
}

// sendReport sends one report (with a BYE when leaving) if the peer's RTCP address is known.
func (e *Endpoint) sendReport(rep *reportState, bye bool) {
	dst, ok := e.rtcpDestination()
	if !ok {
		return
	}
	b, err := e.buildReport(rep, time.Now(), bye)
	if err != nil {
		return
	}
	_, _ = e.ports.RTCP.WriteToUDPAddrPort(b, dst) // best effort: a lost report is harmless
}

// receiveRTCP applies the strict source (source.go) to one RTCP datagram and handles it: it
// records the peer's SR time for our LSR/DLSR fields and what the peer reports about our
// stream. Called by the RTCP socket's reader.
func (e *Endpoint) receiveRTCP(b []byte, src netip.AddrPort, _ time.Time, _ *txBatch) {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if l := e.rtcpLatched.Load(); l == nil || l.addr != src {
		switch e.admitRTCP(l, e.cfg.Load(), src, int64(time.Since(e.start))) {
		case heldBack:
			return
		case foreignSrc:
			e.foreign(src) // a security event, not an RTP packet: not in Stats.Rejected
			return
		}
	}
	e.handleRTCP(b)
}

// handleRTCP parses a compound RTCP packet; malformed packets are ignored.
func (e *Endpoint) handleRTCP(b []byte) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			e.lastSR.Store(uint32(p.NTPTime >> 16)) // middle 32 bits (§6.4.1 LSR)
			e.lastSRAt.Store(max(int64(time.Since(e.start)), 1))
			e.absorbReports(p.Reports)
		case *rtcp.ReceiverReport:
			e.absorbReports(p.Reports)
		}
	}
}

// absorbReports keeps the peer's view of our outgoing stream.
func (e *Endpoint) absorbReports(rs []rtcp.ReceptionReport) {
	for _, r := range rs {
		if r.SSRC != e.out.ssrc {
			continue
		}
		lost := int64(r.TotalLost & 0xFFFFFF)
		if lost&0x800000 != 0 { // sign-extend the 24-bit field
			lost -= 1 << 24
		}
		e.remoteLost.Store(lost)
		e.remoteJitter.Store(r.Jitter)
	}
}
