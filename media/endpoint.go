package media

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of EndpointOptions: zero turns these timers off, so a caller that wants them asks.
const (
	DefaultMediaTimeout = 30 * time.Second
	DefaultHoldTimeout  = time.Hour
	DefaultRTCPInterval = 5 * time.Second
	defaultDTMFBuffer   = 16
	maxPacket           = 1500 // receive buffer; larger datagrams are truncated and rejected
)

// epConfig is the negotiated state SIP sets; the packet path reads it through an atomic pointer
// to an immutable copy, so a re-INVITE never blocks media.
type epConfig struct {
	sdpRemote netip.AddrPort // as last set; unspecified address = hold
	lastReal  netip.AddrPort // last specified remote (to tell a resume from an address change)
	windowEnd int64          // ns since start when the learning window closes; 0: never opened
	direction Direction
	codec     Codec
	codecPT   uint8
	dtmfPT    uint8
	// taps are the installed packet taps, each with the id AddTap gave it; replaced, never
	// changed in place (the packet path reads them without a lock).
	taps []tapEntry
}

type tapEntry struct {
	id  uint64
	tap Tap
}

// onHold reports whether the hold timeout applies and audio is not sent.
func (c *epConfig) onHold() bool {
	return c.direction != SendRecv || (c.sdpRemote.IsValid() && c.sdpRemote.Addr().IsUnspecified())
}

// Endpoint is one RTP leg (RFC 3550) on an even port with RTCP on the next one.
//
// Receiving: symmetric RTP (RFC 4961) with a strict source (source.go) — the peer's address is
// latched from received RTP, but only a source whose IP is the SDP c= address or the signalling
// source latches at once; any other must pass a probation of consecutive sequence numbers and
// wait out the learning window, and loses to a matching source (rtpengine's heuristic learning
// with strict-source, Asterisk's strictrtp probation). After latching, packets from any other
// source are dropped and counted ("foreign_source", the security hook); a re-INVITE never
// reopens the door to a stranger. Received packets update RFC 3550 loss and jitter, feed the
// DTMF detector, the tap, and the bridged endpoint.
//
// Sending: one continuous outgoing stream — one SSRC, sequence numbers incrementing by one,
// timestamps advancing with real time — whatever feeds it: a bridge, Play, SendDTMF. Each source
// change re-bases sequence and timestamp so the peer (and a browser's SRTP replay window) sees
// one unbroken stream. Nothing is sent while on hold (remote 0.0.0.0, or direction recvonly or
// inactive).
//
// A media timeout (no RTP for MediaTimeout, HoldTimeout while on hold) is reported once on
// MediaTimeout(). Methods are safe for concurrent use. Close releases everything.
type Endpoint struct {
	opts  EndpointOptions
	ports PortPair
	local netip.AddrPort
	start time.Time // monotonic origin of the endpoint's clock
	m     *Metrics

	cfgMu       sync.Mutex // serialises configuration writers
	tapSeq      atomic.Uint64
	cfg         atomic.Pointer[epConfig]
	latched     atomic.Pointer[latchState] // written by the RTP reader only
	rtcpLatched atomic.Pointer[latchState] // written by the RTCP reader only

	out    sender
	bridge atomic.Pointer[bridgeLink]

	rx       recvStats    // reader goroutine
	det      DTMFDetector // reader goroutine
	probe    probation    // reader goroutine
	rejected atomic.Uint64
	bytesRx  atomic.Uint64

	lastRx  atomic.Int64 // ns since start of the last accepted RTP packet
	armedAt atomic.Int64 // ns since start of the last configuration change (restarts the timeout)
	tm      timers       // RTCP reports and the media timeout (rtcp.go)

	lastSR       atomic.Uint32 // middle 32 bits of the NTP time of the peer's last SR
	lastSRAt     atomic.Int64  // ns since start when it arrived (0: none)
	remoteLost   atomic.Int64
	remoteJitter atomic.Uint32

	dtmf    chan DTMFEvent
	timeout chan error

	rtpW, rtcpW *watch // the receiver's hold on the two sockets (recv_linux.go)

	done      chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool
}

