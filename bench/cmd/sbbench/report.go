package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// latest is bench/results/latest.json: exactly the keys BENCHMARKS.md describes.
type latest struct {
	Date               string  `json:"date"`
	Commit             string  `json:"commit"`
	CPSMax             int     `json:"cps_max"`
	SetupP50MS         float64 `json:"setup_p50_ms"`
	SetupP99MS         float64 `json:"setup_p99_ms"`
	TicketsPerCall     float64 `json:"tickets_per_call"`
	ConcurrentCallsMax int     `json:"concurrent_calls_max"`
	LossPct            float64 `json:"loss_pct"`
	CPUUsPerPacket     float64 `json:"cpu_us_per_packet"`
	FloorCPUUsPerPkt   float64 `json:"floor_cpu_us_per_packet"`
	RSSKBPerCall       float64 `json:"rss_kb_per_call"`
	EventLagP50MS      float64 `json:"event_lag_p50_ms"`
	EventLagP99MS      float64 `json:"event_lag_p99_ms"`
	// ClusterCPSMax is cps_max of make cluster through its front, on the gateway's core, in the
	// same run (the highest passing -cluster-cps step, 0 when none passed); null when not run.
	ClusterCPSMax *int `json:"cluster_cps_max"`
	// Measured at the same number of calls as the figures above, in the same run (null when
	// not measured): the gateway with recording off, rtpengine (when installed), and the
	// gateway's CPU per packet as a multiple of the floor's and of rtpengine's.
	peerSummary
}

// report is everything one run measured; the detail file holds all of it.
type report struct {
	Date         string       `json:"date"`
	Commit       string       `json:"commit"`
	Machine      string       `json:"machine"`
	GatewayCPUs  string       `json:"gateway_cpus"`
	LoadCPUs     string       `json:"load_cpus"`
	LoadAverage  string       `json:"load_average_at_start"`
	CPS          []cpsStep    `json:"cps_steps"`
	Conc         []concStep   `json:"concurrency_steps"`
	Floor        *floorStep   `json:"floor,omitempty"`
	Rtpengine    *peerStep    `json:"rtpengine,omitempty"`
	NoRec        *concStep    `json:"recording_off,omitempty"`
	Cluster      *clusterStep `json:"cluster,omitempty"`
	ClusterCPS   []cpsStep    `json:"cluster_cps_steps,omitempty"`
	RSSBaseKB    int64        `json:"rss_idle_kb"`
	IdleBase     *idleBase    `json:"idle_gateway,omitempty"`
	Notes        []string     `json:"notes,omitempty"`
	Summary      latest       `json:"summary"`
	SummaryNotes []string     `json:"summary_notes,omitempty"`
	Elapsed      string       `json:"elapsed"`
}

func (r *report) init(b *bench) {
	r.Date = b.start.UTC().Format(time.RFC3339)
	r.Commit = gitCommit(b.root)
	r.Machine = fmt.Sprintf("%d CPUs (%s), %s/%s, %s", onlineCPUs(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	r.GatewayCPUs, r.LoadCPUs = b.gatewayCPUs, b.loadCPUs
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(la))
		if len(f) >= 3 {
			r.LoadAverage = strings.Join(f[:3], " ")
		}
	}
}

