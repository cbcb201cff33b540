package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/bench/procstat"
	"github.com/switchboard-voice/switchboard/bench/rtpgen"
)

// concStep is one concurrency step: Calls calls held with RTP both ways and recording on.
type concStep struct {
	Calls       int     `json:"calls"`
	LegsStarted int     `json:"legs_started"` // media legs the generator started (2 per call)
	SippFailed  int     `json:"sipp_failed"`
	RampS       float64 `json:"ramp_s"`
	WindowS     float64 `json:"window_s"`
	// In the window: the gateway's CPU in cores, packets that reached the phones from it per
	// second (read on the generator's sample, discarded by the kernel on the other legs:
	// generator.received + generator.discarded), and gateway CPU per such packet.
	GatewayCPU     float64 `json:"gateway_cpu"`
	ForwardedPPS   float64 `json:"forwarded_pps"`
	GatewayTxPPS   float64 `json:"gateway_tx_pps"` // switchboard_rtp_packets_total{direction="tx"}
	CPUUsPerPacket float64 `json:"cpu_us_per_packet"`
	// Over the whole step, from the gateway's counters (switchboard_rtp_packets_total rx,
	// switchboard_rtp_packets_lost_total, counted by RFC 3550 per leg when the call ends).
	GatewayRx   float64 `json:"gateway_rx"`
	GatewayLost float64 `json:"gateway_lost"`
	LossPct     float64 `json:"loss_pct"`
	// The kernel's drops on the gateway's RTP sockets (/proc/net/udp, at the window's end).
	GatewaySocketDrops uint64 `json:"gateway_socket_drops"`
	// The generator's own view over the step.
	Gen           rtpgen.Stats `json:"generator"`
	GenSocketDrop uint64       `json:"generator_socket_drops"`
	GenLossPct    float64      `json:"generator_end_to_end_loss_pct"` // 1 − (received + discarded)/sent, every leg
	// Memory at the window's end, and per call above the idle gateway before the first step.
	RSSKB        int64   `json:"rss_kb"`
	RSSKBPerCall float64 `json:"rss_kb_per_call"`
	HeapMBInuse  float64 `json:"heap_inuse_mb"`
	// What the RSS per call is made of, per call above the idle gateway: the Go heap live at
	// the last GC (from go_memstats_next_gc_bytes, the GC's goal: about twice it at GOGC=100;
	// the heap may grow to the goal before the next GC, and RSS keeps pages the GC freed until
	// the scavenger returns them) and the goroutine stacks (go_memstats_stack_inuse_bytes).
	LiveHeapKBPerCall float64 `json:"live_heap_kb_per_call"`
	StackKBPerCall    float64 `json:"stack_kb_per_call"`
	// At the window's end, above the idle gateway (baseline) and ÷ N: the gateway's goroutines
	// (go_goroutines) and open file descriptors (/proc/<pid>/fd).
	Goroutines        float64 `json:"goroutines"`
	GoroutinesPerCall float64 `json:"goroutines_per_call"`
	FDs               int     `json:"fds"`
	FDsPerCall        float64 `json:"fds_per_call"`
	// Whether the gateway recorded the calls (false only in the recording-off run).
	Recording bool `json:"recording"`
	// The load side in the window: sbbench's own CPU (the RTP generator, the SIPp log tails and
	// the scrapes) and how busy the load generators' cores were (SIPp included), as fractions
	// of one core. A load core near 100% means the generator, not the gateway, set the limit.
	Load loadUse `json:"load"`
	// The generator in the window: packets it sent per second (100·N when it keeps up) and its
	// sender's slots that began more than a packet interval late. GenLimited: it did not keep
	// up (genLimited), so the step measured the generator, not the gateway: it fails.
	GenSentPPS      float64 `json:"generator_sent_pps"`
	GenLateInWindow uint64  `json:"generator_late_ticks_in_window"`
	GenLimited      bool    `json:"generator_limited"`
	genWindow
	Pass bool   `json:"pass"`
	Why  string `json:"why,omitempty"`
}

// Limits of an honest generator in a window (genLimited): at least this share of the packets
// due, and at most this share of its 1 ms slots more than a packet interval late.
const (
	genMinSentShare = 0.98
	genMaxLateShare = 0.01
)

