//go:build linux

package rtpgen

import (
	"net/netip"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bench/relay"
	"github.com/switchboard-voice/switchboard/media"
)

// The tone is G.711 μ-law exactly as the gateway's codec encodes it.
func TestULaw_MatchesTheGatewaysEncoder(t *testing.T) {
	for s := -32768; s <= 32767; s += 7 {
		if got, want := ulaw(int16(s)), media.EncodeULaw(int16(s)); got != want {
			t.Fatalf("ulaw(%d) = %#x, want %#x", s, got, want)
		}
	}
}

// Legs get even RTP ports with the RTCP port bound next to them, and ports held by someone
// else are skipped.
func TestNew_EvenPortsSkippingBusyOnes(t *testing.T) {
	busy, err := New(Options{PortMin: 47000, PortMax: 47099}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	g, err := New(Options{PortMin: 47000, PortMax: 47099}, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	held := busy.Legs()[0].Port()
	for _, l := range g.Legs() {
		if l.Port()%2 != 0 || l.Port() == held {
			t.Errorf("leg port %d (held: %d)", l.Port(), held)
		}
	}
	if len(g.Ports()) != 6 {
		t.Errorf("ports %v", g.Ports())
	}
	if _, err := New(Options{PortMin: 47000, PortMax: 47003}, 3); err == nil {
		t.Error("3 legs fit in 4 ports")
	}
}

// Calls through the bare relay: every leg sends 20 ms packets and reads the other leg's
// stream back, with no sequence gaps and nothing malformed — with write(2) per packet, and with
// each slot's packets sent through io_uring (internal/uring), each leg's socket a registered
// file of the ring.
func TestGen_StreamsBothWaysThroughARelay(t *testing.T) {
	t.Run("write", func(t *testing.T) { streamsBothWays(t, false, false, 47100) })
	t.Run("io_uring", func(t *testing.T) { streamsBothWays(t, true, false, 49100) })
	t.Run("io_uring, the sender on its own thread", func(t *testing.T) { streamsBothWays(t, true, true, 50100) })
}

func streamsBothWays(t *testing.T, uring, thread bool, portMin int) {
	procs := runtime.GOMAXPROCS(0)
	const calls = 20
	r, err := relay.New(netip.MustParseAddr("127.0.0.1"), calls)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	g, err := New(Options{PortMin: portMin, PortMax: portMin + 899, URing: uring, Thread: thread}, 2*calls)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		g.Close()
		if got := runtime.GOMAXPROCS(0); got != procs {
			t.Errorf("GOMAXPROCS %d after Close, %d before Run", got, procs)
		}
	}()
	if uring && g.URingErr() != nil {
		t.Skipf("the kernel refuses io_uring here: %v", g.URingErr())
	}
	if want := map[bool]string{false: "write", true: "io_uring"}[uring]; g.Stats().SendPath != want {
		t.Fatalf("send path %q, want %q", g.Stats().SendPath, want)
	}
	if uring && g.ring.Files() != 2*calls {
		t.Errorf("%d sockets registered with the ring, want every leg's %d (sends by registered file)", g.ring.Files(), 2*calls)
	}
	g.Run()
	lo := netip.MustParseAddr("127.0.0.1")
	for i, p := range r.Ports() {
		if err := g.Start(g.Legs()[2*i], netip.AddrPortFrom(lo, uint16(p[0]))); err != nil {
			t.Fatal(err)
		}
		if err := g.Start(g.Legs()[2*i+1], netip.AddrPortFrom(lo, uint16(p[1]))); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Start(g.Legs()[0], netip.AddrPortFrom(lo, 9)); err == nil {
		t.Error("a leg started twice")
	}
	// 10 packets per leg, then stop and let the last ones arrive.
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().Sent < 2*calls*10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	g.StopSending()
	sent := g.Stats().Sent
	fw, unlatched := r.Counts()
	for fw+unlatched < sent && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		fw, unlatched = r.Counts()
	}
	for g.Stats().Received < fw && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := g.Stats()
	if st.Sent < 2*calls*10 || st.SendErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Each leg's first packet can arrive before the other leg latched: at most one per leg lost.
	if st.Received != fw || unlatched > 2*calls || st.Received+unlatched != st.Sent {
		t.Errorf("sent %d, relay forwarded %d dropped %d, received %d", st.Sent, fw, unlatched, st.Received)
	}
	if st.SeqLost != 0 || st.Malformed != 0 || st.Duplicates != 0 || st.Reordered != 0 || st.Started != 2*calls {
		t.Errorf("stats %+v", st)
	}
	if d, err := g.Drops(); err != nil || d != 0 {
		t.Errorf("kernel drops %d, %v", d, err)
	}
	if err := g.Err(); err != nil {
		t.Error(err)
	}
	// Every slot begun is in the lag histogram; with a thread of its own the sender says so
	// and its thread's scheduling is read.
	var slots uint64
	for _, n := range st.SlotLagHist {
		slots += n
	}
	if len(st.SlotLagHist) != len(SlotLagBoundsUs)+1 || slots < 10*uint64(DefaultSlots) {
		t.Errorf("slot lag histogram %v: %d slots for at least 10 packets a leg", st.SlotLagHist, slots)
	}
	if want := map[bool]string{false: "goroutine", true: "thread"}[thread]; st.Sender != want {
		t.Errorf("sender %q, want %q", st.Sender, want)
	}
	if thread && st.SenderCPUMs <= 0 {
		t.Errorf("the sender's thread: CPU %.3f ms, waited %.3f ms", st.SenderCPUMs, st.SenderWaitMs)
	}
}

// The slot lags: each slot in its bucket, the largest kept, and a stall counted once for a
// stretch of slots more than 5 ms late, with its largest lag and its length.
func TestLagStats_BucketsAndStalls(t *testing.T) {
	var s lagStats
	ms := time.Millisecond
	for i, lag := range []time.Duration{-ms, 30 * time.Microsecond, 700 * time.Microsecond, 6 * ms, 25 * ms, 24 * ms, 3 * ms, 200 * ms, ms} {
		s.note(time.Duration(i)*ms, lag)
	}
	var st Stats
	s.fill(&st)
	// ≤ 50 µs ×2 (early counts as on time), ≤ 1 ms ×2, ≤ 5 ms, ≤ 10 ms, ≤ 50 ms ×2, > 100 ms.
	want := []uint64{2, 0, 0, 0, 2, 0, 1, 1, 0, 2, 0, 1}
	if !reflect.DeepEqual(st.SlotLagHist, want) {
		t.Errorf("histogram %v, want %v", st.SlotLagHist, want)
	}
	if st.SlotLagMaxUs != 200_000 || st.Stalls != 2 {
		t.Errorf("max %d µs, %d stalls; want 200000, 2", st.SlotLagMaxUs, st.Stalls)
	}
	wantStalls := []Stall{{AtMs: 3, MaxLagUs: 25_000, Slots: 3}, {AtMs: 7, MaxLagUs: 200_000, Slots: 1}}
	if !reflect.DeepEqual(st.RecentStalls, wantStalls) {
		t.Errorf("stalls %+v, want %+v", st.RecentStalls, wantStalls)
	}
}

// With ReadLegs, the sample is read for the whole run and every other leg only until its
// first packet: every leg is heard, the sample's sequence numbers are checked, and the
// packets that reach the unread legs are counted by the kernel as Discarded — so received +
// discarded is exactly what the relay forwarded, and the unread sockets stay open (the
// relay's writes to them succeed).
func TestGen_SampledReadHearsEveryLegAndCountsTheRest(t *testing.T) {
	const calls, read = 20, 10 // both legs of 5 calls read
	r, err := relay.New(netip.MustParseAddr("127.0.0.1"), calls)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	g, err := New(Options{PortMin: 48100, PortMax: 48999, ReadLegs: read}, 2*calls)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	legs := g.Legs()
	sampled := 0
	for i := range calls { // the benchmark's layout: callers first, then their callees
		if legs[i].Read() != legs[calls+i].Read() {
			t.Errorf("call %d: caller read %v, callee read %v", i, legs[i].Read(), legs[calls+i].Read())
		}
		if legs[i].Read() {
			sampled += 2
		}
	}
	if sampled != read {
		t.Fatalf("%d legs in the sample, want %d", sampled, read)
	}
	g.Run()
	lo := netip.MustParseAddr("127.0.0.1")
	for i, p := range r.Ports() {
		if err := g.Start(legs[i], netip.AddrPortFrom(lo, uint16(p[0]))); err != nil {
			t.Fatal(err)
		}
		if err := g.Start(legs[calls+i], netip.AddrPortFrom(lo, uint16(p[1]))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for (g.Stats().Sent < 2*calls*25 || g.Stats().Heard < 2*calls) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	g.StopSending()
	sent := g.Stats().Sent
	fw, unlatched := r.Counts()
	for fw+unlatched < sent && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		fw, unlatched = r.Counts()
	}
	st := g.Stats()
	for st.Received+st.Discarded < fw && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		st = g.Stats()
	}
	if st.Heard != 2*calls || st.ReadLegs != read || st.Started != 2*calls {
		t.Errorf("heard %d, read legs %d, started %d; want %d, %d, %d", st.Heard, st.ReadLegs, st.Started, 2*calls, read, 2*calls)
	}
	for _, l := range legs {
		if !l.Heard() {
			t.Errorf("leg %d not heard", l.Port())
		}
	}
	if st.Received+st.Discarded != fw || fw+unlatched != st.Sent || st.SendErrors != 0 {
		t.Errorf("sent %d, relay forwarded %d dropped %d, received %d + discarded %d", st.Sent, fw, unlatched, st.Received, st.Discarded)
	}
	// The unread legs read one packet (or a few that queued before the filter), the sampled
	// ones all of theirs: most of the packets are discarded, and the sample still counts.
	if st.Discarded < st.Received || st.Received < read*20 {
		t.Errorf("received %d, discarded %d: the sample was not read, or the rest was", st.Received, st.Discarded)
	}
	if st.SeqLost != 0 || st.Malformed != 0 || st.Duplicates != 0 || st.Reordered != 0 {
		t.Errorf("stats %+v", st)
	}
	if d, err := g.Drops(); err != nil || d != 0 {
		t.Errorf("kernel drops %d, %v", d, err)
	}
	if err := g.Err(); err != nil {
		t.Error(err)
	}
}
