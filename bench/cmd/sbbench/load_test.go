package main

import (
	"reflect"
	"testing"
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
