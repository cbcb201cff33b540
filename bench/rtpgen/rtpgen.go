//go:build linux

// Package rtpgen is the media load generator of the concurrency benchmark: it plays both
// phones of many calls at once, because SIPp's own media cannot (rtp_stream sends every
// call's audio from one socket and never reads the echo; a -rtp_echo far end is one socket
// that drops packets from a few hundred calls up).
//
// Each call leg is a socket of its own, as on a real phone: an even RTP port with its RTCP
// port bound next to it (RFC 3550 §11), so the gateway sees one peer address per leg and
// latches on it. A started leg sends a continuous 20 ms PCMU stream (RFC 3551: payload type
// 0, 160 samples per packet, sequence +1 and timestamp +160 per packet) to the gateway's port
// for that leg, and everything that comes back is read and checked: RTP version and size,
// and the sequence numbers of each leg's incoming stream (a forward jump counts the skipped
// packets as lost, RFC 3550 §A.3).
//
// Two goroutines do the work whatever the number of legs. The sender spreads the legs over
// Slots time slots of the 20 ms period so the load is smooth (with Options.Thread it keeps
// that schedule on an OS thread of its own, see sender.go), and writes each packet with one
// write(2) on the leg's connected socket — or, with Options.URing, hands the kernel a slot's
// packets with one io_uring_enter(2), one send per packet on its leg's socket, which saves
// the kernel entry and exit per packet (internal/uring, the ring the gateway's media plane
// sends through too; the legs' sockets are registered with it, so the kernel does not look
// each one up per send). The receiver waits in one epoll_wait(2) for up to
// 256 ready sockets at a time (the batching that matters at one packet per socket per 20 ms;
// recvmmsg(2) would only batch packets of one socket) and drains each with read(2). The
// generator reports its own failures: send errors, sequence gaps, malformed packets, ticks
// that ran late, and the kernel's drops on its sockets (Drops, from /proc/net/udp).
//
// Reading is what a generator on one core cannot afford for every leg at a thousand calls
// and more: each packet read is a wake-up and a read(2) or two, and at N calls there are 100·N
// of them a second. So Options.ReadLegs can bound the legs read for the whole run (the
// sample, spread evenly over the legs). Every other leg is read only until its first RTP
// packet arrives — which proves its media started, Stats.Heard — and then the kernel discards
// its packets with a socket filter that accepts nothing (SO_ATTACH_FILTER, a BPF program of
// one "return 0"). The socket stays open and bound, as a phone's: the sender's datagrams are
// still delivered to it (on loopback the sender pays for that delivery, as it pays for any),
// and the kernel counts each one it discards in the socket's drop counter, so Stats.Discarded
// (from /proc/net/udp) gives the packets that reached the unread legs exactly, and
// Received+Discarded what reached every leg.
package rtpgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchboard-voice/switchboard/bench/procstat"
	"github.com/switchboard-voice/switchboard/internal/uring"
)

// Defaults of Options.
const (
	DefaultPortMin     = 40000
	DefaultPortMax     = 59999
	DefaultInterval    = 20 * time.Millisecond
	DefaultPayload     = 160 // 20 ms of 8 kHz μ-law
	DefaultSlots       = 20
	DefaultMaxDuration = 30 * time.Minute
	headerSize         = 12
)

