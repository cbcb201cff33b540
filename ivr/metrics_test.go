package ivr

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A fresh ACD exposes every configured queue's calls waiting and wait histogram, and every
// agent state, at 0 (docs/metrics.md): a queue no call has entered yet reads 0, not "no data".
func TestACDMetricsExistForEveryQueueAndStateFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	acd, err := NewACD(ACDOptions{Queues: []Queue{{Name: "support"}, {Name: "sales"}}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(acd.m.waiting); n != 2 {
		t.Errorf("%d calls-waiting series, want 2", n)
	}
	if n := testutil.CollectAndCount(acd.m.wait); n != 2 {
		t.Errorf("%d wait histograms, want 2 (one per queue)", n)
	}
	if n := testutil.CollectAndCount(acd.m.agents); n != len(agentStates) {
		t.Errorf("%d agent state series, want %d", n, len(agentStates))
	}
}