// NewEndpoint binds a port pair from opts.Allocator, gives both sockets to the allocator's
// readers and starts the endpoint's timers; the endpoint has no goroutine of its own. Errors
// wrap ErrNoPorts when the range is exhausted.
func NewEndpoint(opts EndpointOptions) (*Endpoint, error) {
	if opts.Allocator == nil {
		return nil, errors.New("media: new endpoint: no port allocator")
	}
	// Zero (or negative) turns the timers off (EndpointOptions); the rest take defaults.
	opts.MediaTimeout = max(opts.MediaTimeout, 0)
	opts.HoldTimeout = max(opts.HoldTimeout, 0)
	opts.RTCPInterval = max(opts.RTCPInterval, 0)
	opts.LearningWindow = max(opts.LearningWindow, 0)
	if opts.DTMFBuffer <= 0 {
		opts.DTMFBuffer = defaultDTMFBuffer
	}
	if opts.Probation <= 0 {
		opts.Probation = DefaultProbation
	}
	if opts.ProbationWindow <= 0 {
		opts.ProbationWindow = DefaultProbationWindow
	}
	opts.SignalSource = opts.SignalSource.Unmap()
	opts.Peer = netip.AddrPortFrom(opts.Peer.Addr().Unmap(), opts.Peer.Port())
	for opts.SSRC == 0 {
		opts.SSRC = rand.Uint32()
	}
	pp, err := opts.Allocator.Allocate()
	if err != nil {
		return nil, fmt.Errorf("media: new endpoint: %w", err)
	}
	local := pp.RTP.LocalAddrPort()
	e := &Endpoint{
		opts:    opts,
		ports:   pp,
		local:   netip.AddrPortFrom(local.Addr().Unmap(), local.Port()),
		start:   time.Now(),
		m:       opts.Metrics,
		dtmf:    make(chan DTMFEvent, opts.DTMFBuffer),
		timeout: make(chan error, 1),
		done:    make(chan struct{}),
	}
	e.cfg.Store(&epConfig{})
	if p := opts.Peer; p.IsValid() { // known exactly: latched from the start, nothing to learn
		e.latched.Store(&latchState{addr: p, rank: rankExact})
		e.rtcpLatched.Store(&latchState{addr: netip.AddrPortFrom(p.Addr(), p.Port()+1), rank: rankExact})
	}
	e.out.ep = e
	e.out.ssrc = opts.SSRC
	e.out.stack = make([]uint64, 0, 4)
	if e.out.raw, err = newRawSender(pp.RTP); err != nil {
		opts.Allocator.Release(pp)
		return nil, fmt.Errorf("media: new endpoint: %w", err)
	}
	rx := opts.Allocator.rx
	if e.rtpW, err = rx.watch(opts.Allocator.slot(pp.Port), pp.RTP, e.handleRTP); err != nil {
		opts.Allocator.Release(pp)
		return nil, fmt.Errorf("media: new endpoint: %w", err)
	}
	if e.rtcpW, err = rx.watch(opts.Allocator.slot(pp.Port+1), pp.RTCP, e.receiveRTCP); err != nil {
		rx.unwatch(e.rtpW)
		opts.Allocator.Release(pp)
		return nil, fmt.Errorf("media: new endpoint: %w", err)
	}
	e.startTimers()
	return e, nil
}

// LocalAddr is the bound RTP address and (even) port for SDP m= and c=. When the allocator binds
// an unspecified address, SIP writes its configured external address instead.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.local }

// SSRC is the outgoing stream's synchronisation source.
func (e *Endpoint) SSRC() uint32 { return e.out.ssrc }

// SetRemote sets the peer's RTP address from its SDP (c= and m=), again on every re-INVITE.
// An unspecified address (c=0.0.0.0, the RFC 2543 hold kept by RFC 3264 §8.4) stops sending and
// applies HoldTimeout; the latch is kept for the resume. The first real address opens the
// learning window; a different one later (the peer moved) opens it again, so that a source at
// the new address takes the latch — the latch itself is kept, and a source matching neither
// address nor the signalling source never latches after a re-INVITE. The same address again
// changes nothing. Restarts the media timeout.
func (e *Endpoint) SetRemote(addr netip.AddrPort) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	now := int64(time.Since(e.start))
	e.update(true, func(c *epConfig) {
		c.sdpRemote = addr
		if addr.IsValid() && !addr.Addr().IsUnspecified() {
			if c.lastReal != addr {
				c.windowEnd = max(now+int64(e.opts.LearningWindow), 1)
			}
			c.lastReal = addr
		}
	})
}

// Remote is where RTP goes: the latched source if any (and the peer did not move away from it),
// else the SDP address (invalid if none).
func (e *Endpoint) Remote() netip.AddrPort {
	c := e.cfg.Load()
	if l := e.current(c, e.latched.Load(), false); l != nil {
		return l.addr
	}
	return c.sdpRemote
}

