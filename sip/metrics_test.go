package sip

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every SIP series of a known label value exists at 0 from construction (docs/metrics.md):
// both directions by every outcome, every configured trunk's calls, every security event
// type sip counts, the known methods, the gateway's own response codes and the orphan BYE
// results. A dashboard or an alert on a fresh gateway reads 0, not "no data".
func TestMetricsKnownLabelValuesExistAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, []string{"carrier", "backup"}, func() float64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		c    prometheus.Collector
		want int
	}{
		{m.callsActive, 2},
		{m.callsTotal, 2 * 8}, // seven outcomes (callback among them) and other
		{m.trunkCalls, 2 * 2 * 8},
		{m.securityEvent, len(securityTypes)},
		{m.requests, len(knownMethods) + 1},
		{m.responses, len(sentCodes)},
		{m.orphanByes, 3},
	}
	for _, c := range cases {
		if n := testutil.CollectAndCount(c.c); n != c.want {
			t.Errorf("%T: %d series at start, want %d", c.c, n, c.want)
		}
	}
	if v := testutil.ToFloat64(m.trunkCalls.WithLabelValues("backup", "inbound", "rejected")); v != 0 {
		t.Errorf("trunk series = %v, want 0", v)
	}
	m.countEnd("inbound", "carrier", "answered")
	m.countEnd("outbound", "", "strange")
	if v := testutil.ToFloat64(m.trunkCalls.WithLabelValues("carrier", "inbound", "answered")); v != 1 {
		t.Errorf("switchboard_trunk_calls_total{carrier,inbound,answered} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.callsTotal.WithLabelValues("outbound", "other")); v != 1 {
		t.Errorf("switchboard_calls_total{outbound,other} = %v, want 1", v)
	}
	if n := testutil.CollectAndCount(m.trunkCalls); n != 2*2*8 {
		t.Errorf("a call over no trunk added a trunk series: %d", n)
	}
}
