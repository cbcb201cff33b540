package main

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// peerSummary is latest.json's comparison keys, each measured at ComparedAtCalls calls (the
// gateway's best step) in the same run; nil (JSON null) when that part was not run.
type peerSummary struct {
	ComparedAtCalls         int      `json:"compared_at_calls"`
	NoRecCPUUsPerPacket     *float64 `json:"norec_cpu_us_per_packet"`
	NoRecRSSKBPerCall       *float64 `json:"norec_rss_kb_per_call"`
	NoRecLossPct            *float64 `json:"norec_loss_pct"`
	RtpengineCPUUsPerPacket *float64 `json:"rtpengine_cpu_us_per_packet"`
	RtpengineRSSKBPerCall   *float64 `json:"rtpengine_rss_kb_per_call"`
	RtpengineLossPct        *float64 `json:"rtpengine_loss_pct"`
	CPUVsFloor              *float64 `json:"cpu_vs_floor"`
	CPUVsRtpengine          *float64 `json:"cpu_vs_rtpengine"`
	NoRecCPUVsRtpengine     *float64 `json:"norec_cpu_vs_rtpengine"`
	RecordingCPUUsPerPacket *float64 `json:"recording_cpu_us_per_packet"` // cpu_us_per_packet − norec_cpu_us_per_packet
	RecordingRSSKBPerCall   *float64 `json:"recording_rss_kb_per_call"`   // rss_kb_per_call − norec_rss_kb_per_call
	GoroutinesPerCall       *float64 `json:"goroutines_per_call"`
	FDsPerCall              *float64 `json:"fds_per_call"`
}

func ptr(v float64, digits int) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	r := round(v, digits)
	return &r
}

func ratio(a, b float64) *float64 {
	if a <= 0 || b <= 0 {
		return nil
	}
	return ptr(a/b, 3)
}

// peers fills the comparison keys from the run and the summary s so far.
func (r *report) peers(s latest) peerSummary {
	var p peerSummary
	var best *concStep
	for i := range r.Conc {
		if r.Conc[i].Calls == s.ConcurrentCallsMax || (s.ConcurrentCallsMax == 0 && i == 0) {
			best = &r.Conc[i]
		}
	}
	if best == nil {
		return p
	}
	p.ComparedAtCalls = best.Calls
	p.GoroutinesPerCall = ptr(best.GoroutinesPerCall, 2)
	p.FDsPerCall = ptr(best.FDsPerCall, 2)
	if r.Floor != nil && r.Floor.Calls == best.Calls {
		p.CPUVsFloor = ratio(best.CPUUsPerPacket, r.Floor.CPUUsPerPacket)
	}
	if e := r.Rtpengine; e != nil && e.Calls == best.Calls {
		p.RtpengineCPUUsPerPacket = ptr(e.CPUUsPerPacket, 3)
		p.RtpengineRSSKBPerCall = ptr(e.RSSKBPerCall, 1)
		p.RtpengineLossPct = ptr(e.LossPct, 4)
		p.CPUVsRtpengine = ratio(best.CPUUsPerPacket, e.CPUUsPerPacket)
	}
	if n := r.NoRec; n != nil && n.Calls == best.Calls && n.CPUUsPerPacket > 0 {
		p.NoRecCPUUsPerPacket = ptr(n.CPUUsPerPacket, 3)
		p.NoRecRSSKBPerCall = ptr(n.RSSKBPerCall, 1)
		p.NoRecLossPct = ptr(n.LossPct, 4)
		p.RecordingCPUUsPerPacket = ptr(best.CPUUsPerPacket-n.CPUUsPerPacket, 3)
		p.RecordingRSSKBPerCall = ptr(best.RSSKBPerCall-n.RSSKBPerCall, 1)
		if e := r.Rtpengine; e != nil && e.Calls == best.Calls {
			p.NoRecCPUVsRtpengine = ratio(n.CPUUsPerPacket, e.CPUUsPerPacket)
		}
	}
	return p
}