// SetCodec sets the negotiated audio codec and its payload type (SIP decides; RFC 3264 answer).
// Until it is set, received packets of any payload type count as audio and nothing is sent.
func (e *Endpoint) SetCodec(pt uint8, c Codec) {
	e.update(false, func(cfg *epConfig) { cfg.codec, cfg.codecPT = c, pt&0x7F })
}

// SetDTMFPayloadType sets the telephone-event payload type (RFC 4733 §7.1.1), both for detecting
// and for sending: mirror the peer's. 0 disables telephone-events (0 is PCMU, never an event).
func (e *Endpoint) SetDTMFPayloadType(pt uint8) {
	e.update(false, func(c *epConfig) { c.dtmfPT = pt & 0x7F })
}

// SetDirection sets our direction as written in our SDP (RFC 3264 §6.1: answer sendonly with
// recvonly). Only SendRecv and SendOnly send audio. Restarts the media timeout.
func (e *Endpoint) SetDirection(d Direction) {
	e.update(true, func(c *epConfig) { c.direction = d })
}

// AddTap installs a packet tap beside any others (a call's recording and a voicemail message
// may tap the same leg) and returns the function that removes it; calling remove again does
// nothing. Taps see each packet in the order they were added. See Tap.
func (e *Endpoint) AddTap(t Tap) (remove func()) {
	if t == nil {
		return func() {}
	}
	id := e.tapSeq.Add(1)
	e.update(false, func(c *epConfig) {
		c.taps = append(append(make([]tapEntry, 0, len(c.taps)+1), c.taps...), tapEntry{id, t})
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			e.update(false, func(c *epConfig) {
				kept := make([]tapEntry, 0, len(c.taps))
				for _, te := range c.taps {
					if te.id != id {
						kept = append(kept, te)
					}
				}
				c.taps = kept
			})
		})
	}
}

// tapAll hands p to every installed tap.
func tapAll(taps []tapEntry, p TapPacket) {
	for _, te := range taps {
		te.tap(p)
	}
}

// DTMF delivers each detected key press once (see DTMFDetector). Events beyond the buffer are
// dropped while nobody reads. The channel is closed by Close.
func (e *Endpoint) DTMF() <-chan DTMFEvent { return e.dtmf }

// MediaTimeout receives at most one error, wrapping ErrMediaTimeout, when no RTP arrived for
// MediaTimeout (HoldTimeout while on hold). The clock restarts on NewEndpoint, SetRemote and
// SetDirection. Never closed. OnMediaTimeout (rtcp.go) delivers the same error to a callback.
func (e *Endpoint) MediaTimeout() <-chan error { return e.timeout }

// Stats returns a snapshot of the endpoint's counters; safe to call at any time, also after Close.
func (e *Endpoint) Stats() Stats {
	_, j := e.rx.jitter()
	return Stats{
		PacketsReceived: e.rx.pubReceived.Load(),
		PacketsSent:     e.out.packets.Load(),
		BytesReceived:   e.bytesRx.Load(),
		BytesSent:       e.out.octets.Load(),
		PacketsLost:     e.rx.pubLost.Load(),
		Rejected:        e.rejected.Load(),
		Jitter:          j,
		RemoteLost:      e.remoteLost.Load(),
		RemoteJitter:    time.Duration(e.remoteJitter.Load()) * time.Second / clockRate,
		Latched:         e.latched.Load() != nil,
	}
}

// Close sends an RTCP BYE (when RTCP is on and the peer is known), stops the timers and the
// reading (when it returns, no packet of the endpoint is being handled), unbridges, releases the
// ports, closes DTMF(), and adds the final loss and jitter to the metrics. Idempotent; always
// returns nil. Do not call it from a Tap.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		// A send under way on another leg's reader finishes; the next sees closed (sender.write)
		// and leaves the descriptor alone, which Release closes below.
		e.out.mu.Lock()
		e.out.mu.Unlock()
		if l := e.bridge.Load(); l != nil {
			l.br.stop()
		}
		close(e.done)
		e.stopTimers() // sends the RTCP BYE
		// Reading stops before the sockets close: the readers use their descriptors.
		e.opts.Allocator.rx.unwatch(e.rtpW)
		e.opts.Allocator.rx.unwatch(e.rtcpW)
		e.opts.Allocator.Release(e.ports)
		close(e.dtmf)
		if e.m != nil && e.rx.pubReceived.Load() > 0 {
			if lost := e.rx.pubLost.Load(); lost > 0 {
				e.m.lost.Add(float64(lost))
			}
			_, j := e.rx.jitter()
			e.m.jitter.Observe(j.Seconds())
		}
	})
	return nil
}

