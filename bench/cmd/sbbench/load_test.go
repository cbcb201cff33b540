package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bench/rtpgen"
)

func TestCPUListParsesTasksetLists(t *testing.T) {
	got, err := cpuList("0,2-4, 7")
	if err != nil || !reflect.DeepEqual(got, map[int]bool{0: true, 2: true, 3: true, 4: true, 7: true}) {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"x", "3-1", "-1", "1-"} {
		if got, err := cpuList(bad); err == nil {
			t.Errorf("cpuList(%q) = %v, want an error", bad, got)
		}
	}
}

// The comparison keys are taken at the best step's N only: a floor or peer run at another N
// leaves its key null rather than a ratio of two different loads.
func TestPeersCompareAtTheBestStepOnly(t *testing.T) {
	r := report{
		Conc: []concStep{
			{Calls: 100, Pass: true, CPUUsPerPacket: 20, RSSKBPerCall: 300, Recording: true},
			{Calls: 250, Pass: true, CPUUsPerPacket: 15, RSSKBPerCall: 200, Recording: true, GoroutinesPerCall: 4, FDsPerCall: 4},
			{Calls: 500, Pass: false, CPUUsPerPacket: 12, Recording: true},
		},
		Floor:     &floorStep{Calls: 250, CPUUsPerPacket: 10},
		Rtpengine: &peerStep{Calls: 250, CPUUsPerPacket: 12, RSSKBPerCall: 45, LossPct: 0},
		NoRec:     &concStep{Calls: 250, CPUUsPerPacket: 11, RSSKBPerCall: 80},
	}
	r.summarize()
	p := r.Summary.peerSummary
	if p.ComparedAtCalls != 250 || r.Summary.ConcurrentCallsMax != 250 {
		t.Fatalf("compared at %d, max %d", p.ComparedAtCalls, r.Summary.ConcurrentCallsMax)
	}
	for name, c := range map[string]struct {
		got  *float64
		want float64
	}{
		"cpu_vs_floor": {p.CPUVsFloor, 1.5}, "cpu_vs_rtpengine": {p.CPUVsRtpengine, 1.25},
		"norec_cpu_vs_rtpengine": {p.NoRecCPUVsRtpengine, 0.917}, "recording_cpu_us_per_packet": {p.RecordingCPUUsPerPacket, 4},
		"recording_rss_kb_per_call": {p.RecordingRSSKBPerCall, 120}, "rtpengine_rss_kb_per_call": {p.RtpengineRSSKBPerCall, 45},
		"goroutines_per_call": {p.GoroutinesPerCall, 4},
	} {
		if c.got == nil || *c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
	r.Floor.Calls, r.Rtpengine = 100, nil
	r.summarize()
	if p := r.Summary.peerSummary; p.CPUVsFloor != nil || p.RtpengineCPUUsPerPacket != nil || p.CPUVsRtpengine != nil {
		t.Fatalf("keys from another N or an absent peer: %+v", p)
	}
}

// A concurrency step whose generator did not keep up measured the generator: it sent too few of
// the packets due in the window, or caught up in bursts after slots that began late (the
// 20:16 run's 1,500-call step had thousands). One that kept up is a reading.
func TestGenLimitedFlagsAGeneratorThatFellBehind(t *testing.T) {
	const calls, win = 1500, 15 * time.Second
	due := uint64(2 * calls * 15 * 50) // 2 legs × 50 packets/s × 15 s
	for _, c := range []struct {
		name       string
		sent, late uint64
		want       bool
	}{
		{"kept up", due, 0, false},
		{"a few late slots", due, 100, false},
		{"sent 97% of the due packets", due * 97 / 100, 0, true},
		{"caught up after late slots", due, 6624, true},
		{"just over 1% of 15,000 slots late", due, 151, true},
	} {
		if got, why := genLimited(calls, win, c.sent, c.late); got != c.want || got != (why != "") {
			t.Errorf("%s: genLimited = %v %q, want %v", c.name, got, why, c.want)
		}
	}
	if got, _ := genLimited(0, win, 0, 0); got {
		t.Error("no calls: limited")
	}
}

// A window's slot lags are the histogram's difference between its two readings, and the
// slots over a bound are those of the buckets above it.
func TestGenWindowCountsTheWindowsSlotsOverABound(t *testing.T) {
	a := rtpgen.Stats{SlotLagHist: []uint64{10, 0, 0, 0, 5, 1, 0, 0, 0, 0, 0, 0}, Stalls: 1, SenderWaitMs: 2, AtMs: 1000}
	b := rtpgen.Stats{SlotLagHist: []uint64{900, 10, 0, 0, 15, 4, 2, 1, 0, 1, 0, 1}, Stalls: 3, SenderWaitMs: 5.5, AtMs: 11000}
	w := genWin(a, b)
	if want := []uint64{890, 10, 0, 0, 10, 3, 2, 1, 0, 1, 0, 1}; !reflect.DeepEqual(w.LagHist, want) {
		t.Fatalf("window histogram %v, want %v", w.LagHist, want)
	}
	if w.Stalls != 2 || w.SenderWaitMs != 3.5 || w.FromMs != 1000 || w.ToMs != 11000 {
		t.Errorf("window %+v", w)
	}
	for _, c := range []struct {
		us        int64
		over, all uint64
		share     string
	}{{1000, 8, 918, "8 of 918"}, {5000, 3, 918, "3 of 918"}, {20000, 2, 918, "2 of 918"}, {100000, 1, 918, "1 of 918"}} {
		if over, all := w.lagOver(c.us); over != c.over || all != c.all || w.lagShare(c.us) != c.share {
			t.Errorf("over %d µs: %d of %d (%q), want %d of %d", c.us, over, all, w.lagShare(c.us), c.over, c.all)
		}
	}
	if s := (genWindow{}).lagShare(1000); s != "-" {
		t.Errorf("no histogram: %q", s)
	}
}
