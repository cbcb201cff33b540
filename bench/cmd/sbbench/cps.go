package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/bench/procstat"
	"github.com/switchboard-voice/switchboard/bench/promtext"
)

// cpsStep is one calls-per-second step: Rate zero-length calls per second for Seconds.
type cpsStep struct {
	Rate        int     `json:"rate"`
	Seconds     int     `json:"seconds"`
	Placed      int     `json:"placed"`
	Successful  int     `json:"successful"`
	Failed      int     `json:"failed"`
	AchievedCPS float64 `json:"achieved_cps"` // from the times of SIPp's 200 OKs
	// Calls the gateway recorded for the step's callers, and the distinct tickets they went to.
	CallRecords    int     `json:"call_records"`
	Tickets        int     `json:"tickets"`
	TicketsPerCall float64 `json:"tickets_per_call"`
	TicketWaitS    float64 `json:"ticket_wait_s"` // after the last call, until every ticket existed
	// Setup latency (INVITE → 200 OK) from SIPp's -trace_rtt, and the gateway's own histogram
	// (switchboard_call_setup_seconds, INVITE received → 200 OK sent) for comparison.
	SetupP50MS   fnum `json:"setup_p50_ms"`
	SetupP99MS   fnum `json:"setup_p99_ms"`
	GwSetupP50MS fnum `json:"gateway_setup_p50_ms"`
	GwSetupP99MS fnum `json:"gateway_setup_p99_ms"`
	// Event → applied lag of every event of the step (switchboard_ticketing_event_lag_seconds).
	LagP50MS fnum    `json:"event_lag_p50_ms"`
	LagP99MS fnum    `json:"event_lag_p99_ms"`
	Events   float64 `json:"events"`
	// The gateway's CPU while SIPp placed the calls, in cores (1.0 = the whole pinned core);
	// in the cluster, the three nodes' together.
	GatewayCPU float64 `json:"gateway_cpu"`
	// The gateway's own cost per successful call (in the cluster, the nodes' together), counts
	// rather than rates so that a loaded machine reads the same: its CPU (utime + stime of
	// /proc) while SIPp placed the calls, and from the step's start until every ticket existed
	// and the gateway was idle (the rules engine's catch-up, and sbbench's scrapes while it
	// waits, included); Go's allocations (go_memstats_mallocs_total,
	// go_memstats_alloc_bytes_total) and garbage collections (go_gc_duration_seconds_count,
	// per 1,000 calls) over the same whole span; and the goroutines when SIPp ended.
	CPUMSPerCall      float64 `json:"gateway_cpu_ms_per_call"`
	CPUMSPerCallTotal float64 `json:"gateway_cpu_ms_per_call_total"`
	AllocsPerCall     float64 `json:"gateway_allocs_per_call"`
	AllocKBPerCall    float64 `json:"gateway_alloc_kb_per_call"`
	GCsPer1000Calls   float64 `json:"gateway_gcs_per_1000_calls"`
	Goroutines        float64 `json:"gateway_goroutines_at_end"`
	// The cluster only: each node's CPU and the front's (Kamailio, all its processes) while
	// SIPp placed the calls, in cores, and the calls each node ended in the step (where the
	// front put them: Δswitchboard_calls_total{direction="inbound"}).
	NodeCPU      []float64 `json:"node_cpu,omitempty"`
	FrontCPU     *float64  `json:"front_cpu,omitempty"`
	CallsPerNode []float64 `json:"calls_per_node,omitempty"`
	// What PostgreSQL spent on the step (pgprofile.go): its statements and wait events.
	PG   *pgProfile `json:"pg_profile,omitempty"`
	Pass bool       `json:"pass"`
	Why  string     `json:"why,omitempty"`
}

// maxLagP99 is the event → applied lag p99 a step may have and pass: calls the rules engine
// turns into tickets only seconds later are not calls the gateway takes at that rate.
const maxLagP99 = time.Second