// Options configures a Gen; zero values take the defaults above.
type Options struct {
	// Addr is the local address the legs bind; default 127.0.0.1.
	Addr netip.Addr
	// PortMin and PortMax bound the even RTP ports tried for legs; ports other processes hold
	// are skipped.
	PortMin, PortMax int
	// Interval is the packet period of every leg; Payload the payload size in bytes.
	Interval time.Duration
	Payload  int
	// Slots spreads the legs' sends over the period.
	Slots int
	// MaxDuration stops the goroutines of a Gen that was never closed.
	MaxDuration time.Duration
	// URing sends each slot's packets with one io_uring_enter(2) (each still a send on its
	// leg's own socket) instead of one write(2) each. When the kernel refuses io_uring (not
	// built in, kernel.io_uring_disabled, a seccomp profile), the generator writes instead and
	// Stats.SendPath and URingErr say so.
	URing bool
	// ReadLegs is the number of legs read for the whole run, spread evenly over the legs; the
	// others are read until their first RTP packet, then discard in the kernel (see the
	// package comment). 0 or ≥ the number of legs: every leg is read.
	ReadLegs int
	// Thread runs the sender on an OS thread of its own that sleeps until each slot in
	// clock_nanosleep(2) itself and keeps a P of the Go runtime for itself (GOMAXPROCS is one
	// higher while the Gen runs), instead of a goroutine woken by the runtime's timers on
	// whichever thread is free: its slots then wait for the kernel's scheduler only, never for
	// the program's other goroutines or a hand-off between threads. Priority > 0 (with Thread)
	// makes that thread SCHED_FIFO at that priority when the kernel allows it
	// (Stats.Sender says).
	Thread   bool
	Priority int
}

