package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"
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
	fmt.Fprintln(tw, "calls\tpkts/s sent\tpkts/s back\trelay CPU\tgenerator CPU\tgen µs/pkt\tload core\tlate ticks\tgen drops\tseq lost\tend-to-end loss %\t")
	for _, n := range steps {
		b.logf("gencheck: %d calls through the bare relay", n)
		st, err := b.floorAt(ctx, n)
		if err != nil {
			fmt.Fprintln(stderr, "sbbench gencheck:", err)
			return 1
		}
		loss := 0.0
		if st.Gen.Sent > 0 {
			loss = 100 * (1 - float64(st.Gen.Received)/float64(st.Gen.Sent))
		}
		perPkt := 0.0
		if h := st.GenSentPPS + st.ForwardedPPS; h > 0 { // per packet written or read
			perPkt = 1e6 * st.Load.GeneratorCPU / h
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f%%\t%.0f%%\t%.2f\t%s\t%d\t%d\t%d\t%.4f\t\n", n, st.GenSentPPS, st.ForwardedPPS, 100*st.RelayCPU, 100*st.Load.GeneratorCPU, perPkt,
			pct(float64(st.Load.CoreBusy)), st.Gen.LateTicks, st.GenSocketDrops, st.Gen.SeqLost, loss)
		if ctx.Err() != nil {
			break
		}
	}
	tw.Flush()
	return 0
}
