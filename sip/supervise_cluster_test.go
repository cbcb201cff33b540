package sip

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ivr/acdpg"
	"github.com/switchboard-voice/switchboard/media"
)

// superviseCluster is two nodes sharing the ACD's state on a real PostgreSQL (acdpg), as a
// cluster's nodes do: node a's line queues its calls in "support"; agent 7 is attached to
// agentNode (its page: a test phone, an endpoint pair on loopback, answers the offer there —
// on node b over the internal leg); a SIPp caller on node a plays a 440 Hz tone; the
// supervisor's endpoint (their page's softphone) is on node b, whose page and API drive a
// ClusterACD over b's ACD.
type superviseCluster struct {
	a, b       *testGateway
	acdA, acdB *ivr.ACD
	bACD       ClusterACD
	agent, sup *testAgent
	caller     *sippProc
	callID     string
	toCaller   *pcmTap // what node a sends the caller
}

const callerHz, agentHz, supHz = 440, 1400, 1000

func newSuperviseCluster(t *testing.T, agentNode string) *superviseCluster {
	t.Helper()
	return newSuperviseClusterWith(t, agentNode, nil)
}

// newSuperviseClusterWith is newSuperviseCluster with more of node a's options (aOpt, nil:
// none), e.g. a trunk to an outside party.
func newSuperviseClusterWith(t *testing.T, agentNode string, aOpt func(*Options)) *superviseCluster {
	t.Helper()
	return newSuperviseClusterCaller(t, agentNode, aOpt, "uac_wait_bye.xml")
}