// genLimited reports whether the RTP generator failed to drive calls calls in a window of
// win, having sent sent packets and started late of its slots late, and why. Due: 2 legs ×
// one packet per interval per call; slots: one per slot length (rtpgen's defaults). A
// generator that falls behind catches up in bursts, so its total alone can look right:
// the late slots catch that.
func genLimited(calls int, win time.Duration, sent, late uint64) (bool, string) {
	if win <= 0 || calls <= 0 {
		return false, ""
	}
	due := float64(2*calls) * float64(win) / float64(rtpgen.DefaultInterval)
	slots := float64(win) / float64(rtpgen.DefaultInterval/rtpgen.DefaultSlots)
	switch {
	case float64(sent) < genMinSentShare*due:
		return true, fmt.Sprintf("the RTP generator was the limit: it sent %.1f%% of the packets due in the window", 100*float64(sent)/due)
	case float64(late) > genMaxLateShare*slots:
		return true, fmt.Sprintf("the RTP generator was the limit: %d of its %.0f slots in the window began late", late, slots)
	}
	return false, ""
}

// genWindow is the generator's own schedule in a measurement window (rtpgen.Stats, differenced):
// how late its slots began (buckets bounded by rtpgen.SlotLagBoundsUs), its stalls (slots more
// than 5 ms late in a row), and, when the sender has a thread of its own, that thread's CPU,
// the time it waited runnable for the core (other threads or processes had it) and how often
// it was preempted.
type genWindow struct {
	LagHist         []uint64 `json:"generator_slot_lag_hist_in_window"`
	Stalls          uint64   `json:"generator_stalls_in_window"`
	SenderCPUMs     float64  `json:"generator_sender_cpu_ms_in_window"`
	SenderWaitMs    float64  `json:"generator_sender_wait_ms_in_window"`
	SenderPreempted uint64   `json:"generator_sender_preempted_in_window"`
	// The window on the clock of generator.recent_stalls (ms since the generator ran).
	FromMs int64 `json:"generator_window_from_ms"`
	ToMs   int64 `json:"generator_window_to_ms"`
}

func genWin(a, b rtpgen.Stats) genWindow {
	w := genWindow{Stalls: b.Stalls - a.Stalls, SenderCPUMs: b.SenderCPUMs - a.SenderCPUMs,
		SenderWaitMs: b.SenderWaitMs - a.SenderWaitMs, SenderPreempted: b.SenderPreempted - a.SenderPreempted,
		FromMs: a.AtMs, ToMs: b.AtMs}
	w.LagHist = make([]uint64, len(b.SlotLagHist))
	for i := range b.SlotLagHist {
		w.LagHist[i] = b.SlotLagHist[i]
		if i < len(a.SlotLagHist) {
			w.LagHist[i] -= a.SlotLagHist[i]
		}
	}
	return w
}

// lagOver is how many of the window's slots began more than us late (us one of
// rtpgen.SlotLagBoundsUs), and of how many.
func (w genWindow) lagOver(us int64) (over, all uint64) {
	for i, n := range w.LagHist {
		all += n
		if i > 0 && i-1 < len(rtpgen.SlotLagBoundsUs) && rtpgen.SlotLagBoundsUs[i-1] >= us {
			over += n
		}
	}
	return over, all
}

// lagShare is "n of all" slots of the window more than us late, for the tables ("-" without
// a histogram: a step measured before session 12).
func (w genWindow) lagShare(us int64) string {
	over, all := w.lagOver(us)
	if all == 0 {
		return "-"
	}
	return fmt.Sprintf("%d of %d", over, all)
}

// idleBase is the idle gateway the per-call figures are taken above: read once on a fresh
// gateway before its first step.
type idleBase struct {
	RSSKB      int64   `json:"rss_kb"`
	Goroutines float64 `json:"goroutines"`
	FDs        int     `json:"fds"`
	NextGCB    float64 `json:"next_gc_bytes"`
	StackB     float64 `json:"stack_inuse_bytes"`
}

// floorStep is the bare relay carrying the same load.
type floorStep struct {
	Calls           int          `json:"calls"`
	WindowS         float64      `json:"window_s"`
	RelayCPU        float64      `json:"relay_cpu"`
	ForwardedPPS    float64      `json:"forwarded_pps"`
	CPUUsPerPacket  float64      `json:"cpu_us_per_packet"`
	RelayForwarded  uint64       `json:"relay_forwarded"`
	Gen             rtpgen.Stats `json:"generator"`
	GenSocketDrops  uint64       `json:"generator_socket_drops"`
	GenSentPPS      float64      `json:"generator_sent_pps"`
	GenLateInWindow uint64       `json:"generator_late_ticks_in_window"`
	genWindow
	Load loadUse `json:"load"`
}