// cpsTarget is what the CPS steps send their calls to and read their figures from: the single
// gateway (gatewayTarget) or make cluster's front and nodes (clusterProc.cpsTarget). One step
// code serves both, so that the two cps_max stand side by side on the same rules.
type cpsTarget struct {
	name     string        // the steps' directories and log lines: "cps", "cluster-cps"
	who      string        // what it is, in messages: "the gateway", "the cluster"
	tagBase  int           // the callers of the i-th step are callerPrefix(tagBase+i)
	sipAddr  string        // where SIPp sends its INVITEs (host:port)
	deskPort int           // the SIPp far end behind line +15550197
	db       *pgxpool.Pool // the database holding the calls and tickets
	sippArgs []string      // more flags for the carrier SIPp
	// metrics scrapes every node: all samples in one Scrape (Sum and Histogram add the
	// nodes up; every metric carries a node label) and each node's own.
	metrics func(ctx context.Context) (all promtext.Scrape, each []promtext.Scrape, err error)
	// cpu reads each node's process CPU, and the front's (front false: there is none).
	cpu   func() (nodes []usage, front usage, hasFront bool, err error)
	alive func() error // an error once a node (or the script that runs them) has exited
	// profile saves a CPU profile of the gateway for -profile; nil: not offered.
	profile func(ctx context.Context, path string, seconds int)
}

// gatewayTarget is the single gateway as a CPS target (the one running now: the
// recording-off step restarts it).
func (b *bench) gatewayTarget() *cpsTarget {
	return &cpsTarget{
		name: "cps", who: "the gateway", tagBase: 10, sipAddr: fmt.Sprintf("127.0.0.1:%d", b.gw.cfg.SIPPort), deskPort: b.gw.cfg.DeskPort, db: b.db,
		metrics: func(ctx context.Context) (promtext.Scrape, []promtext.Scrape, error) {
			m, err := b.metrics(ctx)
			return m, []promtext.Scrape{m}, err
		},
		cpu: func() ([]usage, usage, bool, error) {
			u, err := readUsage(b.gw.pid)
			return []usage{u}, usage{}, false, err
		},
		alive:   b.gatewayAlive,
		profile: b.saveProfile,
	}
}

// runCPS runs the single gateway's CPS steps (cpsSteps).
func (b *bench) runCPS(ctx context.Context) error {
	var err error
	b.res.CPS, err = b.cpsSteps(ctx, b.gatewayTarget(), b.cpsRates, b.fits)
	return err
}

// cpsSteps steps the call rate up until a step fails (a failed call, a missing ticket, an
// event lag p99 over maxLagP99, or a rate SIPp could not place) or fits says the next step
// would not end in time. It returns an error only when the target is gone or ctx ends (the
// step that found it is the last returned, failed with the error).
func (b *bench) cpsSteps(ctx context.Context, t *cpsTarget, rates []int, fits func(time.Duration) bool) ([]cpsStep, error) {
	var steps []cpsStep
	for i, rate := range rates {
		if !fits(time.Duration(b.cpsSeconds)*time.Second + 90*time.Second) {
			b.res.note("%s steps from %d/s on skipped: the time budget", t.name, rate)
			break
		}
		b.logf("%s step %d/s for %d s", t.name, rate, b.cpsSeconds)
		st, err := b.cpsStep(ctx, t, t.tagBase+i, rate)
		if err != nil {
			st.Pass, st.Why = false, err.Error() // the step could not be measured: it fails
			if t.alive() != nil || ctx.Err() != nil {
				return append(steps, st), err
			}
		}
		steps = append(steps, st)
		front := ""
		if st.FrontCPU != nil {
			front = fmt.Sprintf(" (nodes %v, front %.0f%%), calls per node %v", st.NodeCPU, 100**st.FrontCPU, st.CallsPerNode)
		}
		b.logf("  placed %d, failed %d, %.0f/s achieved, %d tickets (%.1f s after), setup p50 %.1f p99 %.1f ms, lag p50 %.0f p99 %.0f ms, gateway CPU %.0f%%%s: %s",
			st.Placed, st.Failed, st.AchievedCPS, st.Tickets, st.TicketWaitS, st.SetupP50MS, st.SetupP99MS, st.LagP50MS, st.LagP99MS, 100*st.GatewayCPU, front, passText(st.Pass, st.Why))
		b.logf("  a call cost the gateway %.3f ms of CPU while SIPp placed them, %.3f ms until idle; %.0f allocations (%.1f KiB), %.2f GCs per 1,000 calls, %.0f goroutines at the end",
			st.CPUMSPerCall, st.CPUMSPerCallTotal, st.AllocsPerCall, st.AllocKBPerCall, st.GCsPer1000Calls, st.Goroutines)
		if !st.Pass {
			break
		}
	}
	return steps, nil
}