func (o *Options) defaults() {
	if !o.Addr.IsValid() {
		o.Addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if o.PortMin == 0 {
		o.PortMin = DefaultPortMin
	}
	if o.PortMax == 0 {
		o.PortMax = DefaultPortMax
	}
	if o.PortMin%2 == 1 {
		o.PortMin++
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Payload <= 0 {
		o.Payload = DefaultPayload
	}
	if o.Slots <= 0 {
		o.Slots = DefaultSlots
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = DefaultMaxDuration
	}
}

// Stats are the generator's counters since New.
type Stats struct {
	Legs       int    `json:"legs"`        // legs opened
	Started    int    `json:"started"`     // legs started
	Sent       uint64 `json:"sent"`        // RTP packets written
	SendErrors uint64 `json:"send_errors"` // writes that failed (e.g. ECONNREFUSED once the gateway closed the port)
	Received   uint64 `json:"received"`    // RTP packets read on the legs
	SeqLost    uint64 `json:"seq_lost"`    // packets missing in the incoming sequence numbers (RFC 3550 §A.3)
	Reordered  uint64 `json:"reordered"`   // packets older than the newest one seen
	Duplicates uint64 `json:"duplicates"`
	Malformed  uint64 `json:"malformed"`  // not RTP version 2, payload type 0, Payload bytes
	RTCP       uint64 `json:"rtcp"`       // datagrams read on the RTCP ports
	LateTicks  uint64 `json:"late_ticks"` // sender slots that began more than one interval late
	// How late each slot began (buckets bounded by SlotLagBoundsUs, the last one open), the
	// largest lag, the stalls (stretches of slots more than 5 ms late) and the last 16 of them.
	SlotLagHist  []uint64 `json:"slot_lag_hist"`
	SlotLagMaxUs int64    `json:"slot_lag_max_us"`
	Stalls       uint64   `json:"stalls"`
	RecentStalls []Stall  `json:"recent_stalls,omitempty"`
	// AtMs is when these counters were read, in milliseconds since Run (Stall.AtMs's clock).
	AtMs int64 `json:"at_ms"`
	// Sender is how the sender runs: "goroutine", "thread" or "thread-fifo" (Options.Thread,
	// Options.Priority). With a thread of its own: its CPU time, the time it waited runnable
	// for its core (schedstat's run_delay) and the times it was preempted, since it started.
	Sender          string  `json:"sender"`
	SenderCPUMs     float64 `json:"sender_cpu_ms,omitempty"`
	SenderWaitMs    float64 `json:"sender_wait_ms,omitempty"`
	SenderPreempted uint64  `json:"sender_preempted,omitempty"`
	// With a thread of its own, the sender yields its P every 8 slots (the runtime hands it
	// to another thread and back): how many yields took more than 1 ms, and the longest.
	SlowYields uint64 `json:"sender_slow_yields,omitempty"`
	YieldMaxUs int64  `json:"sender_yield_max_us,omitempty"`
	// ReadLegs are the legs read for the whole run (Options.ReadLegs; all legs by default):
	// SeqLost, Reordered, Duplicates and Malformed count on them only.
	ReadLegs int `json:"read_legs"`
	// Heard are the legs on which at least one RTP packet arrived (every leg is read until
	// then): "every leg's media started" as the far end sees it.
	Heard int `json:"legs_heard"`
	// Discarded are the RTP packets the kernel delivered to the legs not read for the whole
	// run after their first one, and discarded there (their sockets' drop counters in
	// /proc/net/udp). Received+Discarded is what reached every leg.
	Discarded uint64 `json:"discarded"`
	// SendPath is how packets are sent: "io_uring" (Options.URing) or "write".
	SendPath string `json:"send_path"`
}

// Leg is one call leg: an RTP socket and its RTCP neighbour.
type Leg struct {
	g      *Gen
	port   int
	fd     int
	rtcpFD int
	slot   int
	file   int // index of fd among the ring's registered files

	// Owned by the sender goroutine once sending is set.
	pkt     []byte
	first   bool
	seq     uint16
	ts      uint32
	sending atomic.Bool
	started atomic.Bool

	// read: the leg is read for the whole run (set by New). heard: an RTP packet arrived.
	read  bool
	heard atomic.Bool

	// Owned by the receiver goroutine.
	haveSeq bool
	ssrc    uint32
	maxSeq  uint16
}

// Port is the leg's RTP port, to offer in SDP.
func (l *Leg) Port() int { return l.port }

type bucket struct {
	mu   sync.Mutex
	legs []*Leg
}

// fdEntry maps a ready file descriptor to its leg.
type fdEntry struct {
	leg  *Leg
	rtcp bool
}

// Gen is a set of legs and the two goroutines that drive them. Create with New, then Run;
// Close stops everything and closes the sockets.
type Gen struct {
	opts    Options
	epfd    int
	legs    []*Leg
	byPort  map[int]*Leg
	byFD    []fdEntry
	buckets []bucket
	payload []byte

	readLegs int
	ring     *uring.Ring // Options.URing; sender goroutine only after New
	ringErr  error       // why Options.URing fell back to write(2)
	ringRes  []int32     // the ring's result of each send of a batch (sender goroutine)

	sent, sendErrs, received, lost, reordered, dups, bad, rtcp, late atomic.Uint64
	started, heard                                                   atomic.Int64

	lag        lagStats
	senderTID  atomic.Int64              // the sender's thread (Options.Thread), 0 until it runs
	senderBase threadSched               // the sender thread's when it became the sender's (written before senderTID)
	began      atomic.Pointer[time.Time] // Run
	sender     atomic.Value              // string: Stats.Sender

	closing   atomic.Bool
	runOnce   sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup
	errMu     sync.Mutex
	err       error
}

// New binds n legs (2n ports) and prepares them; nothing is sent until Run and Start.
func New(opts Options, n int) (*Gen, error) {
	opts.defaults()
	if !opts.Addr.Is4() {
		return nil, fmt.Errorf("rtpgen: new: %v is not an IPv4 address", opts.Addr)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("rtpgen: epoll_create1: %w", err)
	}
	g := &Gen{opts: opts, epfd: epfd, byPort: make(map[int]*Leg, n), buckets: make([]bucket, opts.Slots)}
	g.payload = make([]byte, opts.Payload)
	for i := range g.payload { // a 400 Hz μ-law tone, so recordings hold audio, not silence
		g.payload[i] = ulaw(int16(6000 * math.Sin(2*math.Pi*400*float64(i)/8000)))
	}
	port := opts.PortMin
	for len(g.legs) < n {
		if port+1 > opts.PortMax {
			g.Close()
			return nil, fmt.Errorf("rtpgen: new: only %d of %d legs fit in ports %d-%d", len(g.legs), n, opts.PortMin, opts.PortMax)
		}
		l, err := g.bindLeg(port)
		port += 2
		if errors.Is(err, unix.EADDRINUSE) {
			continue
		}
		if err != nil {
			g.Close()
			return nil, err
		}
		l.slot = len(g.legs) % opts.Slots
		g.legs = append(g.legs, l)
		g.byPort[l.port] = l
	}
	// The sample: leg i is read when ⌊(i+1)·r/n⌋ steps past ⌊i·r/n⌋, r legs spread evenly
	// over the n (every leg when r ≥ n). With the benchmark's layout (the n/2 callers first,
	// then their callees in the same order) and an even r, leg i and leg i+n/2 differ by
	// exactly r/2 in ⌊i·r/n⌋, so both legs of a call are read or neither is.
	r := opts.ReadLegs
	if r <= 0 || r >= n {
		r = n
	}
	for i, l := range g.legs {
		l.read = i*r/n != (i+1)*r/n
	}
	g.readLegs = r
	if opts.URing {
		per := uint32((n + opts.Slots - 1) / opts.Slots)
		entries := uint32(8)
		for entries < per && entries < 4096 {
			entries *= 2
		}
		if g.ring, g.ringErr = uring.New(entries); g.ringErr == nil {
			g.ringRes = make([]int32, g.ring.Entries())
			// Leg i's RTP socket is registered file i: no descriptor lookup and reference
			// per send. Without it (a kernel that refuses), the sends name the descriptors.
			fds := make([]int32, len(g.legs))
			for i, l := range g.legs {
				l.file = i
				fds[i] = int32(l.fd)
			}
			_ = g.ring.RegisterFiles(fds)
		}
	}
	return g, nil
}

func (g *Gen) bindLeg(port int) (*Leg, error) {
	rtp, err := g.bindSocket(port)
	if err != nil {
		return nil, err
	}
	rtcp, err := g.bindSocket(port + 1)
	if err != nil {
		unix.Close(rtp)
		return nil, err
	}
	l := &Leg{g: g, port: port, fd: rtp, rtcpFD: rtcp, pkt: make([]byte, headerSize+g.opts.Payload)}
	for _, e := range []struct {
		fd   int
		rtcp bool
	}{{rtp, false}, {rtcp, true}} {
		for len(g.byFD) <= e.fd {
			g.byFD = append(g.byFD, fdEntry{})
		}
		g.byFD[e.fd] = fdEntry{leg: l, rtcp: e.rtcp}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(e.fd)}
		if err := unix.EpollCtl(g.epfd, unix.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
			unix.Close(rtp)
			unix.Close(rtcp)
			return nil, fmt.Errorf("rtpgen: epoll_ctl: %w", err)
		}
	}
	return l, nil
}

func (g *Gen) bindSocket(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("rtpgen: socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: g.opts.Addr.As4()}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("rtpgen: bind %v:%d: %w", g.opts.Addr, port, err)
	}
	return fd, nil
}

// Read reports whether the leg is read for the whole run (in the sample).
func (l *Leg) Read() bool { return l.read }

// Heard reports whether an RTP packet arrived on the leg.
func (l *Leg) Heard() bool { return l.heard.Load() }

// Legs returns the legs in port order.
func (g *Gen) Legs() []*Leg { return g.legs }

// Leg returns the leg bound to RTP port port, or nil.
func (g *Gen) Leg(port int) *Leg { return g.byPort[port] }

// Ports returns every port the legs hold, RTP and RTCP (for Drops and /proc lookups).
func (g *Gen) Ports() map[int]bool {
	m := make(map[int]bool, 2*len(g.legs))
	for _, l := range g.legs {
		m[l.port], m[l.port+1] = true, true
	}
	return m
}

// Run starts the sender and receiver goroutines; calling it again does nothing.
func (g *Gen) Run() {
	g.runOnce.Do(func() {
		now := time.Now()
		g.began.Store(&now)
		g.wg.Add(2)
		go g.sendLoop()
		go g.recvLoop()
	})
}

// Start makes leg l send to remote (the gateway's port for that leg) from now on. The
// socket is connected to remote, so the kernel also filters what l receives to that peer.
// Starting a started leg is an error.
func (g *Gen) Start(l *Leg, remote netip.AddrPort) error {
	if !remote.Addr().Is4() {
		return fmt.Errorf("rtpgen: start leg %d: %v is not IPv4", l.port, remote)
	}
	if !l.started.CompareAndSwap(false, true) {
		return fmt.Errorf("rtpgen: start leg %d: already started", l.port)
	}
	if err := unix.Connect(l.fd, &unix.SockaddrInet4{Port: int(remote.Port()), Addr: remote.Addr().As4()}); err != nil {
		return fmt.Errorf("rtpgen: connect leg %d to %v: %w", l.port, remote, err)
	}
	l.seq = uint16(rand.Uint32())
	l.ts = rand.Uint32()
	l.pkt[0] = 0x80 // V=2, no padding, extension or CSRC
	l.first = true
	binary.BigEndian.PutUint32(l.pkt[8:], rand.Uint32()|1) // a random, non-zero SSRC
	copy(l.pkt[headerSize:], g.payload)
	b := &g.buckets[l.slot]
	b.mu.Lock()
	b.legs = append(b.legs, l)
	b.mu.Unlock()
	g.started.Add(1)
	l.sending.Store(true)
	return nil
}

// StopSending stops every leg's stream and returns once no packet is being sent (the sender
// holds a slot's bucket while it sends that slot); the sockets stay open and keep being read.
func (g *Gen) StopSending() {
	for _, l := range g.legs {
		l.sending.Store(false)
	}
	for i := range g.buckets {
		g.buckets[i].mu.Lock()
		g.buckets[i].mu.Unlock() //nolint:staticcheck // an empty critical section: waits out the slot in flight
	}
}

// URingErr is why Options.URing fell back to write(2), or nil.
func (g *Gen) URingErr() error { return g.ringErr }

// Started is the number of legs started; cheap to poll, unlike Stats.
func (g *Gen) Started() int { return int(g.started.Load()) }

// Stats returns the counters so far. When some legs are not read (Options.ReadLegs), it reads
// /proc/net/udp for Discarded; it then costs a few milliseconds, so poll it sparingly.
func (g *Gen) Stats() Stats {
	st := Stats{
		Legs: len(g.legs), Started: int(g.started.Load()),
		Sent: g.sent.Load(), SendErrors: g.sendErrs.Load(), Received: g.received.Load(),
		SeqLost: g.lost.Load(), Reordered: g.reordered.Load(), Duplicates: g.dups.Load(),
		Malformed: g.bad.Load(), RTCP: g.rtcp.Load(), LateTicks: g.late.Load(),
		ReadLegs: g.readLegs, Heard: int(g.heard.Load()), SendPath: "write", Sender: "goroutine",
	}
	g.lag.fill(&st)
	if t := g.began.Load(); t != nil {
		st.AtMs = time.Since(*t).Milliseconds()
	}
	if s, ok := g.sender.Load().(string); ok {
		st.Sender = s
	}
	if tid := g.senderTID.Load(); tid != 0 {
		if ts, err := readThreadSched(int(tid)); err == nil {
			base := g.senderBase
			st.SenderCPUMs = float64(ts.CPU-base.CPU) / 1e6
			st.SenderWaitMs = float64(ts.Wait-base.Wait) / 1e6
			st.SenderPreempted = ts.Preempted - base.Preempted
		}
	}
	if g.ring != nil {
		st.SendPath = "io_uring"
	}
	if g.readLegs < len(g.legs) {
		st.Discarded, _ = g.discarded()
	}
	return st
}

// discarded sums the drop counters of the RTP sockets of the legs not read for the whole run:
// after their first packet, every packet the kernel delivers to them is dropped by their
// filter and counted there.
func (g *Gen) discarded() (uint64, error) {
	ports := make(map[int]bool, len(g.legs)-g.readLegs)
	for _, l := range g.legs {
		if !l.read {
			ports[l.port] = true
		}
	}
	d, _, err := procstat.UDPDrops(ports)
	return d, err
}

// Drops is the kernel's drop count summed over the generator's sockets (/proc/net/udp): real
// drops (a full receive buffer), so without the RTP sockets of the unread legs, whose
// deliberate discards are Stats.Discarded.
func (g *Gen) Drops() (uint64, error) {
	ports := g.Ports()
	for _, l := range g.legs {
		if !l.read {
			delete(ports, l.port)
		}
	}
	d, _, err := procstat.UDPDrops(ports)
	return d, err
}

// Err returns the error that stopped the receiver early, if any.
func (g *Gen) Err() error {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	return g.err
}

// Close stops the goroutines and closes every socket. Idempotent.
func (g *Gen) Close() error {
	g.closeOnce.Do(func() {
		g.closing.Store(true)
		g.wg.Wait()
		for _, l := range g.legs {
			unix.Close(l.fd)
			unix.Close(l.rtcpFD)
		}
		unix.Close(g.epfd)
		if g.ring != nil {
			g.ring.Close()
		}
	})
	return nil
}

func (g *Gen) sendLoop() {
	defer g.wg.Done()
	slot := g.opts.Interval / time.Duration(g.opts.Slots)
	var th senderThread
	if g.opts.Thread {
		addThreadP()
		defer dropThreadP()
		th.lock(g.opts.Priority)
		defer th.unlock()
		g.senderBase, _ = readThreadSched(th.tid)
		g.senderTID.Store(int64(th.tid)) // publishes senderBase to Stats
		g.sender.Store(th.policy)
	}
	start := *g.began.Load()
	if g.opts.Thread { // the schedule's start on CLOCK_MONOTONIC, the clock the sleeps name
		th.mono0 = monoNow() - int64(time.Since(start))
	}
	maxTicks := int64(g.opts.MaxDuration / slot)
	var legs []*Leg
	for tick := int64(0); tick < maxTicks && !g.closing.Load(); tick++ {
		due := time.Duration(tick) * slot
		if d := due - time.Since(start); d > 0 {
			if g.opts.Thread {
				sleepUntil(th.mono0 + int64(due))
			} else {
				time.Sleep(d)
			}
		}
		// Late is measured when the slot begins, after any sleep: a sleep that overran by
		// more than an interval makes its slot late too.
		lag := time.Since(start) - due
		g.lag.note(due, lag)
		if lag > g.opts.Interval {
			g.late.Add(1)
		}
		b := &g.buckets[tick%int64(g.opts.Slots)]
		b.mu.Lock()
		if g.ring != nil {
			g.sendRing(b.legs, &legs)
		} else {
			for _, l := range b.legs {
				if l.sending.Load() {
					l.send()
				}
			}
		}
		b.mu.Unlock()
		if g.opts.Thread && tick%8 == 7 {
			// A goroutine that holds its P for 10 ms is preempted by the runtime at whatever
			// point it has reached, a slot's sends included: yield now, in the slack after a
			// slot, so that it never comes to that.
			t0 := time.Now()
			th.yield()
			g.lag.yielded(time.Since(t0))
		}
	}
}

// sendRing sends the next packet of every sending leg of a slot through the ring, as many
// per io_uring_enter as the ring holds (sender goroutine only). batch is the sender's scratch.
func (g *Gen) sendRing(legs []*Leg, batch *[]*Leg) {
	*batch = (*batch)[:0]
	fixed := g.ring.Files() > 0
	flush := func() {
		n := uint32(len(*batch))
		if n == 0 {
			return
		}
		res := g.ringRes[:n]
		errno := g.ring.Submit(n, res)
		ok := 0
		for _, r := range res {
			if r >= 0 { // bytes sent, or -errno
				ok++
			}
		}
		g.sent.Add(uint64(ok))
		g.sendErrs.Add(uint64(len(res) - ok)) // failed, or not sent at all after an error
		if errno != 0 {
			g.errMu.Lock()
			g.err = fmt.Errorf("rtpgen: io_uring_enter: %w", errno)
			g.errMu.Unlock()
		}
		*batch = (*batch)[:0]
	}
	for _, l := range legs {
		if !l.sending.Load() {
			continue
		}
		l.prepare()
		i := uint32(len(*batch))
		if fixed {
			g.ring.PrepSendFixed(i, l.file, l.pkt)
		} else {
			g.ring.PrepSend(i, l.fd, l.pkt)
		}
		*batch = append(*batch, l)
		if i+1 == g.ring.Entries() {
			flush()
		}
		l.advance()
	}
	flush()
}

// send writes the leg's next packet (sender goroutine only).
func (l *Leg) send() {
	l.prepare()
	if _, err := unix.Write(l.fd, l.pkt); err != nil {
		l.g.sendErrs.Add(1)
	} else {
		l.g.sent.Add(1)
	}
	l.advance()
}

// prepare writes the header fields that change per packet; advance moves on to the next
// packet without touching the bytes, which may still be in the kernel's hands (io_uring).
func (l *Leg) prepare() {
	l.pkt[1] = 0 // payload type 0 (PCMU)
	if l.first {
		l.pkt[1] = 0x80 // marker on the first packet only (RFC 3551 §4.1)
	}
	binary.BigEndian.PutUint16(l.pkt[2:], l.seq)
	binary.BigEndian.PutUint32(l.pkt[4:], l.ts)
}

func (l *Leg) advance() {
	l.first = false
	l.seq++
	l.ts += uint32(l.g.opts.Payload)
}

func (g *Gen) recvLoop() {
	defer g.wg.Done()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 2048)
	deadline := time.Now().Add(g.opts.MaxDuration)
	for !g.closing.Load() && time.Now().Before(deadline) {
		n, err := unix.EpollWait(g.epfd, events, 50)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			g.errMu.Lock()
			g.err = fmt.Errorf("rtpgen: epoll_wait: %w", err)
			g.errMu.Unlock()
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd < 0 || fd >= len(g.byFD) || g.byFD[fd].leg == nil {
				continue
			}
			e := g.byFD[fd]
			for range 16 { // drain, bounded so one busy socket cannot starve the rest
				m, err := unix.Read(fd, buf)
				if err != nil {
					break // EAGAIN, or an ICMP error (ECONNREFUSED) reported once
				}
				if e.rtcp {
					g.rtcp.Add(1)
					continue
				}
				e.leg.receive(buf[:m])
			}
			if l := e.leg; !e.rtcp && !l.read && l.heard.Load() {
				if err := g.stopReading(l); err != nil {
					g.errMu.Lock()
					g.err = err
					g.errMu.Unlock()
					return
				}
			}
		}
	}
}

