package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
)

// startClusterNode starts one `switchboard serve` node named node on the shared database
// dbURL, beating every 200 ms and counting another node lost after 1 s without a beat.
func startClusterNode(t *testing.T, bin, dbURL, node string) *recGateway {
	t.Helper()
	return startClusterNodeWith(t, bin, dbURL, node, "")
}

// startClusterNodeWith is startClusterNode with extra lines (indented) in the database section,
// e.g. "  shared_queues: true\n".
func startClusterNodeWith(t *testing.T, bin, dbURL, node, database string) *recGateway {
	t.Helper()
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, dbURL)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, e := range [][2]string{{"node: test\n", "node: " + node + "\n"},
		{"database:\n", "database:\n  heartbeat_interval: 200ms\n  node_lost_after: 1s\n" + database}} {
		if !strings.Contains(cfg, e[0]) {
			t.Fatalf("the harness configuration no longer has %q", e[0])
		}
		cfg = strings.Replace(cfg, e[0], e[1], 1)
	}
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &recGateway{t: t, bin: bin, dbURL: dbURL, config: path}
	r.g = &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	r.start()
	return r
}

// Two nodes on one database; a call bridged to a desk phone on node B, and a caller leaving a
// voicemail message on B; kill -9 of B. Node A notices B's beats stopped and closes both calls
// (outcome failed, cause node_lost) within the bound, and BYEs their far ends (the carriers and
// the desk phone) from the dialogs B stored after the answer, before B is back; B restarts:
// its crash recovery sees the calls closed already (no second call.ended), the bridged call's
// ticket is the one call's, failed, and the part of the message B had on disk is delivered
// as the call's voicemail (outcome voicemail, a voicemail ticket, the recording on its voice
// comment).
func TestCluster_KillDashNineNode_SurvivorClosesItsCallOnce(t *testing.T) {
	requireSipp(t)
	bin, dbURL := binary(t), pgtest.EmptyURL(t)
	a := startClusterNode(t, bin, dbURL, "node-a")
	b := startClusterNode(t, bin, dbURL, "node-b")
	// The lines are the database's (migration 021), seeded by node A with its own desk port:
	// point the desk line at B's desk phone, as an operator would through the API.
	if code, m := b.g.api("PUT", "/lines/+15550197", fmt.Sprintf(`{"line":{"target":"sip:desk@127.0.0.1:%d"}}`, b.g.deskPort)); code != 200 {
		t.Fatalf("PUT /lines/+15550197 = %d %v", code, m)
	}

	desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(b.g.deskPort), "-rtp_echo")
	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""}, "-s", "+15550197",
		"-p", strconv.Itoa(testport.FreeUDP(t)), fmt.Sprintf("127.0.0.1:%d", b.g.sipPort))
	call := b.g.awaitCall("+15550197", func(c map[string]any) bool { return c["state"] == "talking" })
	id := call["id"].(string)
	// B stores the answered legs' dialogs after the answer, off the call's path: both legs
	// (the carrier's and the desk's) before the kill.
	storedLegs := func(id string) int {
		t.Helper()
		var n int
		if err := a.query([]any{&n}, `SELECT count(DISTINCT dialog->>'local_tag') FROM call_dialogs WHERE call_id = $1 AND node = 'node-b'`, id); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); storedLegs(id) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node B stored %d of the call's 2 answered legs within 20 s", storedLegs(id))
		}
	}
	// A caller leaving a message on B: killed once at least 1.5 s of it is on B's disk.
	vmCarrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""}, "-s", "+15550198",
		"-p", strconv.Itoa(testport.FreeUDP(t)), fmt.Sprintf("127.0.0.1:%d", b.g.sipPort))
	vmID := b.g.awaitCall("+15550198", func(map[string]any) bool { return true })["id"].(string)
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(b.g.dir, "recordings", "*", "*", "*", vmID+"-voicemail.wav"))
		var size int64
		if len(files) == 1 {
			if st, err := os.Stat(files[0]); err == nil {
				size = st.Size()
			}
		}
		if size >= 44+8000*2*3/2 && storedLegs(vmID) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the voicemail message on node B: files %v, %d bytes, %d legs stored after 45 s; want 1.5 s of audio and the carrier's leg", files, size, storedLegs(vmID))
		}
	}

	b.kill()
	killed := time.Now()
	// Seen through node A's API: the same database.
	c := a.g.awaitCallByID(id, func(c map[string]any) bool { return c["state"] == "ended" })
	// 1 s without a beat, the next beat of A (200 ms), the engine's wait for the seq gap (5 s).
	if took := time.Since(killed); took > 20*time.Second {
		t.Errorf("node A closed the call %s after the kill, want within 20 s", took)
	}
	if c["outcome"] != "failed" {
		t.Errorf("call after its node was lost: outcome %v, want failed", c["outcome"])
	}
	endedEvents := func() (n int, causes string) {
		t.Helper()
		if err := a.query([]any{&n, &causes}, `SELECT count(*), coalesce(string_agg(body->>'cause', ','), '')
			FROM call_events WHERE call_id = $1 AND type = 'call.ended'`, id); err != nil {
			t.Fatal(err)
		}
		return n, causes
	}
	if n, causes := endedEvents(); n != 1 || causes != "node_lost" {
		t.Errorf("after the loss: %d call.ended (%s), want one of cause node_lost", n, causes)
	}
	if !strings.Contains(a.g.logText(), "node lost: closing the calls it ran") {
		t.Error("node A did not log the lost node")
	}
	if v := a.g.metric(`switchboard_calls_closed_node_lost_total{lost_node="node-b"`); v != 2 {
		t.Errorf("switchboard_calls_closed_node_lost_total{lost_node=node-b} = %v on node A, want 2", v)
	}

	// The survivor hangs up the far ends B left in the call: both SIPps get their BYE while B
	// is still down, and end. (SIPp sends its 200 to the dialog's first peer, B, not to the
	// BYE's Via as RFC 3261 §18.2.2 has a UA do: node A counts these BYEs unanswered.)
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")
	vmCarrier.wait(t, "voicemail caller")
	if !strings.Contains(a.g.logText(), "node lost: sending BYE to its calls' far ends") {
		t.Error("node A did not log the BYEs to the lost node's far ends")
	}

	// B's restart BYEs them again from its journal (they answer nothing now: harmless).
	b.restart()
	if !strings.Contains(b.g.logText(), "closed already, by another node") {
		t.Error("node B's restart did not see that the call was closed by another node")
	}
	if n, causes := endedEvents(); n != 1 || causes != "node_lost" {
		t.Errorf("after B's restart: %d call.ended (%s), want still exactly one, node_lost", n, causes)
	}
	c = b.g.awaitCallByID(id, func(c map[string]any) bool { return c["ticket_id"] != nil })
	if c["state"] != "ended" || c["outcome"] != "failed" || c["ended_at"] == nil {
		t.Errorf("call after B's restart: state %v, outcome %v, ended_at %v; want ended, failed, a time", c["state"], c["outcome"], c["ended_at"])
	}
	tk, comments := b.g.ticketOf(c)
	if cid := customField(tk, "call_id"); cid != id {
		t.Errorf("ticket %v: custom field call_id %v, want %s", tk["id"], cid, id)
	}
	voice := 0
	for _, cm := range comments {
		if cm.(map[string]any)["type"] == "VoiceComment" {
			voice++
		}
	}
	if voice != 1 {
		t.Errorf("ticket %v has %d voice comments, want 1 (one call)", tk["id"], voice)
	}

	// The message: B's recordings recovery delivers what it had on disk as the voicemail.
	vm := a.g.awaitCallByID(vmID, func(c map[string]any) bool { return c["outcome"] == "voicemail" && c["ticket_id"] != nil })
	if vm["state"] != "ended" || vm["outcome"] != "voicemail" || vm["hangup_cause"] != "node_lost" {
		t.Errorf("the voicemail call after B's restart: state %v, outcome %v, cause %v; want ended, voicemail, node_lost", vm["state"], vm["outcome"], vm["hangup_cause"])
	}
	if n, causes := func() (n int, causes string) {
		if err := a.query([]any{&n, &causes}, `SELECT count(*), coalesce(string_agg(body->>'cause', ','), '')
			FROM call_events WHERE call_id = $1 AND type = 'call.ended'`, vmID); err != nil {
			t.Fatal(err)
		}
		return n, causes
	}(); n != 1 || causes != "node_lost" {
		t.Errorf("the voicemail call: %d call.ended (%s), want one, node_lost", n, causes)
	}
	vtk, _ := a.g.ticketOf(vm)
	if vtk["via"].(map[string]any)["channel"] != "voicemail" {
		t.Errorf("the voicemail call's ticket %v: want a voicemail ticket", vtk)
	}
	// Played through B, whose disk holds it.
	if _, wav := b.g.recordingOf("+15550198"); wav != nil {
		if ch, secs := wavChannels(t, wav); ch != 1 || secs < 1 {
			t.Errorf("the delivered message: %d channels, %.1f s; want mono, at least the 1.5 s it had", ch, secs)
		}
	}
}