const (
	lossLimitPct = 0.1
	cpuLimit     = 0.8
)

// runConcurrency steps the number of held calls up. A step fails on a failed call, loss ≥
// 0.1 % or gateway CPU ≥ 80 % of its core; the steps go on past a failure up to -conc-table-to
// calls (the per-step table shows where and how it breaks down), and stop at the first failure
// above that, when the gateway exits, or when the budget runs out (leaving -reserve for the
// steps after this one).
func (b *bench) runConcurrency(ctx context.Context) error {
	base, err := b.idleBaseline(ctx)
	if err != nil {
		return err
	}
	b.res.RSSBaseKB = base.RSSKB
	b.res.IdleBase = &base
	failed := false
	for i, n := range b.concSteps {
		if failed && n > b.concTableTo {
			break
		}
		ramp := time.Duration(n/b.concRate+1) * time.Second
		if !b.fits(2*ramp + b.settle + b.concMeasure + 2*time.Minute + b.reserve) {
			b.res.note("concurrency steps from %d calls on skipped: the time budget", n)
			break
		}
		b.logf("concurrency step %d calls (set up at %d/s)", n, b.concRate)
		st, err := b.concStep(ctx, 50+i, n, base)
		if err != nil {
			if b.gatewayAlive() != nil || ctx.Err() != nil {
				return err
			}
			st.Pass, st.Why = false, err.Error() // the step could not be measured: it fails
			if ierr := b.idle(ctx, 120*time.Second); ierr != nil {
				b.logf("  %v", ierr)
			}
		}
		b.res.Conc = append(b.res.Conc, st)
		b.logStep(st)
		if st.Pass && failed {
			b.res.note("the %d-call step passed after a smaller step failed: concurrent_calls_max is the highest passing step, read the table", n)
		}
		failed = failed || !st.Pass
	}
	return nil
}

func (b *bench) logStep(st concStep) {
	over1, _ := st.lagOver(1000)
	b.logf("  legs %d/%d, gateway CPU %.0f%%, %.0f packets/s forwarded, %.2f µs/packet, loss %.4f%% (socket drops %d), generator loss %.4f%%, RSS %.1f KiB/call (Go heap live at the last GC %.1f, stacks %.1f), %.2f goroutines/call, %.2f fds/call, generator CPU %.0f%% (load core %.0f%%; %s sender: slots late %d, more than 1 ms late %d, stalls %d, waited for its core %.0f ms): %s",
		st.LegsStarted, 2*st.Calls, 100*st.GatewayCPU, st.ForwardedPPS, st.CPUUsPerPacket, st.LossPct, st.GatewaySocketDrops, st.GenLossPct, st.RSSKBPerCall,
		st.LiveHeapKBPerCall, st.StackKBPerCall, st.GoroutinesPerCall, st.FDsPerCall, 100*st.Load.GeneratorCPU, 100*st.Load.CoreBusy,
		st.Gen.Sender, st.GenLateInWindow, over1, st.Stalls, st.SenderWaitMs, passText(st.Pass, st.Why))
}

// idleBaseline waits for the gateway to be idle and reads its memory, goroutines and
// descriptors.
func (b *bench) idleBaseline(ctx context.Context) (idleBase, error) {
	var base idleBase
	if err := b.idle(ctx, 180*time.Second); err != nil {
		b.res.note("before the concurrency steps: %v", err)
	}
	var err error
	if base.RSSKB, err = procstat.RSSKB(b.gw.pid); err != nil {
		return base, err
	}
	if base.FDs, err = procstat.FDCount(b.gw.pid); err != nil {
		return base, err
	}
	m, err := b.metrics(ctx)
	if err != nil {
		return base, err
	}
	base.Goroutines = m.Sum("go_goroutines", nil)
	base.NextGCB = m.Sum("go_memstats_next_gc_bytes", nil)
	base.StackB = m.Sum("go_memstats_stack_inuse_bytes", nil)
	return base, nil
}

