// Command sbbench is `make bench` (BENCHMARKS.md): the load benchmarks of the gateway, with
// SIPp as the carrier and the far end, all on 127.0.0.1.
//
//	sbbench run [flags]       start the gateway, run the steps, print the table, write the JSON
//	sbbench relay -pairs N    the bare Go UDP relay (the floor), as a process of its own
//	sbbench gencheck          the RTP generator against the bare relay alone: does it keep up?
//
// `run` expects a PostgreSQL cluster (scripts/bench.sh starts one) and a built gateway. It
// drops and re-creates the database named in -database-url, starts `switchboard serve` pinned
// to -gateway-cpus, runs SIPp and the RTP generator pinned to -load-cpus (sbbench itself should
// run there too: scripts/bench.sh starts it under taskset), and measures:
//
//  1. concurrency: stepped numbers of held calls with RTP both ways from rtpgen and recording
//     on (conc.go); loss from the gateway's RTP counters, CPU and RSS from /proc;
//  2. the comparisons, each at the N of the gateway's best step: the floor, the same packet
//     load through bench/relay (conc.go); rtpengine when installed, driven through its ng
//     control protocol (rtpengine.go); the gateway restarted with recording off (norec.go);
//  3. calls per second: stepped rates of zero-length calls through the bridged line
//     (cps.go); setup latency from SIPp's -trace_rtt, event → ticket lag from the gateway's
//     histogram, tickets counted in the database. After the single gateway's other steps,
//     because a rate past the limit leaves a backlog behind;
//  4. the cluster: the gateway stopped, `make cluster` (Kamailio in front of three nodes) on
//     the same core carries one concurrency step, set up through the front, then the CPS
//     steps of 3. through the front (cluster.go).
//
// Every step is bounded in time and the whole run in -budget; every process it starts is
// stopped when it returns. BENCHMARKS.md explains each figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/bench/rtpgen"
)

var nan = math.NaN()

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sbbench run [flags] | sbbench relay -pairs N | sbbench gencheck [-calls N,…]")
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "run":
		code = cmdRun(os.Args[2:], os.Stdout, os.Stderr)
	case "relay":
		code = cmdRelay(os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	case "gencheck":
		code = cmdGencheck(os.Args[2:], os.Stdout, os.Stderr)
	default:
		fmt.Fprintf(os.Stderr, "sbbench: unknown command %q\n", os.Args[1])
		code = 2
	}
	os.Exit(code)
}

// quickClusterCPS is the cluster's CPS steps of -quick unless -cluster-cps says otherwise.
const quickClusterCPS = "25,50"

// defaultGenReadLegs is the RTP generator's read sample: every leg up to 100 calls, both legs
// of 100 evenly spread calls above (BENCHMARKS.md, "The load generators and their limits"; 1,000
// before session 10, when reading them took a sixth of the generator's core at 1,500 calls).
const defaultGenReadLegs = 200

// defaultGenURing: whether the generator sends through io_uring unless told otherwise.
const defaultGenURing = true

// defaultGenThread and defaultGenPriority: the generator's sender on an OS thread of its own,
// SCHED_FIFO at priority 10 where the kernel allows it, unless told otherwise (BENCHMARKS.md,
// "Session 12": on a shared load core an ordinary thread still waits its turn behind SIPp
// and everything else there).
const (
	defaultGenThread   = true
	defaultGenPriority = 10
)

// genFlags are the sender's flags of run and gencheck.
func genFlags(fs *flag.FlagSet, b *bench) {
	fs.BoolVar(&b.genThread, "gen-thread", defaultGenThread, "the RTP generator's sender runs on an OS thread of its own, sleeping to each 1 ms slot in clock_nanosleep, with a P of the Go runtime for itself (false: a goroutine woken by the runtime's timers, the method before session 12)")
	fs.IntVar(&b.genPriority, "gen-rt", defaultGenPriority, "with -gen-thread, make the sender's thread SCHED_FIFO at this priority (1-99) when the kernel allows it; 0: an ordinary thread (steps.json: generator.sender)")
}

// genOptions are the RTP generator's options of every step.
func (b *bench) genOptions() rtpgen.Options {
	return rtpgen.Options{ReadLegs: b.genReadLegs, URing: b.genURing, Thread: b.genThread, Priority: b.genPriority}
}