// update applies a configuration change copy-on-write; with restart (a new remote or direction)
// the media timeout starts over. The timeout is re-evaluated either way (hold may have changed).
func (e *Endpoint) update(restart bool, f func(*epConfig)) {
	e.cfgMu.Lock()
	c := *e.cfg.Load()
	f(&c)
	e.cfg.Store(&c)
	e.cfgMu.Unlock()
	if restart {
		e.armedAt.Store(int64(time.Since(e.start)))
	}
	e.checkTimeout() // hold may have changed the timeout in force
}

// destination is where audio goes now, and false when nothing may be sent.
func (e *Endpoint) destination(c *epConfig) (netip.AddrPort, bool) {
	if c.direction == RecvOnly || c.direction == Inactive ||
		(c.sdpRemote.IsValid() && c.sdpRemote.Addr().IsUnspecified()) {
		return netip.AddrPort{}, false
	}
	if l := e.current(c, e.latched.Load(), false); l != nil {
		return l.addr, true
	}
	return c.sdpRemote, c.sdpRemote.IsValid()
}

// rejectReason says why a received packet was dropped (the metric's reason label).
type rejectReason uint8

const (
	reasonMalformed rejectReason = iota
	reasonForeign
	reasonPayloadType
	reasonProbation
)

func (e *Endpoint) reject(r rejectReason) {
	e.rejected.Add(1)
	if e.m == nil {
		return
	}
	switch r {
	case reasonMalformed:
		e.m.bad.Inc()
	case reasonForeign:
		e.m.foreign.Inc()
	case reasonPayloadType:
		e.m.badPT.Inc()
	case reasonProbation:
		e.m.probation.Inc()
	}
}

// handleRTP is the whole receive path of one datagram, called by the socket's reader (one at a
// time: it owns rx, det and probe). It does not allocate. The forwarded packet joins tx, the
// reader's send batch (nil: sent at once).
func (e *Endpoint) handleRTP(b []byte, src netip.AddrPort, at time.Time, tx *txBatch) {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	h, payload, err := parseRTP(b)
	if err != nil || len(b) >= maxPacket {
		e.reject(reasonMalformed)
		return
	}
	cfg := e.cfg.Load()
	if l := e.latched.Load(); l == nil || l.addr != src {
		switch e.admitRTP(l, cfg, src, h, int64(at.Sub(e.start))) {
		case heldBack:
			e.reject(reasonProbation)
			return
		case foreignSrc:
			e.reject(reasonForeign)
			e.foreign(src)
			return
		}
	}
	isDTMF := cfg.dtmfPT != 0 && h.payloadType == cfg.dtmfPT
	isAudio := !isDTMF && (cfg.codec == CodecNone || h.payloadType == cfg.codecPT)
	since := at.Sub(e.start)
	if !e.rx.update(h, int64(since)*clockRate/int64(time.Second), isAudio) {
		return
	}
	e.lastRx.Store(int64(since))
	e.bytesRx.Add(uint64(len(payload)))
	if e.m != nil {
		e.m.rx.Inc()
		if isAudio && e.rx.late {
			e.m.late.Inc()
		}
	}
	if !isDTMF && !isAudio {
		e.reject(reasonPayloadType)
		return
	}
	if len(cfg.taps) > 0 {
		tapAll(cfg.taps, TapPacket{Flow: Received, PayloadType: h.payloadType, Marker: h.marker, Sequence: h.seq,
			Timestamp: h.timestamp, SSRC: h.ssrc, Payload: payload, At: at})
	}
	kind := kindAudio
	if isDTMF {
		kind = kindDTMF
		if ev, ok := e.det.Detect(h.timestamp, payload); ok {
			d, _ := DigitOf(ev)
			select {
			case e.dtmf <- DTMFEvent{Digit: d, Event: ev, Timestamp: h.timestamp, At: at}:
			default:
			}
		}
	}
	if l := e.bridge.Load(); l != nil {
		l.peer.out.write(l.id, h, payload, kind, cfg.codec, at, tx)
	}
}

// foreign tells the security hook of a packet dropped for its source.
func (e *Endpoint) foreign(src netip.AddrPort) {
	if e.m != nil {
		if f := e.m.onForeign.Load(); f != nil {
			(*f)(src)
		}
	}
}
