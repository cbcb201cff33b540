package promtext

import (
	"math"
	"strings"
	"testing"
)

const exposition = `# HELP switchboard_rtp_packets_total RTP packets.
# TYPE switchboard_rtp_packets_total counter
switchboard_rtp_packets_total{direction="rx"} 1500
switchboard_rtp_packets_total{direction="tx"} 1490
switchboard_rtp_packets_lost_total 3
weird{a="x\"y",b="1,2"} 7 1700000000000
lag_bucket{le="0.01"} 10
lag_bucket{le="0.1"} 90
lag_bucket{le="1"} 100
lag_bucket{le="+Inf"} 100
lag_sum 12.5
lag_count 100
`

func TestParse_CountersLabelsEscapesTimestamps(t *testing.T) {
	sc, err := Parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Sum("switchboard_rtp_packets_total", map[string]string{"direction": "rx"}); got != 1500 {
		t.Errorf("rx = %v", got)
	}
	if got := sc.Sum("switchboard_rtp_packets_total", nil); got != 2990 {
		t.Errorf("rx+tx = %v", got)
	}
	if got := sc.Sum("weird", map[string]string{"a": `x"y`, "b": "1,2"}); got != 7 {
		t.Errorf("escaped label value: %v", got)
	}
	if _, err := Parse(strings.NewReader(`x{a="1} 2`)); err == nil {
		t.Error("unterminated label parsed")
	}
}

// Quantiles interpolate inside the bucket holding the rank, as histogram_quantile does.
func TestQuantile_InterpolatesLikePromQL(t *testing.T) {
	sc, _ := Parse(strings.NewReader(exposition))
	h := sc.Histogram("lag", nil)
	if len(h) != 4 || !math.IsInf(h[3].UpperBound, 1) {
		t.Fatalf("buckets %v", h)
	}
	// rank 50 lies in (0.01, 0.1] holding ranks 10..90: 0.01 + 0.09*40/80.
	if got := Quantile(0.5, h); math.Abs(got-0.055) > 1e-9 {
		t.Errorf("p50 = %v, want 0.055", got)
	}
	// rank 99 lies in (0.1, 1] holding 90..100.
	if got := Quantile(0.99, h); math.Abs(got-0.91) > 1e-9 {
		t.Errorf("p99 = %v, want 0.91", got)
	}
	// The first bucket starts at 0.
	if got := Quantile(0.05, h); math.Abs(got-0.005) > 1e-9 {
		t.Errorf("p5 = %v, want 0.005", got)
	}
	if got := Quantile(0.5, nil); !math.IsNaN(got) {
		t.Errorf("empty histogram: %v", got)
	}
}

// Differencing two scrapes leaves the observations made in between.
func TestDiff_SubtractsTheEarlierScrape(t *testing.T) {
	before := []Bucket{{0.01, 10}, {0.1, 20}, {math.Inf(1), 20}}
	after := []Bucket{{0.01, 10}, {0.1, 120}, {math.Inf(1), 120}}
	d := Diff(after, before)
	if d[0].Count != 0 || d[1].Count != 100 || d[2].Count != 100 {
		t.Fatalf("diff %v", d)
	}
	if got := Quantile(0.5, d); math.Abs(got-0.055) > 1e-9 {
		t.Errorf("p50 of the difference = %v", got)
	}
	// Everything in +Inf: the highest finite bound is all that can be said.
	if got := Quantile(0.5, []Bucket{{1, 0}, {math.Inf(1), 5}}); got != 1 {
		t.Errorf("p50 in +Inf = %v, want 1", got)
	}
}
