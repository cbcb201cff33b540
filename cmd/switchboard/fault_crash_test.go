package main

import (
	"context"
	"fmt"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// The fault proofs of issue 13 item 5 through the real `switchboard serve` binary: kill -9
// with live calls of every kind leaves no open call after a restart, and a gateway starts and
// takes calls while PostgreSQL is unreachable.

// getCall reads GET /calls/{id} as the admin.
func (g *testGateway) getCall(id string) map[string]any {
	g.t.Helper()
	code, m := g.api("GET", "/calls/"+id, "")
	if code != 200 {
		return nil
	}
	c, _ := m["call"].(map[string]any)
	return c
}

// awaitCallByID polls GET /calls/{id} until cond holds (bounded: 60 s).
func (g *testGateway) awaitCallByID(id string, cond func(map[string]any) bool) map[string]any {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		if c := g.getCall(id); c != nil {
			last = c
			if cond(c) {
				return c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.t.Fatalf("call %s did not reach the expected state; last seen %v", id, last)
	return nil
}

// kill -9 with a call in the IVR menu, one waiting in the queue and one bridged to a desk
// phone: after the restart every call is ended (state ended, ended_at, outcome answered for
// the bridged call, failed for the two nobody answered) by one call.ended of cause crash, the
// far ends still in the calls get a BYE from the journaled dialog state (every SIPp peer
// finishes its scenario: it got the BYE and answered 200), and a second crash-restart — even
// one replaying the same journal, as if it died before it could mark the calls closed — stores
// nothing twice.
func TestFault_KillDashNineWithLiveIVRQueueBridgedCalls_NoCallLeftOpen(t *testing.T) {
	requireSipp(t)
	r := startRecGateway(t)
	g := r.g
	target := fmt.Sprintf("127.0.0.1:%d", g.sipPort)

	desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
	bridged := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""}, "-s", "+15550197", "-p", strconv.Itoa(testport.FreeUDP(t)), target)
	bridgedCall := g.awaitCall("+15550197", func(c map[string]any) bool { return c["state"] == "talking" })

	key := `<pause milliseconds="1500"/><nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_1.pcap"/></action></nop><pause milliseconds="1000"/>`
	queued := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": key}, "-s", "+15550100", "-p", strconv.Itoa(testport.FreeUDP(t)), target)
	queueCall := g.awaitCall("+15550100", func(c map[string]any) bool { return c["queue"] == "support" && c["state"] == "queued" })

	// Last, the call in the menu: it stays there for the menu's 5 s timeout, twice.
	inMenu := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""}, "-s", "+15550100", "-p", strconv.Itoa(testport.FreeUDP(t)), target)
	menuCall := g.awaitCall("+15550100", func(c map[string]any) bool { return c["id"] != queueCall["id"] && c["state"] == "started" })

	journal := filepath.Join(g.dir, "spool", "calls.jsonl")
	r.kill()
	saved, err := os.ReadFile(journal)
	if err != nil {
		t.Errorf("call journal after kill -9: %v", err)
	}

	r.restart()
	want := map[string]string{bridgedCall["id"].(string): "answered", queueCall["id"].(string): "failed", menuCall["id"].(string): "failed"}
	for id, outcome := range want {
		c := r.g.awaitCallByID(id, func(c map[string]any) bool { return c["state"] == "ended" })
		if c["outcome"] != outcome || c["ended_at"] == nil {
			t.Errorf("call %s after the restart: outcome %v, ended_at %v; want %s with an end time", id, c["outcome"], c["ended_at"], outcome)
		}
		var n int
		var cause string
		if err := r.query([]any{&n, &cause}, `SELECT count(*), coalesce(max(body->>'cause'), '') FROM call_events WHERE call_id = $1 AND type = 'call.ended'`, id); err != nil {
			t.Fatal(err)
		}
		if n != 1 || cause != "crash" {
			t.Errorf("call %s: %d call.ended events with cause %q, want 1 with cause crash", id, n, cause)
		}
	}
	if c := r.g.getCall(bridgedCall["id"].(string)); c != nil {
		if talk, _ := c["talk_time"].(float64); talk < 1 {
			t.Errorf("bridged call talk_time %v after the crash, want the seconds talked until the crash", c["talk_time"])
		}
	}
	if !strings.Contains(r.g.logText(), "call ended by a crash of the gateway") {
		t.Error("the restart did not log the calls it closed")
	}
	// The far ends were still up: each got a BYE and answered it, which ends its scenario.
	for name, p := range map[string]*sippRun{"bridged carrier": bridged, "desk": desk, "queued carrier": queued, "carrier in the menu": inMenu} {
		p.wait(t, name)
	}

	t.Logf("restart logs:\n%s", grepLines(r.g.logText(), "crash", "orphan", "degraded"))
	// Another crash, and a restart that replays the journal as it was before the first one.
	var events int
	countEvents := func() int {
		var n int
		if err := r.query([]any{&n}, `SELECT count(*) FROM call_events WHERE call_id = ANY($1)`,
			[]string{bridgedCall["id"].(string), queueCall["id"].(string), menuCall["id"].(string)}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	events = countEvents()
	r.kill()
	if saved != nil {
		if err := os.WriteFile(journal, saved, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	r.restart()
	for id, outcome := range want {
		if c := r.g.getCall(id); c == nil || c["state"] != "ended" || c["outcome"] != outcome {
			t.Errorf("call %s after the second restart: %v, want still ended, %s", id, c, outcome)
		}
	}
	// The repeated call.ended events carried the same ids: the event log dropped them.
	if n := countEvents(); n != events {
		t.Errorf("events of the three calls: %d after the second restart, %d before; want no duplicate", n, events)
	}
}

// startDegraded starts serve on a fresh database that is unreachable (behind a proxy that is
// down until proxy.Up) and waits until /readyz says so.
func startDegraded(t *testing.T) (g *testGateway, proxy *pgtest.Proxy, path, dbURL string) {
	t.Helper()
	return startDegradedEdited(t, nil)
}

// startDegradedEdited is startDegraded with the configuration edited as runEditedGateway does.
func startDegradedEdited(t *testing.T, edits [][2]string) (g *testGateway, proxy *pgtest.Proxy, path, dbURL string) {
	t.Helper()
	dbURL = pgtest.EmptyURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy = pgtest.NewProxy(t, u.Host)
	proxy.Down()
	u.Host = proxy.Addr()
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, u.String())
	editConfig(t, path, edits)
	g = &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.start(binary(t), path)
	g.awaitDegraded()
	return g, proxy, path, dbURL
}

// awaitDegraded waits until /readyz answers 503 saying the database is unreachable.
func (g *testGateway) awaitDegraded() {
	t := g.t
	t.Helper()
	var body string
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-g.exited:
			g.exited <- err // for the cleanup
			t.Fatalf("serve exited while the database was unreachable: %v", err)
		default:
		}
		resp, err := http.Get(g.base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, "database unreachable since") {
				return
			}
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("/readyz 200 with the database unreachable: %s", body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never said the database is unreachable; last %q", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitSpool waits until the gateway's spool file holds every one of parts (bounded: 30 s).
func (g *testGateway) awaitSpool(what string, parts ...string) {
	g.t.Helper()
	spool := filepath.Join(g.dir, "spool", "events.jsonl")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(spool)
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(string(b), p)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s: not in the spool:\n%s", what, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Started while PostgreSQL is unreachable, the gateway comes up degraded instead of refusing
// to start: /healthz 200, /readyz 503 saying since when the database is unreachable, a call to
// the bridged line goes through and its events spool; when the database comes up the schema is
// migrated, the spooled events reach it, the call gets its ticket and /readyz turns 200.
func TestFault_StartWithDatabaseUnreachable_CallsFlowThenReady(t *testing.T) {
	requireSipp(t)
	g, proxy, _, _ := startDegraded(t)
	base, sipPort, deskPort := g.base, g.sipPort, g.deskPort
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz while degraded: %v %v", resp, err)
	}

	// A call goes through and its events wait in the spool.
	desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(deskPort), "-rtp_echo")
	carrier := startSipp(t, "carrier_rtp.xml", nil, "-s", "+15550197", "-p", strconv.Itoa(testport.FreeUDP(t)), fmt.Sprintf("127.0.0.1:%d", sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")
	g.awaitSpool("the call's events", `"call.ended"`, `"+15550197"`)

	// The database comes up: ready, and the call has its record and ticket.
	proxy.Up()
	waitReady(t, base, g.exited)
	call := g.awaitCall("+15550197", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" {
		t.Errorf("call %v: want answered", call)
	}
	if !strings.Contains(g.logText(), "leaving degraded mode") {
		t.Error("no log line saying the gateway left degraded mode")
	}
	// A first start: no account id cache, so agent1 was left out of the ACD; once the database
	// answers, the roster's reload puts it in its queue without a restart.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, m := g.api("GET", "/agents", "")
		if agents, _ := m["agents"].([]any); code == 200 && len(agents) == 1 {
			a, _ := agents[0].(map[string]any)
			if qs, _ := a["queues"].([]any); a["email"] == "agent1@example.com" && len(qs) == 1 && qs[0] == "support" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /agents after the database answered: %d %v; want agent1 in queue support", code, m)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A node's very first start with PostgreSQL unreachable: no account id cache, so agent1 is
// left out of the ACD and its SIP phone cannot be bound to its id. Once the database answers,
// without a restart, agent1's phone registers as agent1 and answers a queued call (the agent
// turns busy, then wraps up). Before, the phone registered under id 0 — the id the gateway did
// not know — and the queue never rang it.
func TestFault_FirstStartWithoutDatabase_AgentPhoneTakesQueueCallsOnceItAnswers(t *testing.T) {
	requireSipp(t)
	g, proxy, _, _ := startDegradedEdited(t, agentConfigEdits)
	if !strings.Contains(g.logText(), "agent left out of the queues") {
		t.Errorf("no log line saying agent1 was left out of the queues at start:\n%s", tail(g.logText(), 2000))
	}
	proxy.Up()
	waitReady(t, g.base, g.exited)
	deadline := time.Now().Add(30 * time.Second)
	var agent map[string]any
	for agent == nil {
		if code, m := g.api("GET", "/agents", ""); code == 200 {
			for _, a := range m["agents"].([]any) {
				if am := a.(map[string]any); am["email"] == "agent1@example.com" {
					agent = am
				}
			}
		}
		if agent == nil && time.Now().After(deadline) {
			t.Fatal("agent1 never joined the ACD after the database answered")
		}
		time.Sleep(200 * time.Millisecond)
	}
	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "2000"}
	phone := startSipp(t, "agent_answer.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", "agent1@example.com", "-ap", "agentpass",
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", int64(agent["id"].(float64))), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT agent1 available = %d %v", code, m)
	}
	g.awaitAgentState("agent1@example.com", 10*time.Second, func(s string) bool { return s == "available" })
	key := `<pause milliseconds="1500"/><nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_1.pcap"/></action></nop><pause milliseconds="1000"/>`
	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": key},
		"-s", "+15550100", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	g.awaitAgentState("agent1@example.com", 30*time.Second, func(s string) bool { return s == "busy" })
	phone.wait(t, "agent phone")
	carrier.wait(t, "carrier")
}

// grepLines returns the lines of s containing any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// kill -9 while PostgreSQL is unreachable, restarted while it still is: the call journal alone
// tells the new process which call was open; its call.ended (cause crash) spools, the far ends
// get their BYE, and when the database comes up the call record shows the call ended, answered.
func TestFault_KillDashNineWhileDatabaseDown_CallClosedFromJournal(t *testing.T) {
	requireSipp(t)
	g, proxy, path, dbURL := startDegraded(t)
	desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""}, "-s", "+15550197",
		"-p", strconv.Itoa(testport.FreeUDP(t)), fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	g.awaitSpool("the bridged call's answer", `"call.answered"`)

	if err := g.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.exited:
		g.exited <- err
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not die within 20 s of SIGKILL")
	}
	g2 := &testGateway{t: t, base: g.base, sipPort: g.sipPort, deskPort: g.deskPort, dir: g.dir}
	g2.start(binary(t), path)
	g2.awaitDegraded()
	g2.awaitSpool("the crash's call.ended", `"cause":"crash"`)
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")

	proxy.Up()
	waitReady(t, g2.base, g2.exited)
	call := g2.awaitCall("+15550197", func(c map[string]any) bool { return c["state"] == "ended" })
	if call["outcome"] != "answered" || call["ended_at"] == nil {
		t.Errorf("call %v: want ended, answered", call)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM call_events WHERE call_id = $1 AND type = 'call.ended' AND body->>'cause' = 'crash'`,
		call["id"]).Scan(&n); err != nil || n != 1 {
		t.Errorf("call.ended of cause crash: %d, %v; want 1", n, err)
	}
}
