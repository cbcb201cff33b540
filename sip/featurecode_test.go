package sip

import (
	"fmt"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
)

// An agent's SIP phone sets the agent's queue state by dialling a feature code: SIPp, as
// agent1's phone, dials *60, *61 and *62 with digest auth (401, then the agent's credentials)
// and the real ACD has the agent available, away, then offline; each INVITE gets 603 naming
// the state, and no call is made of it. A wrong password changes nothing and counts as an
// auth_failure.
func TestSIPPhoneFeatureCodesSetAgentState(t *testing.T) {
	requireSipp(t)
	acd, err := ivr.NewACD(ivr.ACDOptions{Queues: []ivr.Queue{{Name: "support"}},
		Agents: []ivr.Agent{{ID: 7, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	g := startRegistrar(t, func(o *Options) {
		o.Registrar.DigestAlgorithms = sippDigest()
		o.AgentStates = acd
	})
	dir := t.TempDir()
	dial := func(code, password string) *sippProc { return dialFeatureCode(t, g, dir, code, password) }
	state := func() ivr.AgentState {
		st, err := acd.Agent(7)
		if err != nil {
			t.Fatal(err)
		}
		return st.State
	}
	if st := state(); st != ivr.StateOffline {
		t.Fatalf("agent starts %s, want offline", st)
	}
	for _, c := range []struct {
		code string
		want ivr.AgentState
	}{{FeatureAvailable, ivr.StateAvailable}, {FeatureAway, ivr.StateAway}, {FeatureOffline, ivr.StateOffline}} {
		p := dial(c.code, "secret")
		p.wait(t)
		if st := state(); st != c.want {
			t.Errorf("after %s the agent is %s, want %s", c.code, st, c.want)
		}
	}
	if v := g.counter("switchboard_calls_total", "direction", "inbound", "outcome", "failed"); v != 0 {
		t.Errorf("feature codes counted as calls: %v", v)
	}
	if v := g.counter("switchboard_sip_responses_total", "code", "603"); v != 3 {
		t.Errorf("603 responses = %v, want 3", v)
	}

	// A wrong password: 403 (the scenario expects 603 and fails), the state stays.
	bad := dial(FeatureAvailable, "wrong")
	select {
	case err := <-bad.done:
		if err == nil || !strings.Contains(bad.out.String(), "403") {
			t.Errorf("a wrong password: sipp %v, want it refused with 403\n%s", err, tail(bad.out.String(), 2000))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sipp with a wrong password did not exit")
	}
	if st := state(); st != ivr.StateOffline {
		t.Errorf("a wrong password set the agent %s", st)
	}
	if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != 1 {
		t.Errorf("auth_failure = %v, want 1", v)
	}
}

// dialFeatureCode starts SIPp as agent1's phone dialling code (uac_featurecode.xml: it
// expects the 401 challenge, then a 603).
func dialFeatureCode(t *testing.T, g *testGateway, dir, code, password string) *sippProc {
	t.Helper()
	// SIPp's digest uri is sip:<remote_ip>:<remote_port> unless -auth_uri says otherwise;
	// the gateway wants the Request-URI (RFC 7616 §3.4.6).
	return startSipp(t, dir, "uac_featurecode.xml", fmt.Sprintf("127.0.0.1:%d", g.port()), "-s", code,
		"-au", "agent1", "-ap", password, "-auth_uri", fmt.Sprintf("%s@127.0.0.1:%d", code, g.port()),
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")
}

// The feature codes are configurable (Options.FeatureCodes, sip.feature_codes): with #71
// for available — dialled as %2371, as a phone escapes '#' in a Request-URI (RFC 3261
// §19.1.2) — and *72 for away, SIPp as agent1's phone sets the agent available, then away;
// the default *60 is then no feature code: it gets no 603 and leaves the state as it was.
// New refuses codes that are not keypad digits of 2 to 8 or that two states share.
func TestSIPPhoneFeatureCodesConfigured(t *testing.T) {
	requireSipp(t)
	acd, err := ivr.NewACD(ivr.ACDOptions{Queues: []ivr.Queue{{Name: "support"}},
		Agents: []ivr.Agent{{ID: 7, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	g := startRegistrar(t, func(o *Options) {
		o.Registrar.DigestAlgorithms = sippDigest()
		o.AgentStates = acd
		o.FeatureCodes = FeatureCodes{Available: "#71", Away: "*72"} // offline keeps *62
	})
	dir := t.TempDir()
	state := func() ivr.AgentState {
		st, err := acd.Agent(7)
		if err != nil {
			t.Fatal(err)
		}
		return st.State
	}
	for _, c := range []struct {
		code string
		want ivr.AgentState
	}{{"%2371", ivr.StateAvailable}, {"*72", ivr.StateAway}} {
		p := dialFeatureCode(t, g, dir, c.code, "secret")
		p.wait(t)
		if st := state(); st != c.want {
			t.Errorf("after %s the agent is %s, want %s", c.code, st, c.want)
		}
	}
	old := dialFeatureCode(t, g, dir, FeatureAvailable, "secret")
	select {
	case err := <-old.done:
		if err == nil {
			t.Errorf("the default %s still a feature code: sipp %v\n%s", FeatureAvailable, err, tail(old.out.String(), 2000))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sipp dialling the old code did not exit")
	}
	if st := state(); st != ivr.StateAway {
		t.Errorf("the old code set the agent %s", st)
	}
	if v := g.counter("switchboard_sip_responses_total", "code", "603"); v != 2 {
		t.Errorf("603 responses = %v, want 2", v)
	}

	for _, bad := range []FeatureCodes{{Available: "*"}, {Available: "*60*60*60"}, {Away: "*6a"}, {Away: "*60"}, {Offline: "1"}} {
		if _, err := New(Options{UDPAddr: "127.0.0.1:0", FeatureCodes: bad}); err == nil {
			t.Errorf("New took feature codes %+v", bad)
		}
	}
}