// ticketGrace is how long after a step's last call every ticket must exist: a rate the rules
// engine cannot follow builds a backlog that grows without bound, so it does not count.
const ticketGrace = 30 * time.Second

// callerPrefix is the caller numbers of step tag: +1650TT then 5 digits, so that a step's calls
// can be found in the calls table by number.
func callerPrefix(tag int) string { return fmt.Sprintf("+1650%02d", tag) }

func (b *bench) cpsStep(ctx context.Context, t *cpsTarget, tag, rate int) (cpsStep, error) {
	st := cpsStep{Rate: rate, Seconds: b.cpsSeconds}
	n := rate * b.cpsSeconds
	dir := filepath.Join(b.work, fmt.Sprintf("%s-%d", t.name, rate))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, err
	}
	prefix := callerPrefix(tag)
	csv := filepath.Join(dir, "callers.csv")
	if err := writeLines(csv, n, func(w io.Writer, i int) { fmt.Fprintf(w, "%s%05d\n", prefix, i) }); err != nil {
		return st, err
	}
	scen := func(name string) string { return filepath.Join(b.root, "bench", "scenarios", name) }

	desk, err := b.startSipp("desk", dir, "-sf", scen("cps_desk.xml"), "-p", strconv.Itoa(t.deskPort),
		"-trace_stat", "-stf", "desk-stat.csv", "-trace_err")
	if err != nil {
		return st, err
	}
	defer desk.stop()
	if err := waitBound(ctx, t.deskPort); err != nil {
		return st, err
	}
	// A process that cannot be read has exited, most likely: say which, if so.
	gone := func(err error) error {
		if aerr := t.alive(); aerr != nil {
			return aerr
		}
		return fmt.Errorf("read CPU: %w", err)
	}
	m0, each0, err := t.metrics(ctx)
	if err != nil {
		return st, err
	}
	u0, f0, hasFront, err := t.cpu()
	if err != nil {
		return st, gone(err)
	}
	port, err := freePort()
	if err != nil {
		return st, err
	}
	prof := startPGProfile(ctx, t.db)
	defer prof.cancel()
	if b.profile && t.profile != nil {
		go t.profile(ctx, filepath.Join(b.work, fmt.Sprintf("%s-%d.pprof", t.name, rate)), min(10, b.cpsSeconds))
	}
	args := []string{"-sf", scen("cps_carrier.xml"), "-inf", csv, "-p", strconv.Itoa(port),
		"-r", strconv.Itoa(rate), "-rp", "1000", "-m", strconv.Itoa(n), "-l", strconv.Itoa(n),
		"-s", "+15550197", t.sipAddr,
		"-trace_stat", "-stf", "carrier-stat.csv", "-trace_rtt", "-rtt_freq", "1", "-trace_err",
		"-recv_timeout", "10000", "-timeout", fmt.Sprintf("%ds", b.cpsSeconds+60), "-timeout_error"}
	carrier, err := b.startSipp("carrier", dir, append(args, t.sippArgs...)...)
	if err != nil {
		return st, err
	}
	defer carrier.stop()
	sippErr := carrier.wait(time.Duration(b.cpsSeconds+90) * time.Second)
	ended := time.Now()
	u1, f1, _, err := t.cpu()
	if err != nil {
		return st, gone(err)
	}
	var placedCPU time.Duration
	for i := range u1 {
		frac, cpu := share(u0[i], u1[i])
		placedCPU += cpu
		st.GatewayCPU += frac
		if len(u1) > 1 {
			st.NodeCPU = append(st.NodeCPU, round(frac, 3))
		}
	}
	if hasFront {
		frac, _ := share(f0, f1)
		st.FrontCPU = &frac
	}
	m1, _, err := t.metrics(ctx)
	if err != nil {
		return st, err
	}
	ss, err := readSippStats(filepath.Join(dir, "carrier-stat.csv"))
	if err != nil {
		return st, fmt.Errorf("%w (sipp: %v)", err, sippErr)
	}
	st.Placed, st.Successful, st.Failed = ss.Created, ss.Successful, ss.Failed
	if f, err := findOne(filepath.Join(dir, "cps_carrier_*_rtt.csv")); err == nil {
		at, rt, err := rttSamples(f, 1)
		if err != nil {
			return st, err
		}
		st.SetupP50MS, st.SetupP99MS = fnum(percentile(rt, 0.50)), fnum(percentile(rt, 0.99))
		if len(at) > 1 && at[len(at)-1] > at[0] {
			st.AchievedCPS = float64(len(at)-1) / ((at[len(at)-1] - at[0]) / 1000)
		}
	} else {
		st.SetupP50MS, st.SetupP99MS = fnum(nan), fnum(nan)
	}
	setup := promtext.Diff(m1.Histogram("switchboard_call_setup_seconds", nil), m0.Histogram("switchboard_call_setup_seconds", nil))
	st.GwSetupP50MS, st.GwSetupP99MS = fnum(1000*promtext.Quantile(0.5, setup)), fnum(1000*promtext.Quantile(0.99, setup))

	// Every call's ticket, counted in the database: wait while the count grows.
	waitFor(ctx, 30*time.Second, func() bool {
		m, _, err := t.metrics(ctx)
		return err == nil && m.Sum("switchboard_calls_active", nil) == 0
	})
	desk.stop()
	last, lastChange := -1, time.Now()
	waitFor(ctx, ticketGrace, func() bool {
		if err := t.db.QueryRow(ctx, `SELECT count(*), count(DISTINCT ticket_id) FROM calls WHERE from_number LIKE $1`,
			prefix+"%").Scan(&st.CallRecords, &st.Tickets); err != nil {
			return false
		}
		if st.Tickets != last {
			last, lastChange = st.Tickets, time.Now()
		}
		return st.Tickets >= st.Successful || time.Since(lastChange) > 10*time.Second
	})
	st.TicketWaitS = time.Since(ended).Seconds()
	st.PG = prof.finish(ctx, st.Successful)
	if err := idle(ctx, t, 60*time.Second); err != nil {
		b.logf("  %v", err)
	}
	m2, each2, err := t.metrics(ctx)
	if err != nil {
		return st, err
	}
	if u2, _, _, err := t.cpu(); err == nil && st.Successful > 0 {
		var total time.Duration
		for i := range u2 {
			_, cpu := share(u0[i], u2[i])
			total += cpu
		}
		n := float64(st.Successful)
		st.CPUMSPerCall = round(float64(placedCPU.Microseconds())/1000/n, 3)
		st.CPUMSPerCallTotal = round(float64(total.Microseconds())/1000/n, 3)
		st.AllocsPerCall = round((m2.Sum("go_memstats_mallocs_total", nil)-m0.Sum("go_memstats_mallocs_total", nil))/n, 1)
		st.AllocKBPerCall = round((m2.Sum("go_memstats_alloc_bytes_total", nil)-m0.Sum("go_memstats_alloc_bytes_total", nil))/1024/n, 2)
		st.GCsPer1000Calls = round(1000*(m2.Sum("go_gc_duration_seconds_count", nil)-m0.Sum("go_gc_duration_seconds_count", nil))/n, 2)
	}
	st.Goroutines = m1.Sum("go_goroutines", nil)
	lag := promtext.Diff(m2.Histogram("switchboard_ticketing_event_lag_seconds", nil), m0.Histogram("switchboard_ticketing_event_lag_seconds", nil))
	st.LagP50MS, st.LagP99MS = fnum(1000*promtext.Quantile(0.5, lag)), fnum(1000*promtext.Quantile(0.99, lag))
	if len(lag) > 0 {
		st.Events = lag[len(lag)-1].Count
	}
	if len(each2) > 1 && len(each0) == len(each2) {
		in := map[string]string{"direction": "inbound"}
		for i := range each2 {
			st.CallsPerNode = append(st.CallsPerNode, each2[i].Sum("switchboard_calls_total", in)-each0[i].Sum("switchboard_calls_total", in))
		}
	}
	if st.Placed > 0 {
		st.TicketsPerCall = float64(st.Tickets) / float64(st.Placed)
	}
	st.Pass, st.Why = cpsVerdict(st, n, sippErr)
	return st, t.alive()
}

