//go:build linux

package media

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendingEndpoint is an endpoint sending PCMU to a fresh peer, with an override source (as
// Play has) whose id write takes, and a tap counting what it sent.
func sendingEndpoint(t *testing.T, alloc *PortAllocator) (e *Endpoint, p *peer, id uint64, sent *atomic.Int64) {
	t.Helper()
	e = newTestEndpoint(t, EndpointOptions{Allocator: alloc, MediaTimeout: -1})
	p = newPeer(t)
	e.SetCodec(0, PCMU)
	e.SetRemote(p.addr())
	sent = new(atomic.Int64)
	e.AddTap(func(tp TapPacket) {
		if tp.Flow == Sent {
			sent.Add(1)
		}
	})
	return e, p, e.out.push(), sent
}

// frame is a 160-byte PCMU payload whose first byte says which packet it is.
func frame(i int) []byte {
	b := make([]byte, FrameSize)
	b[0] = byte(i)
	return b
}

// Rule: a batch of forwarded packets reaches every destination, each in the order written: a
// batch holds one sender's packets, and a write for another sender sends what was queued
// before it, so interleaved writes for two legs come out per leg in order, none lost or
// duplicated, each counted and tapped once.
func TestSendBatchReachesEveryDestinationInOrder(t *testing.T) {
	alloc := testAllocator(t, 4)
	b, pb, idB, tapB := sendingEndpoint(t, alloc)
	c, pc, idC, tapC := sendingEndpoint(t, alloc)
	tx := newTxBatch()
	var calls int
	tx.sendmmsg = func(fd int, msgs []unix.Mmsghdr) (int, syscall.Errno) {
		calls++
		return sendmmsg(fd, msgs)
	}
	// B B B C C B B B B B B B B B (the last eight of B fill the batch: it goes when full)
	order := []*Endpoint{b, b, b, c, c, b, b, b, b, b, b, b, b, b}
	want := map[*Endpoint][]int{}
	now := time.Now()
	for i, e := range order {
		id := idB
		if e == c {
			id = idC
		}
		e.out.write(id, rtpHeader{seq: uint16(100 + i), timestamp: uint32(i * FrameSize)}, frame(i), kindAudio, CodecNone, now, tx)
		want[e] = append(want[e], i)
	}
	tx.flush()
	if calls != 4 { // BBB, CC, BBBBBBBB (full), B
		t.Errorf("%d sendmmsg calls for 14 packets in 4 runs, want 4", calls)
	}
	for _, leg := range []struct {
		name string
		e    *Endpoint
		p    *peer
		tap  *atomic.Int64
	}{{"B", b, pb, tapB}, {"C", c, pc, tapC}} {
		var firstSeq uint16
		for k, i := range want[leg.e] {
			pkt := leg.p.recv()
			if int(pkt.Payload[0]) != i {
				t.Fatalf("leg %s: packet %d carries frame %d, want %d", leg.name, k, pkt.Payload[0], i)
			}
			if k == 0 {
				firstSeq = pkt.SequenceNumber
			} else if d := int(pkt.SequenceNumber - firstSeq); d != i-want[leg.e][0] {
				// The sequence keeps the source's own gaps (the other leg's packets).
				t.Errorf("leg %s: frame %d went out %d after the first, want %d", leg.name, i, d, i-want[leg.e][0])
			}
		}
		if got := leg.e.Stats().PacketsSent; got != uint64(len(want[leg.e])) {
			t.Errorf("leg %s: %d packets counted sent, want %d", leg.name, got, len(want[leg.e]))
		}
		if got := leg.tap.Load(); got != int64(len(want[leg.e])) {
			t.Errorf("leg %s: %d packets tapped as sent, want %d", leg.name, got, len(want[leg.e]))
		}
	}
}

// Rule: a sendmmsg(2) that sends only part of a batch is completed: the call stops at the
// first message the kernel did not take, flush drops that one (as a sendto(2) returning
// EAGAIN drops its packet) and sends the rest, in order; only what went is counted and tapped.
func TestSendBatchCompletesAPartialSendmmsg(t *testing.T) {
	alloc := testAllocator(t, 2)
	e, p, id, tapped := sendingEndpoint(t, alloc)
	tx := newTxBatch()
	var calls int
	tx.sendmmsg = func(fd int, msgs []unix.Mmsghdr) (int, syscall.Errno) {
		calls++
		switch calls {
		case 1:
			return sendmmsg(fd, msgs[:2]) // the kernel took two of five
		case 2:
			return 0, unix.EAGAIN // and not the third
		}
		return sendmmsg(fd, msgs)
	}
	now := time.Now()
	for i := range 5 {
		e.out.write(id, rtpHeader{seq: uint16(i), timestamp: uint32(i * FrameSize)}, frame(i), kindAudio, CodecNone, now, tx)
	}
	tx.flush()
	if calls != 3 {
		t.Errorf("%d sendmmsg calls, want 3 (two sent, one refused, the last two)", calls)
	}
	for _, want := range []int{0, 1, 3, 4} {
		if pkt := p.recv(); int(pkt.Payload[0]) != want {
			t.Fatalf("peer got frame %d, want %d", pkt.Payload[0], want)
		}
	}
	if got := e.Stats().PacketsSent; got != 4 {
		t.Errorf("%d packets counted sent, want 4", got)
	}
	if got := tapped.Load(); got != 4 {
		t.Errorf("%d packets tapped as sent, want 4", got)
	}
}

// Rule: packets queued for a leg that is closed before the batch is flushed are not sent: the
// leg's descriptor may be closed (and its number reused) by then.
func TestSendBatchOfAClosedLegSendsNothing(t *testing.T) {
	alloc := testAllocator(t, 2)
	e, _, id, _ := sendingEndpoint(t, alloc)
	tx := newTxBatch()
	var calls int
	tx.sendmmsg = func(fd int, msgs []unix.Mmsghdr) (int, syscall.Errno) {
		calls++
		return sendmmsg(fd, msgs)
	}
	for i := range 3 {
		e.out.write(id, rtpHeader{seq: uint16(i), timestamp: uint32(i * FrameSize)}, frame(i), kindAudio, CodecNone, time.Now(), tx)
	}
	e.Close()
	tx.flush()
	if calls != 0 {
		t.Errorf("flush called sendmmsg %d times on a closed leg's descriptor", calls)
	}
	if tx.n != 0 || tx.s != nil {
		t.Errorf("flush left %d packets queued", tx.n)
	}
}

// Rule: the poll loop forwards the datagrams of one read in one sendmmsg(2): a backlog of 100
// packets on a bridged leg's socket is read up to 8 at a time and each read's packets go out
// together — every packet through sendmmsg, calls carrying several, far fewer calls than
// packets (13 when the whole backlog is queued before the first read; the bound is looser,
// since a loaded kernel may still be delivering it) — and every packet reaches the far peer,
// in order.
func TestPollLoopForwardsAReadInOneSendmmsg(t *testing.T) {
	alloc := testAllocator(t, 4)
	b := newTestEndpoint(t, EndpointOptions{Allocator: alloc, MediaTimeout: -1})
	far := newPeer(t)
	b.SetCodec(0, PCMU)
	b.SetRemote(far.addr())
	id := b.out.push()
	pp, err := alloc.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Release(pp)
	near := newPeer(t)
	const backlog = 100
	for i := range backlog {
		pkt := audio(0, uint16(i), uint32(i*FrameSize), 7, byte(i))
		near.send(netip.AddrPortFrom(loopback, uint16(pp.Port)), pkt)
	}
	var calls, handled, viaBatch, widest atomic.Int64
	wrapped := false
	w, err := alloc.rx.watch(alloc.slot(pp.Port), pp.RTP, func(p []byte, _ netip.AddrPort, at time.Time, tx *txBatch) {
		if !wrapped { // on the loop's goroutine, like every use of tx
			wrapped = true
			tx.sendmmsg = func(fd int, msgs []unix.Mmsghdr) (int, syscall.Errno) {
				calls.Add(1)
				if int64(len(msgs)) > widest.Load() {
					widest.Store(int64(len(msgs)))
				}
				n, errno := sendmmsg(fd, msgs)
				viaBatch.Add(int64(n))
				return n, errno
			}
		}
		h := rtpHeader{seq: binary.BigEndian.Uint16(p[2:]), timestamp: binary.BigEndian.Uint32(p[4:]), ssrc: 7}
		b.out.write(id, h, p[rtpHeaderSize:], kindAudio, CodecNone, at, tx)
		handled.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.rx.unwatch(w)
	for i := range backlog {
		if pkt := far.recv(); int(pkt.Payload[0]) != i {
			t.Fatalf("far peer got frame %d as packet %d", pkt.Payload[0], i)
		}
	}
	if n := viaBatch.Load(); n != backlog {
		t.Errorf("%d of %d packets went out through sendmmsg", n, backlog)
	}
	if n, wide := calls.Load(), widest.Load(); wide < 2 || n > backlog/2 {
		t.Errorf("%d sendmmsg calls for %d packets, the widest of %d: the reads' packets were not sent together", n, backlog, wide)
	}
}

// Rule: forwarding through the loop's send batch allocates nothing either (receive, stats,
// tap, rewrite into the batch, sendmmsg).
func TestBatchedForwardDoesNotAllocate(t *testing.T) {
	a, pkt, src := forwardingPair(t)
	tx := newTxBatch()
	seq := uint16(1)
	round := func() {
		for range recvBatch {
			seq++
			binary.BigEndian.PutUint16(pkt[2:], seq)
			binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
			a.handleRTP(pkt, src, time.Now(), tx)
		}
		tx.flush()
	}
	round() // the first packet latches (one allocation, once per call)
	if n := testing.AllocsPerRun(200, round); n != 0 {
		t.Errorf("%v allocations per batch of %d forwarded packets, want 0", n, recvBatch)
	}
	if got := a.bridge.Load().peer.Stats().PacketsSent; got < 200*recvBatch {
		t.Errorf("only %d packets went out", got)
	}
}

// BenchmarkForwardBatch measures packets forwarded as a loaded poll loop does: recvBatch
// packets of one leg handled, then one sendmmsg(2) for all of them (ns/op is per packet).
func BenchmarkForwardBatch(b *testing.B) {
	a, pkt, src := forwardingPair(b)
	tx := newTxBatch()
	b.ReportAllocs()
	seq := uint16(0)
	i := 0
	for b.Loop() {
		seq++
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
		a.handleRTP(pkt, src, time.Now(), tx)
		if i++; i == recvBatch {
			tx.flush()
			i = 0
		}
	}
	tx.flush()
}

// BenchmarkForwardBatchOfOne is BenchmarkForwardBatch as at 50 packets/s per socket on a gateway
// that keeps up: every read carries one packet, so every packet costs its own sendmmsg(2).
func BenchmarkForwardBatchOfOne(b *testing.B) {
	a, pkt, src := forwardingPair(b)
	tx := newTxBatch()
	b.ReportAllocs()
	seq := uint16(0)
	for b.Loop() {
		seq++
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
		a.handleRTP(pkt, src, time.Now(), tx)
		tx.flush()
	}
}