// newSuperviseClusterCaller is newSuperviseClusterWith whose SIPp caller runs scenario (with
// args): uac_wait_bye.xml waits for the gateway's BYE.
func newSuperviseClusterCaller(t *testing.T, agentNode string, aOpt func(*Options), scenario string, args ...string) *superviseCluster {
	t.Helper()
	requireSipp(t)
	pool := pgtest.Pool(t)
	dir := t.TempDir()
	writeULawWAV(t, filepath.Join(dir, "tone.wav"), 2)
	sc := &superviseCluster{}
	eps := agentMedia(t, 2)
	sc.agent, sc.sup = eps[0], eps[1]
	t.Cleanup(sc.agent.hangup)

	agents := []ivr.Agent{{ID: 7, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}},
		{ID: 8, Email: "agent2@example.com", Name: "Agent Two", Queues: []string{"support"}}}
	newACD := func(node string) *ivr.ACD {
		st, err := acdpg.New(acdpg.Options{Pool: pool, ListenRetry: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		acd, err := ivr.NewACD(ivr.ACDOptions{Queues: []ivr.Queue{{Name: "support", RingTimeout: 10 * time.Second}},
			Agents: agents, Shared: st, Node: node, Recheck: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(acd.Close)
		return acd
	}
	sc.acdA, sc.acdB = newACD("a"), newACD("b")
	eng, err := ivr.New(ivr.Options{ACD: sc.acdA})
	if err != nil {
		t.Fatal(err)
	}

	var addrs sync.Map // node → internal address, known once both listen
	resolve := func(_ context.Context, node string) (string, error) {
		if v, ok := addrs.Load(node); ok {
			return v.(string), nil
		}
		return "", errors.New("unknown node")
	}
	sc.b = startGateway(t, func(o *Options) {
		freePorts(t, o)
		o.Cluster = clusterOpts("b", resolve)
		o.Cluster.Control = sc.acdB
	})
	sc.a = startGateway(t, func(o *Options) {
		freePorts(t, o)
		o.Cluster = clusterOpts("a", resolve)
		o.Cluster.Control = sc.acdA
		o.Lines = []Line{{Number: "+15550197", Target: &IVRTarget{IVR: eng,
			Line: ivr.Line{Number: "+15550197", Target: ivr.QueueTarget("support")}}}}
		if aOpt != nil {
			aOpt(o)
		}
	})
	addrs.Store("a", fmt.Sprintf("127.0.0.1:%d", sc.a.port()))
	addrs.Store("b", fmt.Sprintf("127.0.0.1:%d", sc.b.port()))
	sc.bACD = ClusterACD{ACD: sc.acdB, SIP: sc.b.s}

	// Agent 7's page answers on agentNode with the test phone; nothing else answers.
	var answered atomic.Bool
	page := ivr.AgentDialerFunc(func(_ context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
		if o.AgentID != 7 || !answered.CompareAndSwap(false, true) {
			return nil, ivr.ErrNoAnswer
		}
		return sc.agent.leg, nil
	})
	nobody := ivr.AgentDialerFunc(func(context.Context, ivr.Offer) (ivr.AgentLeg, error) { return nil, ivr.ErrNoAnswer })
	agentACD := sc.acdA
	if agentNode == "a" {
		sc.acdA.SetDialer(sc.a.s.ClusterDialer(page))
		sc.acdB.SetDialer(sc.b.s.ClusterDialer(nobody))
	} else {
		sc.acdA.SetDialer(sc.a.s.ClusterDialer(nobody))
		sc.acdB.SetDialer(sc.b.s.ClusterDialer(page))
		agentACD = sc.acdB
	}
	agentACD.AgentAttached(7, ivr.ViaPage)
	if _, err := agentACD.SetState(7, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}

	sc.caller = startSipp(t, dir, scenario, append([]string{fmt.Sprintf("127.0.0.1:%d", sc.a.port()), "-s", "15550197",
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1"}, args...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caller SIPp output:\n%s", tail(sc.caller.out.String(), 3000))
		}
	})
	// Answered, and the cluster's shared state says so to node b: agent 7 on the call of
	// node a.
	if !waitFor(30*time.Second, func() bool {
		for _, st := range sc.acdB.Agents() {
			if st.ID == 7 && st.State == ivr.StateBusy && st.CallID != "" && st.CallNode == "a" {
				if id, ok := sc.acdA.CallAgent(st.CallID); ok && id == 7 {
					sc.callID = st.CallID
				}
			}
		}
		return sc.callID != ""
	}) {
		t.Fatalf("agent 7 (on node %s) never answered node a's call: %+v", agentNode, sc.acdB.Agents())
	}
	c := sc.a.s.callByID(sc.callID)
	if c == nil {
		t.Fatal("node a's call is gone")
	}
	sc.toCaller = tapPCM(c.Endpoint(), media.Sent)
	return sc
}

// legsOf counts the calls of a supervisor's leg on g.
func legsOf(g *testGateway) int {
	n := 0
	for _, c := range g.callsNow() {
		if c.superviseOf != "" {
			n++
		}
	}
	return n
}

// superviseAcross runs the supervision checks of a superviseCluster: the supervisor on node b
// monitors, whispers and barges into node a's call, then stops; a second supervision ends
// with the call. Tones: the caller 440 Hz, agent 7 1400 Hz, the supervisor 1000 Hz.
func superviseAcross(t *testing.T, sc *superviseCluster) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	playTone(ctx, &wg, sc.agent.phone, agentHz)
	playTone(ctx, &wg, sc.sup.phone, supHz)
	agentHears, supHears := tapPCM(sc.agent.phone, media.Received), tapPCM(sc.sup.phone, media.Received)

	// A call no agent is on anywhere: 404 as on one node.
	if _, err := sc.bACD.Supervise(uuid.NewString(), sc.sup.leg.Endpoint, ivr.SuperviseMonitor); !errors.Is(err, ivr.ErrNoCall) {
		t.Fatalf("supervise an unknown call: %v, want ErrNoCall", err)
	}

	sv, err := sc.bACD.Supervise(sc.callID, sc.sup.leg.Endpoint, ivr.SuperviseMonitor)
	if err != nil {
		t.Fatalf("supervise node a's call from node b: %v", err)
	}
	if sv.CallID() != sc.callID || sv.AgentID() != 7 || sv.Mode() != ivr.SuperviseMonitor {
		t.Errorf("supervision %s agent %d mode %s, want %s, 7, monitor", sv.CallID(), sv.AgentID(), sv.Mode(), sc.callID)
	}
	if a, b := legsOf(sc.a), legsOf(sc.b); a != 1 || b != 1 {
		t.Errorf("supervisor's legs: node a %d, node b %d, want 1 and 1", a, b)
	}
	expectTones(t, "monitor: supervisor", supHears.listen(t, 25), []float64{callerHz, agentHz}, []float64{supHz})
	expectTones(t, "monitor: caller", sc.toCaller.listen(t, 25), []float64{agentHz}, []float64{supHz})
	expectTones(t, "monitor: agent", agentHears.listen(t, 25), []float64{callerHz}, []float64{supHz})

	if err := sv.SetMode(ivr.SuperviseWhisper); err != nil {
		t.Fatal(err)
	}
	if sv.Mode() != ivr.SuperviseWhisper {
		t.Errorf("mode %s after the change, want whisper", sv.Mode())
	}
	expectTones(t, "whisper: agent", agentHears.listen(t, 25), []float64{callerHz, supHz}, nil)
	expectTones(t, "whisper: caller", sc.toCaller.listen(t, 25), []float64{agentHz}, []float64{supHz})
	expectTones(t, "whisper: supervisor", supHears.listen(t, 25), []float64{callerHz, agentHz}, []float64{supHz})

	if err := sv.SetMode(ivr.SuperviseBarge); err != nil {
		t.Fatal(err)
	}
	expectTones(t, "barge: caller", sc.toCaller.listen(t, 25), []float64{agentHz, supHz}, nil)
	expectTones(t, "barge: agent", agentHears.listen(t, 25), []float64{callerHz, supHz}, nil)

	sv.Stop()
	expectTones(t, "stopped: caller", sc.toCaller.listen(t, 25), []float64{agentHz}, []float64{supHz})
	expectTones(t, "stopped: agent", agentHears.listen(t, 25), []float64{callerHz}, []float64{supHz})
	if !waitFor(10*time.Second, func() bool { return legsOf(sc.a) == 0 && legsOf(sc.b) == 0 }) {
		t.Errorf("supervisor's legs left after Stop: node a %d, node b %d", legsOf(sc.a), legsOf(sc.b))
	}
	if err := sv.SetMode(ivr.SuperviseBarge); !errors.Is(err, ivr.ErrNoCall) {
		t.Errorf("mode change of a stopped supervision: %v, want ErrNoCall", err)
	}

	// Racing a supervision's own operations, looped (a deadlock between the supervisor's
	// node's Stop, its mode changes and the call's node's end of the leg hangs here): each
	// round ends with both nodes' legs gone.
	for i := range 4 {
		rs, err := sc.bACD.Supervise(sc.callID, sc.sup.leg.Endpoint, ivr.SuperviseMonitor)
		if err != nil {
			t.Fatalf("round %d: supervise: %v", i, err)
		}
		var race sync.WaitGroup
		for _, m := range []ivr.SuperviseMode{ivr.SuperviseWhisper, ivr.SuperviseBarge, ivr.SuperviseMonitor} {
			race.Add(1)
			go func() {
				defer race.Done()
				_ = rs.SetMode(m) // nil, or ErrNoCall once stopped
			}()
		}
		race.Add(1)
		go func() {
			defer race.Done()
			rs.Stop()
		}()
		raced := make(chan struct{})
		go func() { race.Wait(); close(raced) }()
		select {
		case <-raced:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Stop and mode changes did not return within 30 s", i)
		}
		if !waitFor(10*time.Second, func() bool { return legsOf(sc.a) == 0 && legsOf(sc.b) == 0 }) {
			t.Fatalf("round %d: supervisor's legs left: node a %d, node b %d", i, legsOf(sc.a), legsOf(sc.b))
		}
	}

	// Again, until the call ends: the call's node ends the supervision on both nodes.
	sv2, err := sc.bACD.Supervise(sc.callID, sc.sup.leg.Endpoint, ivr.SuperviseMonitor)
	if err != nil {
		t.Fatalf("supervise again: %v", err)
	}
	expectTones(t, "monitor again: supervisor", supHears.listen(t, 25), []float64{callerHz, agentHz}, []float64{supHz})
	if c := sc.a.s.callByID(sc.callID); c != nil {
		c.Hangup()
	}
	sc.caller.wait(t)
	select {
	case <-sv2.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the supervision on node b outlived node a's call")
	}
	if !waitFor(20*time.Second, func() bool { return sc.a.s.ActiveCalls() == 0 && sc.b.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: a %d, b %d", sc.a.s.ActiveCalls(), sc.b.s.ActiveCalls())
	}
}

// TestCrossNode_SupervisorOnNodeBSupervisesCallOfAgentOnNodeA: the supervisor's page is on
// node b; the call and agent 7 are on node a (b holds nothing of the call). b's ClusterACD
// finds the call's node in the cluster's shared agent states and places the supervisor's leg
// to a over the internal leg; a mixes it into its call. Monitoring, the supervisor hears the
// caller and the agent and nobody hears the supervisor; whispering, the agent hears the
// supervisor and the caller does not (what node a sends the caller); barging, both do; after
// Stop nobody does and both nodes let go of the supervisor's leg; a second supervision ends
// on both nodes when the call ends. A call no agent is on answers ErrNoCall. Before, b's ACD
// answered ErrNoCall for a's call (the API's 404): supervision reached only calls of the
// supervisor's node.
func TestCrossNode_SupervisorOnNodeBSupervisesCallOfAgentOnNodeA(t *testing.T) {
	superviseAcross(t, newSuperviseCluster(t, "a"))
}

// TestCrossNode_SupervisorAndAgentOnNodeBSuperviseCallOfNodeA: agent 7's page is on node b
// with the supervisor's, and answered node a's call over the internal leg (b relays the call;
// its mix and the caller stay on a). The supervisor's leg still goes to a, whose mix reaches
// the agent through the internal leg: the same checks as above — the whisper crosses to b's
// agent and never reaches the caller on a. Before, b's ACD answered ErrNoCall (b only relays
// the call).
func TestCrossNode_SupervisorAndAgentOnNodeBSuperviseCallOfNodeA(t *testing.T) {
	superviseAcross(t, newSuperviseCluster(t, "b"))
}

// TestCrossNode_SupervisorLegRefusedUnlessSignedAndValid: a supervisor's leg is an internal
// INVITE, so the call's node checks it as it checks an offer to an agent — a wrong secret, a
// source outside cluster.internal_networks, or an unknown mode (signed right) get 403 and a
// security event internal_refused, and nothing joins a call. A well-signed leg for a call no
// agent is on here is admitted and refused as the ACD refuses it: 404 naming no_call in
// X-Switchboard-Error (what the supervisor's node answers its API with). Before, a signed
// supervisor's leg was a malformed offer (no agent): 403.
func TestCrossNode_SupervisorLegRefusedUnlessSignedAndValid(t *testing.T) {
	acd, err := ivr.NewACD(ivr.ACDOptions{Queues: []ivr.Queue{{Name: "support"}},
		Agents: []ivr.Agent{{ID: 7, Name: "Agent Seven", Queues: []string{"support"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	a := startGateway(t, func(o *Options) {
		freePorts(t, o)
		o.Cluster = clusterOpts("a", nil)
		o.Cluster.Control = acd
	})
	offer := func(mode string) string {
		return fmt.Sprintf("call=9a3c5a52-8c1e-4a43-9b36-1f6f1d3c0e11&node=b&sup=%s&ts=%d&v=1", mode, time.Now().Unix())
	}
	cases := []struct {
		name, src, v string
		secret       []byte
	}{
		{"wrong secret", "127.0.0.1", offer("monitor"), []byte("not-the-cluster-secret-at-all-000000")},
		{"outside internal_networks", "127.0.0.2", offer("monitor"), testClusterSecret},
		{"unknown mode", "127.0.0.1", offer("spy"), testClusterSecret},
	}
	for i, tc := range cases {
		if res := forgedInvite(t, tc.src, a.port(), fmt.Sprintf("sup-forged-%d@x", i), tc.v, tc.secret); statusCode(res) != 403 {
			t.Errorf("%s: got %q, want 403", tc.name, firstLine(res))
		}
	}
	if v := a.counter("switchboard_security_events_total", "type", "internal_refused"); v != float64(len(cases)) {
		t.Errorf("internal_refused = %v, want %d", v, len(cases))
	}
	res := forgedInvite(t, "127.0.0.1", a.port(), "sup-good@x", offer("whisper"), testClusterSecret)
	if statusCode(res) != 404 || !strings.Contains(res, hdrError+": no_call") {
		t.Errorf("a well-signed supervisor's leg for no call: got %q, want 404 with %s: no_call", res, hdrError)
	}
	if !waitFor(10*time.Second, func() bool { return a.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: %d", a.s.ActiveCalls())
	}
}