// concTimes is how long setting up n calls takes at the step's rate (ramp) and how long each
// carrier call then lasts (hold). Generous: a slow scrape must not push the window past the
// first hang-up.
func (b *bench) concTimes(n int) (ramp, hold time.Duration) {
	ramp = time.Duration(float64(n)/float64(b.concRate)*1000) * time.Millisecond
	return ramp, ramp + 15*time.Second + b.settle + b.concMeasure + 30*time.Second
}

// concInputs starts the RTP generator with a carrier and a desk leg for each of n calls, writes
// SIPp's inject files (the carrier's caller number from tag's prefix and its media port; the
// desk's media port) and the carrier's scenario with its hold time, all under dir. The caller
// closes the generator.
func (b *bench) concInputs(dir string, n, tag int) (*rtpgen.Gen, string, error) {
	gen, err := rtpgen.New(b.genOptions(), 2*n)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*rtpgen.Gen, string, error) {
		gen.Close()
		return nil, "", err
	}
	gen.Run()
	legs := gen.Legs()
	prefix := callerPrefix(tag)
	if err := writeLines(filepath.Join(dir, "carrier.csv"), n, func(w io.Writer, i int) {
		fmt.Fprintf(w, "%s%05d;%d\n", prefix, i, legs[i].Port())
	}); err != nil {
		return fail(err)
	}
	if err := writeLines(filepath.Join(dir, "desk.csv"), n, func(w io.Writer, i int) {
		fmt.Fprintf(w, "%d\n", legs[n+i].Port())
	}); err != nil {
		return fail(err)
	}
	_, hold := b.concTimes(n)
	scen, err := os.ReadFile(filepath.Join(b.root, "bench", "scenarios", "conc_carrier.xml"))
	if err != nil {
		return fail(err)
	}
	carrierXML := filepath.Join(dir, "conc_carrier.xml")
	if err := os.WriteFile(carrierXML, []byte(strings.ReplaceAll(string(scen), "HOLD_MS", strconv.FormatInt(hold.Milliseconds(), 10))), 0o644); err != nil {
		return fail(err)
	}
	return gen, carrierXML, nil
}

