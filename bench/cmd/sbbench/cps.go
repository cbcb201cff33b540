package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

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
	// The gateway's CPU while SIPp placed the calls, in cores (1.0 = the whole pinned core).
	GatewayCPU float64 `json:"gateway_cpu"`
	// What PostgreSQL spent on the step (pgprofile.go): its statements and wait events.
	PG   *pgProfile `json:"pg_profile,omitempty"`
	Pass bool       `json:"pass"`
	Why  string     `json:"why,omitempty"`
}

// maxLagP99 is the event → applied lag p99 a step may have and pass: calls the rules engine
// turns into tickets only seconds later are not calls the gateway takes at that rate.
const maxLagP99 = time.Second

// runCPS steps the call rate up until a step fails (a failed call, a missing ticket, an
// event lag p99 over maxLagP99, or a rate SIPp could not place) or the budget runs out.
func (b *bench) runCPS(ctx context.Context) error {
	for i, rate := range b.cpsRates {
		if !b.fits(time.Duration(b.cpsSeconds)*time.Second + 90*time.Second) {
			b.res.note("CPS steps from %d/s on skipped: the time budget", rate)
			break
		}
		b.logf("CPS step %d/s for %d s", rate, b.cpsSeconds)
		st, err := b.cpsStep(ctx, 10+i, rate)
		if err != nil {
			if b.gatewayAlive() != nil || ctx.Err() != nil {
				return err
			}
			st.Pass, st.Why = false, err.Error() // the step could not be measured: it fails
		}
		b.res.CPS = append(b.res.CPS, st)
		b.logf("  placed %d, failed %d, %.0f/s achieved, %d tickets (%.1f s after), setup p50 %.1f p99 %.1f ms, lag p50 %.0f p99 %.0f ms, gateway CPU %.0f%%: %s",
			st.Placed, st.Failed, st.AchievedCPS, st.Tickets, st.TicketWaitS, st.SetupP50MS, st.SetupP99MS, st.LagP50MS, st.LagP99MS, 100*st.GatewayCPU, passText(st.Pass, st.Why))
		if !st.Pass {
			break
		}
	}
	return nil
}

// ticketGrace is how long after a step's last call every ticket must exist: a rate the rules
// engine cannot follow builds a backlog that grows without bound, so it does not count.
const ticketGrace = 30 * time.Second

// callerPrefix is the caller numbers of step tag: +1650TT then 5 digits, so that a step's calls
// can be found in the calls table by number.
func callerPrefix(tag int) string { return fmt.Sprintf("+1650%02d", tag) }

func (b *bench) cpsStep(ctx context.Context, tag, rate int) (cpsStep, error) {
	st := cpsStep{Rate: rate, Seconds: b.cpsSeconds}
	n := rate * b.cpsSeconds
	dir := filepath.Join(b.work, fmt.Sprintf("cps-%d", rate))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, err
	}
	prefix := callerPrefix(tag)
	csv := filepath.Join(dir, "callers.csv")
	if err := writeLines(csv, n, func(w io.Writer, i int) { fmt.Fprintf(w, "%s%05d\n", prefix, i) }); err != nil {
		return st, err
	}
	scen := func(name string) string { return filepath.Join(b.root, "bench", "scenarios", name) }

	desk, err := b.startSipp("desk", dir, "-sf", scen("cps_desk.xml"), "-p", strconv.Itoa(b.gw.cfg.DeskPort),
		"-trace_stat", "-stf", "desk-stat.csv", "-trace_err")
	if err != nil {
		return st, err
	}
	defer desk.stop()
	if err := waitBound(ctx, b.gw.cfg.DeskPort); err != nil {
		return st, err
	}
	m0, err := b.metrics(ctx)
	if err != nil {
		return st, err
	}
	u0, err := readUsage(b.gw.pid)
	if err != nil {
		return st, err
	}
	port, err := freePort()
	if err != nil {
		return st, err
	}
	prof := b.startPGProfile(ctx)
	defer prof.cancel()
	if b.profile {
		go b.saveProfile(ctx, filepath.Join(b.work, fmt.Sprintf("cps-%d.pprof", rate)), min(10, b.cpsSeconds))
	}
	carrier, err := b.startSipp("carrier", dir, "-sf", scen("cps_carrier.xml"), "-inf", csv, "-p", strconv.Itoa(port),
		"-r", strconv.Itoa(rate), "-rp", "1000", "-m", strconv.Itoa(n), "-l", strconv.Itoa(n),
		"-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", b.gw.cfg.SIPPort),
		"-trace_stat", "-stf", "carrier-stat.csv", "-trace_rtt", "-rtt_freq", "1", "-trace_err",
		"-recv_timeout", "10000", "-timeout", fmt.Sprintf("%ds", b.cpsSeconds+60), "-timeout_error")
	if err != nil {
		return st, err
	}
	defer carrier.stop()
	sippErr := carrier.wait(time.Duration(b.cpsSeconds+90) * time.Second)
	ended := time.Now()
	u1, err := readUsage(b.gw.pid)
	if err != nil {
		return st, b.gatewayAlive()
	}
	st.GatewayCPU, _ = share(u0, u1)
	m1, err := b.metrics(ctx)
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
		m, err := b.metrics(ctx)
		return err == nil && m.Sum("switchboard_calls_active", nil) == 0
	})
	desk.stop()
	last, lastChange := -1, time.Now()
	waitFor(ctx, ticketGrace, func() bool {
		if err := b.db.QueryRow(ctx, `SELECT count(*), count(DISTINCT ticket_id) FROM calls WHERE from_number LIKE $1`,
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
	if err := b.idle(ctx, 60*time.Second); err != nil {
		b.logf("  %v", err)
	}
	m2, err := b.metrics(ctx)
	if err != nil {
		return st, err
	}
	lag := promtext.Diff(m2.Histogram("switchboard_ticketing_event_lag_seconds", nil), m0.Histogram("switchboard_ticketing_event_lag_seconds", nil))
	st.LagP50MS, st.LagP99MS = fnum(1000*promtext.Quantile(0.5, lag)), fnum(1000*promtext.Quantile(0.99, lag))
	if len(lag) > 0 {
		st.Events = lag[len(lag)-1].Count
	}
	if st.Placed > 0 {
		st.TicketsPerCall = float64(st.Tickets) / float64(st.Placed)
	}
	switch {
	case sippErr != nil:
		st.Why = sippErr.Error()
	case st.Failed > 0 || st.Successful < n:
		st.Why = fmt.Sprintf("%d of %d calls failed", n-st.Successful, n)
	case st.Tickets != st.Successful:
		st.Why = fmt.Sprintf("%d tickets for %d calls %.0f s after the last call", st.Tickets, st.Successful, st.TicketWaitS)
	case st.AchievedCPS < 0.95*float64(rate):
		st.Why = fmt.Sprintf("SIPp placed only %.0f calls/s", st.AchievedCPS)
	case float64(st.LagP99MS) > float64(maxLagP99.Milliseconds()):
		st.Why = fmt.Sprintf("event lag p99 %.0f ms over %d ms", st.LagP99MS, maxLagP99.Milliseconds())
	default:
		st.Pass = true
	}
	return st, b.gatewayAlive()
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