// Two nodes with shared queues and agents on one database, through the real binary: agent1's
// page connects to node B, and node A's API says so (node-b); a state set through A is what B's
// API shows; a call waiting on A counts in B's GET /queues. kill -9 of B: A's sweep sets agent1
// offline and detached; the page reconnecting to A attaches it there.
func TestCluster_SharedQueues_AnyNodeShowsTheClusterAndALostNodesAgentGoesOffline(t *testing.T) {
	requireSipp(t)
	bin, dbURL := binary(t), pgtest.EmptyURL(t)
	a := startClusterNodeWith(t, bin, dbURL, "node-a", "  shared_queues: true\n")
	b := startClusterNodeWith(t, bin, dbURL, "node-b", "  shared_queues: true\n")
	const agent, pass = "agent1@example.com", "agentpass"
	id := int64(a.g.agentByEmail(agent)["id"].(float64))

	page := b.g.pageSocket(agent, pass)
	_ = page
	awaitAgent := func(g *testGateway, what string, cond func(map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		var last map[string]any
		for time.Now().Before(deadline) {
			if last = g.agentByEmail(agent); cond(last) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: agent1 is %v", what, last)
	}
	awaitAgent(a.g, "node A's API does not show agent1's page on node-b", func(m map[string]any) bool { return m["node"] == "node-b" })

	if code, m := a.g.api("PUT", fmt.Sprintf("/agents/%d/state", id), `{"agent":{"state":"away"}}`); code != 200 {
		t.Fatalf("PUT state through node A: %d %v", code, m)
	}
	if st := b.g.agentByEmail(agent)["state"]; st != "away" {
		t.Errorf("node B's API shows agent1 %v right after node A set away, want away", st)
	}

	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""}, "-s", "+15550100",
		"-p", strconv.Itoa(testport.FreeUDP(t)), fmt.Sprintf("127.0.0.1:%d", a.g.sipPort))
	_ = carrier
	deadline := time.Now().Add(30 * time.Second)
	for b.g.queue("support")["calls_waiting"] != float64(1) {
		if time.Now().After(deadline) {
			t.Fatalf("node B's GET /queues never counted the call waiting on node A: %v", b.g.queue("support"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	b.kill()
	awaitAgent(a.g, "after node B was lost", func(m map[string]any) bool { return m["state"] == "offline" && m["node"] == nil })
	// The agents are set offline before the line saying so is logged: await the line too.
	for logged := time.Now().Add(10 * time.Second); !strings.Contains(a.g.logText(), "its agents are offline until their pages reconnect"); {
		if time.Now().After(logged) {
			t.Error("node A did not log that the lost node's agents went offline")
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The page reconnects through the front: here, straight to node A.
	a.g.pageSocket(agent, pass)
	awaitAgent(a.g, "after the page reconnected to node A", func(m map[string]any) bool { return m["node"] == "node-a" })
}
