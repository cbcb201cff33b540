package main

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
)

// startCrossNode starts one `switchboard serve` node of a two-node cluster on the shared
// database dbURL: shared queues and agents on (database.shared_queues), the cluster's internal
// leg on (one secret for the cluster, internal network 127.0.0.1/32, its internal address its
// own SIP UDP listener), the agent tests' lines and queue (agentConfigEdits: +15550199 straight
// into queue support, 15 s ring timeout, 5 s wrap-up), beating every 200 ms; then extra edits.
func startCrossNode(t *testing.T, bin, dbURL, node string, extra ...[2]string) *recGateway {
	t.Helper()
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, dbURL)
	edits := append([][2]string{
		{"node: test\n", "node: " + node + "\n"},
		{"database:\n", "database:\n  heartbeat_interval: 200ms\n  node_lost_after: 5s\n  shared_queues: true\n"},
		{"lines:\n", fmt.Sprintf("cluster:\n  secret: %s\n  internal_networks: [127.0.0.1/32]\n  internal_address: 127.0.0.1:%d\nlines:\n",
			testClusterSecret, sipPort)},
	}, agentConfigEdits...)
	editConfig(t, path, append(edits, extra...))
	r := &recGateway{t: t, bin: bin, dbURL: dbURL, config: path}
	r.g = &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	r.start()
	return r
}