func (b *bench) concStep(ctx context.Context, tag, n int, base idleBase) (concStep, error) {
	st := concStep{Calls: n, Recording: !b.noRecording}
	// A directory of its own per step: the log tails below read SIPp's logs from their start,
	// so an earlier step's lines must not be there (they would send media to old ports).
	dir := filepath.Join(b.work, fmt.Sprintf("conc-%d", n))
	if b.noRecording {
		dir = filepath.Join(b.work, fmt.Sprintf("conc-norec-%d", n))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, err
	}
	gen, carrierXML, err := b.concInputs(dir, n, tag)
	if err != nil {
		return st, err
	}
	defer gen.Close()
	ramp, hold := b.concTimes(n)

	mBefore, err := b.metrics(ctx)
	if err != nil {
		return st, err
	}
	desk, err := b.startSipp("desk", dir, "-sf", filepath.Join(b.root, "bench", "scenarios", "conc_desk.xml"),
		"-inf", filepath.Join(dir, "desk.csv"), "-p", strconv.Itoa(b.gw.cfg.DeskPort),
		"-trace_logs", "-log_file", filepath.Join(dir, "desk.log"), "-trace_stat", "-stf", "desk-stat.csv", "-trace_err")
	if err != nil {
		return st, err
	}
	defer desk.stop()
	if err := waitBound(ctx, b.gw.cfg.DeskPort); err != nil {
		return st, err
	}

	// Start each leg's media as soon as SIPp logs the gateway's port for it.
	var mu sync.Mutex
	gwPorts := map[int]bool{}
	var startErr error
	onLine := func(line string) {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "C" && f[0] != "D") {
			return
		}
		ours, err1 := strconv.Atoi(f[1])
		theirs, err2 := strconv.Atoi(f[2])
		leg := gen.Leg(ours)
		mu.Lock()
		defer mu.Unlock()
		if err1 != nil || err2 != nil || leg == nil || theirs <= 0 || theirs > 65535 {
			startErr = fmt.Errorf("bad sipp log line %q", line)
			return
		}
		gwPorts[theirs], gwPorts[theirs+1] = true, true
		if err := gen.Start(leg, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(theirs))); err != nil {
			startErr = err
		}
	}
	tailCtx, stopTail := context.WithCancel(ctx)
	var tails sync.WaitGroup
	defer func() { stopTail(); tails.Wait() }()
	for _, name := range []string{"desk.log", "carrier.log"} {
		tails.Add(1)
		go func() { defer tails.Done(); logTail(tailCtx, filepath.Join(dir, name), onLine) }()
	}
	port, err := freePort()
	if err != nil {
		return st, err
	}
	began := time.Now()
	carrier, err := b.startSipp("carrier", dir, "-sf", carrierXML, "-inf", filepath.Join(dir, "carrier.csv"),
		"-p", strconv.Itoa(port), "-r", strconv.Itoa(b.concRate), "-rp", "1000", "-m", strconv.Itoa(n), "-l", strconv.Itoa(n),
		"-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", b.gw.cfg.SIPPort),
		"-trace_logs", "-log_file", filepath.Join(dir, "carrier.log"), "-trace_stat", "-stf", "carrier-stat.csv", "-trace_err",
		"-recv_timeout", "10000", "-timeout", fmt.Sprintf("%ds", int((hold+ramp).Seconds())+60), "-timeout_error")
	if err != nil {
		return st, err
	}
	defer carrier.stop()
	waitFor(ctx, ramp+10*time.Second, func() bool {
		select {
		case <-carrier.done:
			return true
		default:
		}
		return gen.Started() == 2*n
	})
	st.RampS = time.Since(began).Seconds()
	st.LegsStarted = gen.Started()

	// The window: every call up, media flowing, no hang-up yet (the first BYE comes at began+hold).
	sleepCtx(ctx, b.settle)
	measure := min(b.concMeasure, time.Until(began.Add(hold-35*time.Second)))
	if b.profile {
		go b.saveProfile(ctx, filepath.Join(dir, "gateway.pprof"), int(min(10*time.Second, measure).Seconds()))
	}
	u0, err := readUsage(b.gw.pid)
	if err != nil {
		return st, b.gatewayAlive()
	}
	l0 := b.readLoad()
	g0 := gen.Stats()
	m0, err := b.metrics(ctx)
	if err != nil {
		return st, err
	}
	sleepCtx(ctx, measure)
	u1, err := readUsage(b.gw.pid)
	if err != nil {
		return st, b.gatewayAlive()
	}
	st.Load = loadShare(l0, b.readLoad())
	g1 := gen.Stats()
	m1, err := b.metrics(ctx)
	if err != nil {
		return st, err
	}
	mu.Lock()
	ports := make(map[int]bool, len(gwPorts))
	for p := range gwPorts {
		ports[p] = true
	}
	mu.Unlock()
	st.GatewaySocketDrops, _, _ = procstat.UDPDrops(ports)
	st.GenSocketDrop, _ = gen.Drops()
	if st.RSSKB, err = procstat.RSSKB(b.gw.pid); err != nil {
		return st, b.gatewayAlive()
	}
	st.HeapMBInuse = m1.Sum("go_memstats_heap_inuse_bytes", nil) / (1 << 20)
	st.Goroutines = m1.Sum("go_goroutines", nil)
	st.GoroutinesPerCall = (st.Goroutines - base.Goroutines) / float64(n)
	// The GC's goal is live + (live + stacks + globals) × GOGC/100: at GOGC=100, live is
	// (goal − stacks − globals) / 2, and the globals cancel against the idle gateway's.
	dStack := m1.Sum("go_memstats_stack_inuse_bytes", nil) - base.StackB
	st.LiveHeapKBPerCall = (m1.Sum("go_memstats_next_gc_bytes", nil) - base.NextGCB - dStack) / 2 / 1024 / float64(n)
	st.StackKBPerCall = dStack / 1024 / float64(n)
	if st.FDs, err = procstat.FDCount(b.gw.pid); err != nil {
		return st, b.gatewayAlive()
	}
	st.FDsPerCall = float64(st.FDs-base.FDs) / float64(n)

	win := u1.wall.Sub(u0.wall)
	st.WindowS = win.Seconds()
	var cpu time.Duration
	st.GatewayCPU, cpu = share(u0, u1)
	fwd := float64(g1.Received + g1.Discarded - g0.Received - g0.Discarded)
	st.ForwardedPPS = fwd / win.Seconds()
	st.GenSentPPS = float64(g1.Sent-g0.Sent) / win.Seconds()
	st.GenLateInWindow = g1.LateTicks - g0.LateTicks
	st.genWindow = genWin(g0, g1)
	var genWhy string
	st.GenLimited, genWhy = genLimited(n, win, g1.Sent-g0.Sent, st.GenLateInWindow)
	tx := map[string]string{"direction": "tx"}
	st.GatewayTxPPS = (m1.Sum("switchboard_rtp_packets_total", tx) - m0.Sum("switchboard_rtp_packets_total", tx)) / win.Seconds()
	if fwd > 0 {
		st.CPUUsPerPacket = float64(cpu.Microseconds()) / fwd
	}
	st.RSSKBPerCall = float64(st.RSSKB-base.RSSKB) / float64(n)
	if b.profile { // after the window's figures: the heap profile's GC costs the gateway CPU
		b.saveHeap(ctx, filepath.Join(dir, "gateway-heap.pprof"), filepath.Join(dir, "gateway-goroutines.txt"))
	}

	// Hang-ups: SIPp's BYEs, then the gateway closes the legs and counts their loss. The media
	// runs until SIPp is done, so that no call ends on the gateway's media timeout instead.
	sippErr := carrier.wait(hold + ramp + 60*time.Second)
	gen.StopSending()
	if ss, err := readSippStats(filepath.Join(dir, "carrier-stat.csv")); err == nil {
		st.SippFailed = ss.Failed + (n - ss.Successful - ss.Failed)
	} else {
		st.SippFailed = n
	}
	waitFor(ctx, 60*time.Second, func() bool {
		m, err := b.metrics(ctx)
		return err == nil && m.Sum("switchboard_calls_active", nil) == 0
	})
	desk.stop()
	stopTail()
	tails.Wait()
	if err := b.idle(ctx, 120*time.Second); err != nil {
		b.logf("  %v", err)
	}
	mAfter, err := b.metrics(ctx)
	if err != nil {
		return st, err
	}
	rx := map[string]string{"direction": "rx"}
	st.GatewayRx = mAfter.Sum("switchboard_rtp_packets_total", rx) - mBefore.Sum("switchboard_rtp_packets_total", rx)
	st.GatewayLost = mAfter.Sum("switchboard_rtp_packets_lost_total", nil) - mBefore.Sum("switchboard_rtp_packets_lost_total", nil)
	if st.GatewayRx+st.GatewayLost > 0 {
		st.LossPct = 100 * st.GatewayLost / (st.GatewayRx + st.GatewayLost)
	}
	st.Gen = gen.Stats()
	if st.Gen.Sent > 0 {
		st.GenLossPct = 100 * (1 - float64(st.Gen.Received+st.Gen.Discarded)/float64(st.Gen.Sent))
	}
	removeRecordings(filepath.Join(b.work, "recordings"))

	mu.Lock()
	serr := startErr
	mu.Unlock()
	switch {
	case serr != nil:
		return st, serr
	case sippErr != nil:
		st.Why = sippErr.Error()
	case st.SippFailed > 0:
		st.Why = fmt.Sprintf("%d calls failed", st.SippFailed)
	case st.LegsStarted < 2*n:
		st.Why = fmt.Sprintf("only %d of %d legs had media", st.LegsStarted, 2*n)
	case st.GenLimited:
		st.Why = genWhy + " (not a reading of the gateway)"
	case st.LossPct >= lossLimitPct:
		st.Why = fmt.Sprintf("loss %.3f%% ≥ %.1f%%", st.LossPct, lossLimitPct)
	case st.GatewayCPU >= cpuLimit:
		st.Why = fmt.Sprintf("gateway CPU %.0f%% ≥ %.0f%% of its core", 100*st.GatewayCPU, 100*cpuLimit)
	default:
		st.Pass = true
	}
	return st, b.gatewayAlive()
}