// bench is one `sbbench run`.
type bench struct {
	deskPort    int    // the desk SIPp's port, fixed for the run (startGateway)
	root        string // the repository
	work        string // .data/bench/run
	gatewayBin  string
	sipp        string
	dbURL       string
	gatewayCPUs string // taskset lists; empty: no pinning
	loadCPUs    string
	out         string
	detail      string
	profile     bool
	start       time.Time
	deadline    time.Time
	log         io.Writer

	cpsRates     []int
	cpsSeconds   int
	concSteps    []int
	concRate     int
	concMeasure  time.Duration
	settle       time.Duration
	concTableTo  int           // keep stepping past a failure up to this many calls
	reserve      time.Duration // left for the steps after the concurrency steps
	rtpengine    string        // the peer's binary; "" or "off": not run
	norec        bool          // run the recording-off step
	floor        bool          // run the floor (the bare relay) at the best step's N
	noRecording  bool          // the gateway being started records nothing
	genReadLegs  int           // legs the RTP generator reads for the whole step (rtpgen.Options.ReadLegs)
	genURing     bool          // the RTP generator sends through io_uring (rtpgen.Options.URing)
	genThread    bool          // the RTP generator's sender has an OS thread of its own (rtpgen.Options.Thread)
	genPriority  int           // and runs SCHED_FIFO at this priority when > 0 (rtpgen.Options.Priority)
	cluster      bool          // run the cluster steps (cluster.go) last
	clusterCalls int           // its concurrency step's calls; 0: the best single-node step's, at most clusterMaxCalls
	// clusterCPSRates are the cluster's CPS steps (cps.go through the front); nil: none.
	clusterCPSRates []int
	tail            time.Duration // kept at the end of the budget for the cluster steps (fits)

	gw *gatewayProc
	db *pgxpool.Pool

	res report
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := &bench{log: stderr, start: time.Now()}
	root := fs.String("root", ".", "the repository")
	fs.StringVar(&b.gatewayBin, "gateway", "bin/switchboard", "the gateway binary")
	fs.StringVar(&b.dbURL, "database-url", "", "PostgreSQL URL of the bench database, dropped and re-created (required)")
	fs.StringVar(&b.gatewayCPUs, "gateway-cpus", "0", "cores for the gateway and the relay (taskset -c list; empty: no pinning)")
	fs.StringVar(&b.loadCPUs, "load-cpus", "1", "cores for SIPp and the RTP generator (taskset -c list; empty: no pinning)")
	fs.StringVar(&b.out, "out", "bench/results/latest.json", "where the summary figures go (keys in BENCHMARKS.md)")
	fs.StringVar(&b.detail, "detail", "bench/results/steps.json", "where every step's measurements go")
	work := fs.String("work", ".data/bench/run", "scratch directory (emptied first)")
	cps := fs.String("cps", "50,100,150,200,300,400,500,600,800,1000", `calls-per-second steps ("off": none, e.g. to run the concurrency steps alone)`)
	fs.IntVar(&b.cpsSeconds, "cps-seconds", 20, "seconds of calls per CPS step")
	conc := fs.String("conc", "100,250,500,750,1000,1500,2000", `concurrent-call steps ("off": none, e.g. to run the CPS steps alone)`)
	fs.IntVar(&b.concRate, "conc-rate", 100, "calls per second while a concurrency step ramps up")
	fs.BoolVar(&b.genURing, "gen-uring", defaultGenURing, "the RTP generator sends each 1 ms slot's packets with one io_uring_enter instead of a write(2) each (it writes when the kernel refuses io_uring; steps.json: generator.send_path)")
	fs.IntVar(&b.genReadLegs, "gen-read-legs", defaultGenReadLegs, "legs the RTP generator reads for the whole step (a sample of both legs of evenly spread calls; the others only until their first packet); 0: every leg")
	genFlags(fs, b)
	fs.DurationVar(&b.concMeasure, "conc-measure", 15*time.Second, "measurement window of a concurrency step")
	fs.DurationVar(&b.settle, "settle", 3*time.Second, "wait after media starts before measuring")
	fs.IntVar(&b.concTableTo, "conc-table-to", 1500, "after a failed concurrency step, keep measuring the steps up to this many calls (the per-step table)")
	fs.DurationVar(&b.reserve, "reserve", 5*time.Minute, "time the concurrency steps leave for the floor, rtpengine, the recording-off step and CPS")
	fs.StringVar(&b.rtpengine, "rtpengine", "rtpengine", `rtpengine binary, run as the peer at the best step's N when found ("off": not run)`)
	fs.BoolVar(&b.floor, "floor", true, "run the floor (the bare Go relay) at the best step's N")
	fs.BoolVar(&b.norec, "norec", true, "also run the gateway with recording off at the best step's N")
	fs.BoolVar(&b.cluster, "cluster", true, "last, stop the gateway and run one concurrency step and the CPS steps through make cluster (scripts/cluster.sh: Kamailio in front of three nodes, pinned where the gateway was)")
	fs.IntVar(&b.clusterCalls, "cluster-calls", 0, fmt.Sprintf("calls of the cluster's concurrency step; 0: those of the gateway's best concurrency step, at most %d", clusterMaxCalls))
	clusterCPS := fs.String("cluster-cps", "50,100,150,200,250,300", `calls-per-second steps of the cluster, through its front, after its concurrency step, as -cps's ("off": none)`)
	budget := fs.Duration("budget", 18*time.Minute, "stop starting steps that would end after this much time (the cluster steps get 5 minutes, and 4 more for its CPS steps, on top)")
	fs.BoolVar(&b.profile, "profile", false, "also save 10 s CPU profiles of the gateway (pprof) at the last CPS step and the largest concurrency step, and after each concurrency step's window its heap (live objects after a GC) and goroutines (they cost CPU: not for the recorded figures)")
	quick := fs.Bool("quick", false, "development: short steps (5 s CPS steps, 5 s windows)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if b.dbURL == "" {
		fmt.Fprintln(stderr, "sbbench run: -database-url is required")
		return 2
	}
	var err error
	if *cps == "off" {
		b.cpsRates = nil
	} else if b.cpsRates, err = ints(*cps); err != nil {
		fmt.Fprintln(stderr, "sbbench run: -cps:", err)
		return 2
	}
	if *conc == "off" {
		b.concSteps = nil
	} else if b.concSteps, err = ints(*conc); err != nil {
		fmt.Fprintln(stderr, "sbbench run: -conc:", err)
		return 2
	}
	if *clusterCPS != "off" {
		if b.clusterCPSRates, err = ints(*clusterCPS); err != nil {
			fmt.Fprintln(stderr, "sbbench run: -cluster-cps:", err)
			return 2
		}
	}
	if *quick {
		b.cpsSeconds, b.concMeasure, b.settle = 5, 5*time.Second, 2*time.Second
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["reserve"] {
			b.reserve = 2 * time.Minute
		}
		if !set["cluster-cps"] {
			// A smoke run: the steps work, not where they end.
			b.clusterCPSRates, _ = ints(quickClusterCPS)
		}
	}
	if b.root, err = filepath.Abs(*root); err != nil {
		fmt.Fprintln(stderr, "sbbench run:", err)
		return 1
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(b.root, p)
	}
	b.work, b.gatewayBin, b.out, b.detail = abs(*work), abs(b.gatewayBin), abs(b.out), abs(b.detail)
	b.deadline = b.start.Add(*budget)
	if b.cluster {
		// The cluster steps come on top of the budget, kept for them from the start.
		b.tail = clusterTime
		if len(b.clusterCPSRates) > 0 {
			b.tail += clusterCPSTime
		}
		b.deadline = b.deadline.Add(b.tail)
	}
	if b.sipp, err = exec.LookPath("sipp"); err != nil {
		fmt.Fprintln(stderr, "sbbench run: sipp not found (apt-get install sip-tester; scripts/deps.sh bench)")
		return 1
	}
	if _, err := exec.LookPath("taskset"); err != nil && (b.gatewayCPUs != "" || b.loadCPUs != "") {
		fmt.Fprintln(stderr, "sbbench run: taskset (util-linux) not found: nothing is pinned")
		b.gatewayCPUs, b.loadCPUs = "", ""
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runErr := b.run(ctx)
	b.stopGateway()
	if runErr != nil {
		fmt.Fprintln(stderr, "sbbench run:", runErr)
		b.res.note("the run stopped early: %v", runErr)
	}
	if b.res.Date == "" {
		return 1 // nothing was measured
	}
	b.res.print(stdout, b)
	if err := b.res.write(b); err != nil {
		fmt.Fprintln(stderr, "sbbench run:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s and %s in %s\n", rel(b.root, b.out), rel(b.root, b.detail), time.Since(b.start).Round(time.Second))
	if runErr != nil {
		return 1
	}
	return 0
}

// run is the whole benchmark; the caller stops the gateway.
func (b *bench) run(ctx context.Context) error {
	if err := os.RemoveAll(b.work); err != nil {
		return err
	}
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return err
	}
	b.logf("resetting the bench database")
	if err := resetDatabase(ctx, b.dbURL); err != nil {
		return err
	}
	b.logf("starting the gateway (cores %q; load generators on cores %q)", b.gatewayCPUs, b.loadCPUs)
	if err := b.startGateway(ctx); err != nil {
		return err
	}
	b.res.init(b)
	// Concurrency first: a CPS step past the limit leaves the rules engine a backlog of
	// tickets that would slow the next calls' setup for minutes.
	if err := b.runConcurrency(ctx); err != nil {
		return fmt.Errorf("concurrency: %w", err)
	}
	if err := b.runFloor(ctx); err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	if err := b.runRtpengine(ctx); err != nil {
		return fmt.Errorf("rtpengine: %w", err)
	}
	if err := b.runNoRecording(ctx); err != nil {
		return fmt.Errorf("recording off: %w", err)
	}
	if err := b.runCPS(ctx); err != nil {
		return fmt.Errorf("calls per second: %w", err)
	}
	// Last: it stops the gateway (the cluster takes its core).
	if err := b.runCluster(ctx); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// pinned is exec.Command under `taskset -c cpus` when cpus is set.
func (b *bench) pinned(cpus, name string, args ...string) *exec.Cmd {
	if cpus == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
}

// fits reports whether a step of about d still ends within the budget.
// While the single gateway's steps run, the cluster step's time (b.tail) is kept for the end.
func (b *bench) fits(d time.Duration) bool { return time.Now().Add(d + b.tail).Before(b.deadline) }

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, errors.New("steps must increase")
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no steps")
	}
	return out, nil
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}