// printPeers writes the comparison rows and each concurrency step's resources per call.
func (r *report) printPeers(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if n := r.NoRec; n != nil {
		fmt.Fprintf(tw, "no rec %d\t%d\t%.0f%%\t%.0f\t%.2f\t%.4f\t%d\t%.4f\t%.0f\t%.1f\t%s\t\n", n.Calls, n.LegsStarted, 100*n.GatewayCPU, n.ForwardedPPS,
			n.CPUUsPerPacket, n.LossPct, n.GatewaySocketDrops, n.GenLossPct, float64(n.RSSKB)/1024, n.RSSKBPerCall, "(recording off) "+passText(n.Pass, n.Why))
	}
	if e := r.Rtpengine; e != nil {
		fmt.Fprintf(tw, "rtpengine %d\t%d\t%.0f%%\t%.0f\t%.2f\t\t%d\t%.4f\t%.0f\t%.1f\t(%s, userspace)\t\n", e.Calls, e.LegsStarted, 100*e.CPU, e.ForwardedPPS,
			e.CPUUsPerPacket, e.SocketDrops, e.LossPct, float64(e.RSSKB)/1024, e.RSSKBPerCall, e.Version)
	}
	tw.Flush()
	if len(r.Conc) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "calls\tgoroutines\tper call\tfds\tper call\theap MiB\tgenerator CPU\tload core\tlate ticks\tslots > 1 ms late\tgen drops\t")
	rows := append([]concStep{}, r.Conc...)
	if r.NoRec != nil {
		rows = append(rows, *r.NoRec)
	}
	for _, c := range rows {
		name := fmt.Sprint(c.Calls)
		if !c.Recording {
			name = "no rec " + name
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%d\t%.2f\t%.0f\t%.0f%%\t%s\t%d\t%s\t%d\t\n", name, c.Goroutines, c.GoroutinesPerCall, c.FDs, c.FDsPerCall, c.HeapMBInuse,
			100*c.Load.GeneratorCPU, pct(float64(c.Load.CoreBusy)), c.Gen.LateTicks, c.lagShare(1000), c.GenSocketDrop)
	}
	if f := r.Floor; f != nil {
		fmt.Fprintf(tw, "relay %d\t\t\t\t\t\t%.0f%%\t%s\t%d\t%s\t\t\n", f.Calls, 100*f.Load.GeneratorCPU, pct(float64(f.Load.CoreBusy)), f.Gen.LateTicks, f.lagShare(1000))
	}
	if e := r.Rtpengine; e != nil {
		fmt.Fprintf(tw, "rtpengine %d\t\t\t\t%.2f\t\t%.0f%%\t%s\t%d\t\t%d\t\n", e.Calls, e.FDsPerCall, 100*e.Load.GeneratorCPU, pct(float64(e.Load.CoreBusy)), e.Gen.LateTicks, e.GenSocketDrops)
	}
	tw.Flush()
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*v)
}

// peerRows are the summary lines of the comparison keys.
func (p peerSummary) peerRows() [][2]string {
	f := func(v *float64, format string) string {
		if v == nil {
			return "null"
		}
		return fmt.Sprintf(format, *v)
	}
	return [][2]string{
		{"compared_at_calls", fmt.Sprintf("%d (the floor, rtpengine and recording off all ran at this N)", p.ComparedAtCalls)},
		{"cpu_vs_floor / cpu_vs_rtpengine", f(p.CPUVsFloor, "%.2f×") + " / " + f(p.CPUVsRtpengine, "%.2f×")},
		{"norec_cpu_us_per_packet", f(p.NoRecCPUUsPerPacket, "%.3f") + " (gateway, recording off; " + f(p.NoRecCPUVsRtpengine, "%.2f×") + " rtpengine)"},
		{"recording_cpu_us_per_packet", f(p.RecordingCPUUsPerPacket, "%.3f") + " (recording's share; " + f(p.RecordingRSSKBPerCall, "%.1f") + " KiB/call)"},
		{"rtpengine_cpu_us_per_packet", f(p.RtpengineCPUUsPerPacket, "%.3f") + " (userspace; " + f(p.RtpengineRSSKBPerCall, "%.1f") + " KiB/call, loss " + f(p.RtpengineLossPct, "%.4f") + "%)"},
		{"goroutines_per_call / fds_per_call", f(p.GoroutinesPerCall, "%.2f") + " / " + f(p.FDsPerCall, "%.2f")},
	}
}