// sameN is the number of calls the comparisons run at: that of the gateway's best step (the
// largest passing concurrency step, the one latest.json reports), or of the first step when
// none passed; 0 when there was no step.
func (b *bench) sameN() int {
	n := 0
	for _, s := range b.res.Conc {
		if s.Pass {
			n = s.Calls
		}
	}
	if n == 0 && len(b.res.Conc) > 0 {
		n = b.res.Conc[0].Calls
	}
	return n
}

// runFloor runs the bare relay with the packet load of the gateway's best step (sameN),
// pinned where the gateway is.
func (b *bench) runFloor(ctx context.Context) error {
	n := b.sameN()
	if n == 0 || !b.floor {
		return nil
	}
	if !b.fits(b.settle + b.concMeasure + 30*time.Second) {
		b.res.note("the floor was skipped: the time budget")
		return nil
	}
	b.logf("floor: the bare relay with %d calls", n)
	st, err := b.floorAt(ctx, n)
	if err != nil {
		return err
	}
	b.res.Floor = &st
	b.logf("  relay CPU %.0f%%, %.0f packets/s forwarded, %.2f µs/packet", 100*st.RelayCPU, st.ForwardedPPS, st.CPUUsPerPacket)
	return nil
}

// floorAt runs the bare relay with n calls' load and measures it; it needs no gateway (it is
// also `sbbench gencheck`).
func (b *bench) floorAt(ctx context.Context, n int) (floorStep, error) {
	var st floorStep
	self, err := os.Executable()
	if err != nil {
		return st, err
	}
	cmd := b.pinned(b.gatewayCPUs, self, "relay", "-pairs", strconv.Itoa(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return st, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return st, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return st, fmt.Errorf("start relay: %w", err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() {
		stdin.Close()
		go func() { exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	var pairs [][2]int
	timeout := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			if !ok {
				return st, fmt.Errorf("relay exited before it was ready")
			}
			if l == "ready" {
				ready = true
				continue
			}
			var a, c int
			if _, err := fmt.Sscanf(l, "%d %d", &a, &c); err != nil {
				return st, fmt.Errorf("relay said %q", l)
			}
			pairs = append(pairs, [2]int{a, c})
		case <-timeout:
			return st, fmt.Errorf("relay not ready after 30 s")
		}
	}
	if len(pairs) != n {
		return st, fmt.Errorf("relay gave %d pairs for %d calls", len(pairs), n)
	}
	gen, err := rtpgen.New(b.genOptions(), 2*n)
	if err != nil {
		return st, err
	}
	defer gen.Close()
	gen.Run()
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	legs := gen.Legs()
	for i, p := range pairs {
		if err := gen.Start(legs[i], netip.AddrPortFrom(lo, uint16(p[0]))); err != nil {
			return st, err
		}
		if err := gen.Start(legs[n+i], netip.AddrPortFrom(lo, uint16(p[1]))); err != nil {
			return st, err
		}
	}
	sleepCtx(ctx, b.settle)
	pid := cmd.Process.Pid
	u0, err := readUsage(pid)
	if err != nil {
		return st, err
	}
	l0 := b.readLoad()
	g0 := gen.Stats()
	sleepCtx(ctx, b.concMeasure)
	u1, err := readUsage(pid)
	if err != nil {
		return st, err
	}
	load := loadShare(l0, b.readLoad())
	g1 := gen.Stats()
	gen.StopSending()
	st = floorStep{Calls: n, WindowS: u1.wall.Sub(u0.wall).Seconds(), Load: load}
	var cpu time.Duration
	st.RelayCPU, cpu = share(u0, u1)
	fwd := float64(g1.Received + g1.Discarded - g0.Received - g0.Discarded)
	st.ForwardedPPS = fwd / st.WindowS
	st.GenSentPPS = float64(g1.Sent-g0.Sent) / st.WindowS
	st.GenLateInWindow = g1.LateTicks - g0.LateTicks
	st.genWindow = genWin(g0, g1)
	if fwd > 0 {
		st.CPUUsPerPacket = float64(cpu.Microseconds()) / fwd
	}
	stdin.Close()
	for done := time.After(10 * time.Second); ; { // "forwarded N unlatched M", then EOF as the relay exits
		var l string
		var ok bool
		select {
		case l, ok = <-lines:
		case <-done:
		}
		if !ok {
			break
		}
		_, _ = fmt.Sscanf(l, "forwarded %d", &st.RelayForwarded)
	}
	st.Gen = gen.Stats()
	st.GenSocketDrops, _ = gen.Drops()
	return st, nil
}

// removeRecordings deletes the WAV files of finished recordings, so that repeated steps do
// not fill the disk (the database rows stay; nothing reads the files afterwards).
func removeRecordings(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".wav") {
			_ = os.Remove(path)
		}
		return nil
	})
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