// cpsVerdict is the pass rule of a CPS step of n calls (BENCHMARKS.md, cps_max): every call
// placed and answered, a ticket each, the rate actually placed, and the event lag p99 within
// maxLagP99.
func cpsVerdict(st cpsStep, n int, sippErr error) (pass bool, why string) {
	switch {
	case sippErr != nil:
		return false, sippErr.Error()
	case st.Failed > 0 || st.Successful < n:
		return false, fmt.Sprintf("%d of %d calls failed", n-st.Successful, n)
	case st.Tickets != st.Successful:
		return false, fmt.Sprintf("%d tickets for %d calls %.0f s after the last call", st.Tickets, st.Successful, st.TicketWaitS)
	case st.AchievedCPS < 0.95*float64(st.Rate):
		return false, fmt.Sprintf("SIPp placed only %.0f calls/s", st.AchievedCPS)
	case math.IsNaN(float64(st.LagP99MS)):
		return false, "no event lag measured (no event applied in the step)"
	case float64(st.LagP99MS) > float64(maxLagP99.Milliseconds()):
		return false, fmt.Sprintf("event lag p99 %.0f ms over %d ms", st.LagP99MS, maxLagP99.Milliseconds())
	default:
		return true, ""
	}
}

// writeLines writes a SIPp injection file: "SEQUENTIAL", then n lines from line.
func writeLines(path string, n int, line func(w io.Writer, i int)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "SEQUENTIAL")
	for i := range n {
		line(w, i)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// waitBound waits until a UDP socket is bound on 127.0.0.1:port (SIPp's far end is up).
func waitBound(ctx context.Context, port int) error {
	if !waitFor(ctx, 10*time.Second, func() bool {
		_, found, err := procstat.UDPDrops(map[int]bool{port: true})
		return err == nil && found > 0
	}) {
		return fmt.Errorf("nothing listens on UDP port %d after 10 s (sipp far end)", port)
	}
	return nil
}

// saveProfile saves a CPU profile of the gateway (its admin listener's pprof).
func (b *bench) saveProfile(ctx context.Context, path string, seconds int) {
	b.savePprof(ctx, path, fmt.Sprintf("profile?seconds=%d", seconds), time.Duration(seconds+20)*time.Second, "CPU profile")
}

// saveHeap saves what the gateway's heap holds (after a GC: live objects by allocation site)
// and its goroutines by stack, to tell what a call's resident memory is made of.
func (b *bench) saveHeap(ctx context.Context, heapPath, goroutinePath string) {
	b.savePprof(ctx, heapPath, "heap?gc=1", 20*time.Second, "heap profile")
	b.savePprof(ctx, goroutinePath, "goroutine?debug=1", 20*time.Second, "goroutine profile")
}

// savePprof saves one of the gateway's /debug/pprof/ answers to path.
func (b *bench) savePprof(ctx context.Context, path, query string, timeout time.Duration, what string) {
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/%s", b.gw.cfg.AdminPort, query)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.logf("  %s: %v", what, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err == nil {
		b.logf("  saved %s %s", what, rel(b.root, path))
	}
}

func passText(pass bool, why string) string {
	if pass {
		return "pass"
	}
	return "FAIL: " + why
}