// Issue 19, answering across nodes, through two real gateway binaries on one database with
// shared queues and one cluster secret: agent1's SIP phone (SIPp) registers ONLY with node B
// and the agent is set available; a carrier (SIPp) calls node A's line +15550199 (queue
// support). Node A's ACD picks agent1, attached to node-b, and places the internal leg to B;
// B rings the registered phone with the caller's number (the phone's scenario checks the
// Request-URI and From), the phone answers and echoes RTP; the carrier's tone reaches the phone
// and its echo comes back (RTP both ways on both nodes); the carrier's BYE on A ends the
// internal leg and B BYEs the phone. The shared database holds exactly one call, node A's
// (call.started names node-a; node B emitted nothing for the internal leg): answered in queue
// support by agent1 with ring and talk time, its ticket assigned to agent1 with the call's
// voice comment; switchboard_cluster_offers_total counts the offer sent answered on A and
// received answered on B.
func TestEndToEnd_CrossNode_CallOnNodeAAnsweredByAgentPhoneOnNodeB(t *testing.T) {
	requireSipp(t)
	bin, dbURL := binary(t), pgtest.EmptyURL(t)
	a := startCrossNode(t, bin, dbURL, "node-a")
	b := startCrossNode(t, bin, dbURL, "node-b")
	const agent, pass = "agent1@example.com", "agentpass"
	agentID := a.g.agentByEmail(agent)["id"].(float64)

	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort)}
	phone := startSipp(t, "agent_await_bye.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	var carrier *sippRun
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent phone SIPp output:\n%s", tail(phone.out.String(), 3000))
			if carrier != nil {
				t.Logf("carrier SIPp output:\n%s", tail(carrier.out.String(), 3000))
			}
		}
	})
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", agent, "-ap", pass,
		fmt.Sprintf("127.0.0.1:%d", b.g.sipPort)).wait(t, "register with node B")
	if v := b.g.metric("switchboard_sip_registrations"); v != 1 {
		t.Errorf("switchboard_sip_registrations on node B = %v, want 1", v)
	}
	if v := a.g.metric("switchboard_sip_registrations"); v != 0 {
		t.Errorf("switchboard_sip_registrations on node A = %v, want 0 (the phone registered with B only)", v)
	}
	// The registration attaches agent1 to node B, as every node's API shows.
	deadline := time.Now().Add(20 * time.Second)
	for a.g.agentByEmail(agent)["node"] != "node-b" {
		if time.Now().After(deadline) {
			t.Fatalf("node A's API does not show agent1's phone attached to node-b: %v", a.g.agentByEmail(agent))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, m := a.g.api("PUT", fmt.Sprintf("/agents/%d/state", int64(agentID)), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT /agents/%d/state through node A = %d %v", int64(agentID), code, m)
	}
	b.g.awaitAgentState(agent, 10*time.Second, func(s string) bool { return s == "available" })
	rxA0, txA0 := a.g.metric(`switchboard_rtp_packets_total{direction="rx"`), a.g.metric(`switchboard_rtp_packets_total{direction="tx"`)
	rxB0, txB0 := b.g.metric(`switchboard_rtp_packets_total{direction="rx"`), b.g.metric(`switchboard_rtp_packets_total{direction="tx"`)

	// The carrier talks 6 s after node A answered it, then hangs up.
	carrier = startSipp(t, "carrier_hangs_up.xml", map[string]string{"TALK_MS": "6000"}, "-s", "+15550199",
		"-p", strconv.Itoa(testport.FreeUDP(t)), fmt.Sprintf("127.0.0.1:%d", a.g.sipPort))
	b.g.awaitAgentState(agent, 30*time.Second, func(s string) bool { return s == "busy" })
	carrier.wait(t, "carrier")
	// The caller's BYE ended the internal leg, and node B hung up the phone.
	phone.wait(t, "agent phone on node B")

	call := a.g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["queue"] != "support" || call["agent_id"] != agentID ||
		call["from"] != "+15551234567" || call["direction"] != "inbound" {
		t.Errorf("call record %v: want an inbound call answered in queue support by agent1", call)
	}
	if tt := seconds(call, "talk_time"); tt < 2 || tt > 8 {
		t.Errorf("talk_time %v, want a few seconds (the carrier talked 6 s from its answer)", tt)
	}
	if rt, ok := call["ring_time"].(float64); !ok || rt > 10 {
		t.Errorf("ring_time %v, want the seconds the phone on node B rang (a few at most)", call["ring_time"])
	}
	a.g.checkAgentTicket(call, agentID, "", "inbound")

	// One call on the shared database, and it is node A's: node B emitted nothing for the
	// internal leg.
	var calls, started int
	var nodes string
	if err := a.query([]any{&calls, &started, &nodes}, `SELECT count(DISTINCT call_id),
		count(*) FILTER (WHERE type = 'call.started'),
		coalesce(string_agg(body->>'node', ',') FILTER (WHERE type = 'call.started'), '')
		FROM call_events`); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || started != 1 || nodes != "node-a" {
		t.Errorf("call events on the shared database: %d calls, %d call.started from nodes %q; want the one call of node-a", calls, started, nodes)
	}
	if code, m := b.g.api("GET", "/calls", ""); code != 200 || len(m["calls"].([]any)) != 1 {
		t.Errorf("GET /calls through node B = %d %v: want the one call of node A", code, m)
	}

	if v := a.g.metric(`switchboard_cluster_offers_total{direction="sent",result="answered"`); v != 1 {
		t.Errorf("node A: cluster offers sent answered = %v, want 1", v)
	}
	if v := b.g.metric(`switchboard_cluster_offers_total{direction="received",result="answered"`); v != 1 {
		t.Errorf("node B: cluster offers received answered = %v, want 1", v)
	}
	// RTP both ways on both nodes: A relays the carrier's tone to the internal leg and the echo
	// back; B relays the internal leg to the phone and the phone's echo back.
	for _, n := range []struct {
		name     string
		g        *testGateway
		rx0, tx0 float64
	}{{"A", a.g, rxA0, txA0}, {"B", b.g, rxB0, txB0}} {
		rx := n.g.metric(`switchboard_rtp_packets_total{direction="rx"`) - n.rx0
		tx := n.g.metric(`switchboard_rtp_packets_total{direction="tx"`) - n.tx0
		if rx < 200 || tx < 200 {
			t.Errorf("node %s RTP packets during the call: rx %v tx %v, want both ways (seconds of talk on two legs)", n.name, rx, tx)
		}
	}
	// After the call the agent wraps up, then is available again (B's API, shared state).
	b.g.awaitAgentState(agent, 30*time.Second, func(s string) bool { return s == "available" })
}
