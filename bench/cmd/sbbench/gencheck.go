package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/switchboard-voice/switchboard/bench/rtpgen"
)

// cmdGencheck is `sbbench gencheck`: the RTP generator against the bare relay alone, with no
// gateway, SIPp or database, at each -calls N — to see whether the generator (and its core)
// keeps up with N calls before blaming the system under test. Run it as the benchmark runs
// sbbench: pinned to the load core (`taskset -c 1 bin/sbbench gencheck`).
func cmdGencheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gencheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := &bench{log: stderr, start: time.Now()}
	calls := fs.String("calls", "500,1000,1500", "numbers of calls (2 legs each)")
	fs.StringVar(&b.gatewayCPUs, "relay-cpus", "0", "cores for the relay (taskset -c list; empty: no pinning)")
	fs.StringVar(&b.loadCPUs, "load-cpus", "1", "the load core(s), for their busy share (sbbench itself should run there)")
	fs.DurationVar(&b.concMeasure, "measure", 10*time.Second, "measurement window")
	fs.DurationVar(&b.settle, "settle", 2*time.Second, "wait after media starts")
	fs.BoolVar(&b.genURing, "gen-uring", defaultGenURing, "send through io_uring, as in `sbbench run`")
	fs.IntVar(&b.genReadLegs, "gen-read-legs", defaultGenReadLegs, "legs the generator reads for the whole step, as in `sbbench run`; 0: every leg")
	genFlags(fs, b)
	verbose := fs.Bool("v", false, "also print each step's slot lags and its last stalls")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	steps, err := ints(*calls)
	if err != nil {
		fmt.Fprintln(stderr, "sbbench gencheck: -calls:", err)
		return 2
	}
	b.deadline = time.Now().Add(time.Hour)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "calls\tread legs\tpkts/s sent\tpkts/s back\trelay CPU\tgenerator CPU\tgen µs/pkt\tload core\tlate slots\t> 1 ms\t> 5 ms\tmax lag ms\tstalls\tsender\twaited ms\tpreempted\tGCs\tgen drops\tseq lost\tend-to-end loss %\t")
	var detail strings.Builder
	for _, n := range steps {
		b.logf("gencheck: %d calls through the bare relay", n)
		st, err := b.floorAt(ctx, n)
		if err != nil {
			fmt.Fprintln(stderr, "sbbench gencheck:", err)
			return 1
		}
		if st.Gen.SendPath != "io_uring" && b.genURing {
			fmt.Fprintln(stderr, "sbbench gencheck: io_uring refused, the generator writes instead")
		}
		loss := 0.0
		if st.Gen.Sent > 0 {
			loss = 100 * (1 - float64(st.Gen.Received+st.Gen.Discarded)/float64(st.Gen.Sent))
		}
		perPkt := 0.0
		if h := st.GenSentPPS + st.ForwardedPPS; h > 0 { // per packet written or back (read or discarded)
			perPkt = 1e6 * st.Load.GeneratorCPU / h
		}
		over1, all := st.lagOver(1000)
		over5, _ := st.lagOver(5000)
		fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.0f\t%.0f%%\t%.0f%%\t%.2f\t%s\t%d of %d\t%d\t%d\t%.1f\t%d\t%s\t%.1f\t%d\t%d\t%d\t%d\t%.4f\t\n", n, st.Gen.ReadLegs, st.GenSentPPS, st.ForwardedPPS, 100*st.RelayCPU, 100*st.Load.GeneratorCPU, perPkt,
			pct(float64(st.Load.CoreBusy)), st.GenLateInWindow, all, over1, over5, float64(st.Gen.SlotLagMaxUs)/1000, st.Stalls, st.Gen.Sender, st.SenderWaitMs, st.SenderPreempted, st.Load.GCs,
			st.GenSocketDrops, st.Gen.SeqLost, loss)
		if *verbose {
			fmt.Fprintf(&detail, "%d calls: slot lags in the window (µs bounds %v, then above): %v; sbbench goroutines that waited > 1 ms for a thread: %d (longest ≤ %.1f ms); the sender's yields of its P over 1 ms: %d of the step (longest %d µs); last stalls (ms since the sender began, max lag µs, slots; the window %d–%d ms): %v\n",
				n, rtpgen.SlotLagBoundsUs, st.LagHist, st.Load.SchedWaitsOver1, st.Load.SchedWaitMaxMs, st.Gen.SlowYields, st.Gen.YieldMaxUs, st.FromMs, st.ToMs, st.Gen.RecentStalls)
		}
		if ctx.Err() != nil {
			break
		}
	}
	tw.Flush()
	fmt.Fprint(stdout, detail.String())
	return 0
}