func (r *report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// summarize picks the latest.json figures (BENCHMARKS.md): those of the highest passing CPS step and the
// highest passing concurrency step; with no passing step, the lowest step's, said in a note.
func (r *report) summarize() {
	s := latest{Date: r.Date, Commit: r.Commit}
	r.SummaryNotes = nil
	if len(r.CPS) > 0 {
		pick := r.CPS[0]
		for _, c := range r.CPS {
			if c.Pass {
				s.CPSMax, pick = c.Rate, c
			}
		}
		if s.CPSMax == 0 {
			r.SummaryNotes = append(r.SummaryNotes, fmt.Sprintf("no CPS step passed: setup, tickets and lag are those of the %d/s step", pick.Rate))
		}
		s.SetupP50MS, s.SetupP99MS = round(float64(pick.SetupP50MS), 2), round(float64(pick.SetupP99MS), 2)
		s.TicketsPerCall = round(pick.TicketsPerCall, 4)
		s.EventLagP50MS, s.EventLagP99MS = round(float64(pick.LagP50MS), 2), round(float64(pick.LagP99MS), 2)
	}
	if len(r.Conc) > 0 {
		pick := r.Conc[0]
		for _, c := range r.Conc {
			if c.Pass {
				s.ConcurrentCallsMax, pick = c.Calls, c
			}
		}
		if s.ConcurrentCallsMax == 0 {
			r.SummaryNotes = append(r.SummaryNotes, fmt.Sprintf("no concurrency step passed: loss, CPU and memory are those of the %d-call step", pick.Calls))
		}
		s.LossPct = round(pick.LossPct, 4)
		s.CPUUsPerPacket = round(pick.CPUUsPerPacket, 3)
		s.RSSKBPerCall = round(pick.RSSKBPerCall, 1)
	}
	if len(r.ClusterCPS) > 0 {
		m := maxPassingRate(r.ClusterCPS)
		s.ClusterCPSMax = &m
	}
	if r.Floor != nil {
		s.FloorCPUUsPerPkt = round(r.Floor.CPUUsPerPacket, 3)
	}
	s.peerSummary = r.peers(s)
	r.Summary = s
}

// maxPassingRate is the highest rate of the passing steps; 0 when none passed.
func maxPassingRate(steps []cpsStep) int {
	m := 0
	for _, c := range steps {
		if c.Pass {
			m = max(m, c.Rate)
		}
	}
	return m
}

// cpsMaxStep is the step summarize takes the CPS figures from: the highest passing one, else
// the first.
func (r *report) cpsMaxStep() (cpsStep, bool) {
	if len(r.CPS) == 0 {
		return cpsStep{}, false
	}
	pick := r.CPS[0]
	for _, c := range r.CPS {
		if c.Pass {
			pick = c
		}
	}
	return pick, true
}

// fnum is a measurement that may be unknown (NaN): JSON null then, since JSON has no NaN.
type fnum float64

func (f fnum) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// print writes the one table: every step, then the figures.
func (r *report) print(w io.Writer, b *bench) {
	r.summarize()
	fmt.Fprintf(w, "\nswitchboard make bench — %s, commit %s, %s\n", r.Date, r.Commit, r.Machine)
	fmt.Fprintf(w, "gateway pinned to cores %q, SIPp/RTP generator/sbbench to %q, PostgreSQL not pinned; load average at start %s\n\n", r.GatewayCPUs, r.LoadCPUs, r.LoadAverage)
	if len(r.CPS) > 0 {
		printCPSTable(w, "CPS step", r.CPS)
	}
	if c, ok := r.cpsMaxStep(); ok {
		printPGProfile(w, c)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "calls\tlegs\tgw CPU\tpkts/s out\tµs/pkt\tloss %\tsock drops\tgen loss %\tRSS MiB\tKiB/call\tresult\t")
	for _, c := range r.Conc {
		fmt.Fprintf(tw, "%d\t%d\t%.0f%%\t%.0f\t%.2f\t%.4f\t%d\t%.4f\t%.0f\t%.1f\t%s\t\n", c.Calls, c.LegsStarted, 100*c.GatewayCPU, c.ForwardedPPS,
			c.CPUUsPerPacket, c.LossPct, c.GatewaySocketDrops, c.GenLossPct, float64(c.RSSKB)/1024, c.RSSKBPerCall, passText(c.Pass, c.Why))
	}
	if f := r.Floor; f != nil {
		fmt.Fprintf(tw, "relay %d\t%d\t%.0f%%\t%.0f\t%.2f\t\t\t\t\t\t(the floor)\t\n", f.Calls, 2*f.Calls, 100*f.RelayCPU, f.ForwardedPPS, f.CPUUsPerPacket)
	}
	tw.Flush()
	r.printPeers(w)
	r.printCluster(w)
	s := r.Summary
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ratio := "-"
	if s.FloorCPUUsPerPkt > 0 {
		ratio = fmt.Sprintf("%.2f× the floor", s.CPUUsPerPacket/s.FloorCPUUsPerPkt)
	}
	cpsMax := fmt.Sprintf("%d calls/s (0 failed, a ticket per call, event lag p99 ≤ %d ms)", s.CPSMax, maxLagP99.Milliseconds())
	if len(r.CPS) == 0 {
		cpsMax = "- (no CPS step ran: -cps off)"
	}
	for _, row := range [][2]string{
		{"cps_max", cpsMax},
		{"cluster_cps_max", clusterCPSText(s.ClusterCPSMax)},
		{"setup_p50_ms / setup_p99_ms", fmt.Sprintf("%.2f / %.2f (SIPp -trace_rtt, INVITE → 200 OK)", s.SetupP50MS, s.SetupP99MS)},
		{"tickets_per_call", fmt.Sprintf("%.4f", s.TicketsPerCall)},
		{"event_lag_p50_ms / p99", fmt.Sprintf("%.1f / %.1f (switchboard_ticketing_event_lag_seconds)", s.EventLagP50MS, s.EventLagP99MS)},
		{"concurrent_calls_max", fmt.Sprintf("%d calls (RTP both ways, recorded, < %.1f%% loss, < %.0f%% CPU)", s.ConcurrentCallsMax, lossLimitPct, 100*cpuLimit)},
		{"loss_pct", fmt.Sprintf("%.4f", s.LossPct)},
		{"cpu_us_per_packet", fmt.Sprintf("%.3f (%s)", s.CPUUsPerPacket, ratio)},
		{"floor_cpu_us_per_packet", fmt.Sprintf("%.3f (bare Go UDP relay)", s.FloorCPUUsPerPkt)},
		{"rss_kb_per_call", fmt.Sprintf("%.1f", s.RSSKBPerCall)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	for _, row := range s.peerRows() {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	tw.Flush()
	for _, n := range append(append([]string{}, r.Notes...), r.SummaryNotes...) {
		fmt.Fprintln(w, "note:", n)
	}
}

func clusterCPSText(v *int) string {
	if v == nil {
		return "- (the cluster's CPS steps were not run)"
	}
	return fmt.Sprintf("%d calls/s (make cluster through its front on the gateway's core; same rules)", *v)
}

// printCPSTable prints CPS steps, one a row; the cluster's with the front's CPU and the calls
// each node took.
func printCPSTable(w io.Writer, title string, steps []cpsStep) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tplaced\tfailed\tachieved/s\ttickets\tsetup p50 ms\tp99 ms\tlag p50 ms\tp99 ms\tgw CPU\tresult\t\n", title)
	for _, c := range steps {
		cpu := fmt.Sprintf("%.0f%%", 100*c.GatewayCPU)
		if c.FrontCPU != nil {
			cpu = fmt.Sprintf("%.0f%% + front %.0f%%", 100*c.GatewayCPU, 100**c.FrontCPU)
		}
		fmt.Fprintf(tw, "%d/s\t%d\t%d\t%.0f\t%d\t%.1f\t%.1f\t%.0f\t%.0f\t%s\t%s\t\n", c.Rate, c.Placed, c.Failed, c.AchievedCPS, c.Tickets,
			c.SetupP50MS, c.SetupP99MS, c.LagP50MS, c.LagP99MS, cpu, passText(c.Pass, c.Why))
	}
	tw.Flush()
}

// write saves latest.json (the §7 keys only) and the detail file.
func (r *report) write(b *bench) error {
	r.summarize()
	r.Elapsed = time.Since(b.start).Round(time.Second).String()
	for path, v := range map[string]any{b.out: r.Summary, b.detail: r} {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("results: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("results: %w", err)
		}
	}
	return nil
}

func gitCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// onlineCPUs counts the machine's processors (runtime.NumCPU is sbbench's own affinity, one
// core under taskset).
func onlineCPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	return max(n, 1)
}