// stopReading turns leg l, heard and not in the sample, into a discarding socket: the filter
// first, so nothing queues after the last read, then out of epoll, then whatever queued in
// between is read (receiver goroutine only).
func (g *Gen) stopReading(l *Leg) error {
	// A classic BPF program that accepts no bytes of any packet: the kernel drops it and
	// counts it in the socket's drop counter.
	dropAll := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	prog := unix.SockFprog{Len: 1, Filter: &dropAll[0]}
	if err := unix.SetsockoptSockFprog(l.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("rtpgen: leg %d: attach filter: %w", l.port, err)
	}
	if err := unix.EpollCtl(g.epfd, unix.EPOLL_CTL_DEL, l.fd, nil); err != nil {
		return fmt.Errorf("rtpgen: leg %d: epoll_ctl del: %w", l.port, err)
	}
	g.byFD[l.fd] = fdEntry{}
	buf := make([]byte, 2048)
	for range 64 {
		m, err := unix.Read(l.fd, buf)
		if err != nil {
			break
		}
		l.receive(buf[:m])
	}
	return nil
}

// receive checks one datagram read on the leg's RTP socket (receiver goroutine only).
func (l *Leg) receive(b []byte) {
	g := l.g
	g.received.Add(1)
	if len(b) != headerSize+g.opts.Payload || b[0]>>6 != 2 || b[1]&0x7F != 0 || b[0]&0x3F != 0 {
		g.bad.Add(1)
		return
	}
	if !l.heard.Load() {
		l.heard.Store(true)
		g.heard.Add(1)
	}
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	if !l.haveSeq || ssrc != l.ssrc {
		l.haveSeq, l.ssrc, l.maxSeq = true, ssrc, seq
		return
	}
	switch d := seq - l.maxSeq; {
	case d == 0:
		g.dups.Add(1)
	case d < 0x8000:
		g.lost.Add(uint64(d - 1))
		l.maxSeq = seq
	default:
		g.reordered.Add(1)
	}
}

// ulaw encodes one linear sample as G.711 μ-law (ITU-T G.711 §A.2 segments).
func ulaw(s int16) byte {
	const bias, clip = 0x84, 32635
	v := int(s)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0F
	return ^byte(sign | exp<<4 | mant)
}
