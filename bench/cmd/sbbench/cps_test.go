package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// One pass rule for the single gateway's CPS steps and the cluster's (cpsStep calls it for
// both): every call answered, a ticket each, the rate placed, event lag p99 ≤ 1 s — and a
// step whose lag was not measured does not pass on it.
func TestCPSVerdictPassesOnlyWithEveryTicketAndLagP99WithinOneSecond(t *testing.T) {
	good := cpsStep{Rate: 50, Placed: 250, Successful: 250, Tickets: 250, AchievedCPS: 50, LagP50MS: 40, LagP99MS: 900}
	if pass, why := cpsVerdict(good, 250, nil); !pass {
		t.Fatalf("a clean step failed: %s", why)
	}
	for _, c := range []struct {
		name string
		edit func(*cpsStep)
		err  error
		want string
	}{
		{"sipp error", func(*cpsStep) {}, errors.New("sipp (carrier): exit status 255"), "exit status 255"},
		{"a failed call", func(s *cpsStep) { s.Failed, s.Successful = 1, 249 }, nil, "1 of 250 calls failed"},
		{"a missing ticket", func(s *cpsStep) { s.Tickets = 249 }, nil, "249 tickets for 250 calls"},
		{"rate not placed", func(s *cpsStep) { s.AchievedCPS = 40 }, nil, "placed only 40"},
		{"lag p99 over 1 s", func(s *cpsStep) { s.LagP99MS = 1001 }, nil, "event lag p99 1001 ms over 1000 ms"},
		{"lag not measured", func(s *cpsStep) { s.LagP99MS = fnum(nan) }, nil, "no event lag measured"},
	} {
		s := good
		c.edit(&s)
		pass, why := cpsVerdict(s, 250, c.err)
		if pass || !strings.Contains(why, c.want) {
			t.Errorf("%s: pass %v, why %q; want a failure saying %q", c.name, pass, why, c.want)
		}
	}
}

// latest.json's cluster_cps_max: null when the cluster's CPS steps did not run, 0 when none
// passed, else the highest passing rate — and cps_max stays the single gateway's.
func TestSummaryClusterCPSMaxNullWhenNotRunZeroWhenNonePassed(t *testing.T) {
	key := func(r *report) string {
		r.summarize()
		b, err := json.Marshal(r.Summary)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		v, ok := m["cluster_cps_max"]
		if !ok {
			t.Fatalf("latest.json has no cluster_cps_max: %s", b)
		}
		if m["cps_max"] != float64(100) {
			t.Errorf("cps_max = %v, want the single gateway's 100", m["cps_max"])
		}
		b, _ = json.Marshal(v)
		return string(b)
	}
	single := []cpsStep{{Rate: 50, Pass: true}, {Rate: 100, Pass: true}, {Rate: 150}}
	if got := key(&report{CPS: single}); got != "null" {
		t.Errorf("not run: cluster_cps_max = %s, want null", got)
	}
	if got := key(&report{CPS: single, ClusterCPS: []cpsStep{{Rate: 50, Why: "cluster not ready"}}}); got != "0" {
		t.Errorf("none passed: cluster_cps_max = %s, want 0", got)
	}
	if got := key(&report{CPS: single, ClusterCPS: []cpsStep{{Rate: 50, Pass: true}, {Rate: 100, Pass: true}, {Rate: 150, Why: "lag"}}}); got != "100" {
		t.Errorf("50 and 100 passed: cluster_cps_max = %s, want 100", got)
	}
}
