package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// getRaw GETs an API path as the admin and returns the status, Content-Type and body.
func (g *testGateway) getRaw(path string) (int, string, []byte) {
	g.t.Helper()
	req, _ := http.NewRequest("GET", g.base+"/api/v2"+path, nil)
	req.SetBasicAuth("admin@example.com", "adminpass")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestEndToEnd_ReportOfSIPpCallsMatchesCallRecords is the reports' check through the real
// binary: SIPp carriers call the line straight into queue support; agent1's SIPp phone answers
// the first call (the queue's 5 s wrap-up follows), then agent1 goes away and two callers hang
// up after waiting about 2 and 4 s. The queue report of the period (JSON, whole and by 15
// minutes) says exactly what the test computes from the call records (GET /calls and the CSV
// export read with encoding/csv): 3 offered, 1 answered, 2 abandoned, their waits, the service
// level against the dev default of 20 s, ASA and AHT with the wrap-up the gateway's agent
// state history measured; the agents report gives agent1 the answered call and an occupancy.
func TestEndToEnd_ReportOfSIPpCallsMatchesCallRecords(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	from := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	agentID := g.agentByEmail("agent1@example.com")["id"].(float64)

	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "2000"}
	phone := startSipp(t, "agent_answer.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", "agent1@example.com", "-ap", "agentpass",
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", int64(agentID)), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT state = %d %v", code, m)
	}
	g.awaitAgentState("agent1@example.com", 10*time.Second, func(s string) bool { return s == "available" })
	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
		"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	phone.wait(t, "agent phone")
	carrier.wait(t, "carrier")
	// The wrap-up runs out (5 s) before the agent goes away: its length is the call's wrap-up.
	// The agent is busy or in wrap-up once the phone hung up, so "available" comes only after
	// the wrap-up (not awaited itself: a poll of GET /agents pays a bcrypt check, and a loaded
	// machine could let the 5 s pass between two polls).
	g.awaitAgentState("agent1@example.com", 60*time.Second, func(s string) bool { return s == "available" })
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", int64(agentID)), `{"agent":{"state":"away"}}`); code != 200 {
		t.Fatalf("PUT state = %d %v", code, m)
	}
	for _, ms := range []string{"2000", "4000"} {
		startSipp(t, "carrier_hangs_up.xml", map[string]string{"TALK_MS": ms},
			"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "abandoning carrier")
	}
	g.awaitCall("+15550199", func(c map[string]any) bool { return c["outcome"] == "abandoned" && c["state"] == "ended" })
	to := time.Now().UTC().Add(time.Minute).Truncate(time.Second)
	period := "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))

	// The call records: all three ended, and the wrap-up measured (the state history is written
	// behind the ACD: await it, bounded).
	var recs []map[string]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, ct, b := g.getRaw("/calls?format=csv&since=" + url.QueryEscape(from.Format(time.RFC3339)))
		if code != 200 || !strings.HasPrefix(ct, "text/csv") {
			t.Fatalf("GET /calls?format=csv = %d %s %s", code, ct, b)
		}
		rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("export is not CSV: %v\n%s", err, b)
		}
		recs = recs[:0]
		ended, wrapped := 0, false
		for _, r := range rows[1:] {
			m := map[string]string{}
			for i, k := range rows[0] {
				m[k] = r[i]
			}
			recs = append(recs, m)
			if m["ended_at"] != "" {
				ended++
			}
			wrapped = wrapped || (m["outcome"] == "answered" && m["wrap_up_time"] != "0")
		}
		if ended == 3 && wrapped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call records never showed 3 ended calls and the answered one's wrap-up: %v", recs)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// What the records say, computed here.
	num := func(m map[string]string, k string) int64 {
		n, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil {
			t.Fatalf("record %s = %q", k, m[k])
		}
		return n
	}
	var offered, answered, abandoned, within, answerWait, abandonWait, maxAbandon, handle int64
	for _, m := range recs {
		if m["queue"] != "support" {
			t.Fatalf("record %v: want queue support", m)
		}
		// The JSON record agrees with the export.
		code, c := g.api("GET", "/calls/"+m["id"], "")
		call, _ := c["call"].(map[string]any)
		if code != 200 || call["queue_time"] != float64(num(m, "queue_time")) || call["ring_time"] != float64(num(m, "ring_time")) ||
			call["talk_time"] != float64(num(m, "talk_time")) || call["outcome"] != m["outcome"] {
			t.Fatalf("GET /calls/%s = %d %v; export %v", m["id"], code, call, m)
		}
		wait := num(m, "queue_time") + num(m, "ring_time")
		offered++
		switch m["outcome"] {
		case "answered":
			answered++
			answerWait += wait
			if wait <= 20 {
				within++
			}
			handle += num(m, "talk_time") + num(m, "hold_time") + num(m, "wrap_up_time")
			if w := num(m, "wrap_up_time"); w < 4 || w > 8 {
				t.Errorf("answered call's wrap-up %d s, want about the queue's 5 s", w)
			}
			if m["agent_id"] != strconv.FormatInt(int64(agentID), 10) {
				t.Errorf("answered call's agent %s, want agent1 (%v)", m["agent_id"], agentID)
			}
		case "abandoned":
			abandoned++
			abandonWait += wait
			maxAbandon = max(maxAbandon, wait)
		}
	}
	if offered != 3 || answered != 1 || abandoned != 2 {
		t.Fatalf("records: %d offered, %d answered, %d abandoned; want 3, 1, 2: %v", offered, answered, abandoned, recs)
	}

	var sums [4]int64
	for _, interval := range []string{"", "15m"} {
		code, m := g.api("GET", "/reports/queues?"+period+"&queue=support&interval="+interval, "")
		if code != 200 {
			t.Fatalf("GET /reports/queues = %d %v", code, m)
		}
		sums = [4]int64{}
		var answerWaitR, abandonWaitR, withinR, handleR float64
		var maxR float64
		for _, q := range m["queues"].([]any) {
			r := q.(map[string]any)
			if r["service_level_seconds"] != float64(20) {
				t.Errorf("service_level_seconds %v, want the default 20", r["service_level_seconds"])
			}
			sums[0] += int64(r["offered"].(float64))
			sums[1] += int64(r["answered"].(float64))
			sums[2] += int64(r["abandoned"].(float64))
			answerWaitR += r["answer_wait_time"].(float64)
			abandonWaitR += r["abandon_wait_time"].(float64)
			withinR += r["answered_within_service_level"].(float64)
			handleR += r["talk_time"].(float64) + r["hold_time"].(float64) + r["wrap_up_time"].(float64)
			if v, ok := r["max_time_to_abandon"].(float64); ok {
				maxR = math.Max(maxR, v)
			}
			if interval == "" {
				if r["service_level"] != float64(within)/3 || r["asa"] != float64(answerWait) ||
					r["aht"] != float64(handle) || r["avg_time_to_abandon"] != float64(abandonWait)/2 {
					t.Errorf("whole period: report %v; want service level %v, asa %d, aht %d, time to abandon %v",
						r, float64(within)/3, answerWait, handle, float64(abandonWait)/2)
				}
			}
		}
		if sums != [4]int64{3, 1, 2, 0} || answerWaitR != float64(answerWait) || abandonWaitR != float64(abandonWait) ||
			withinR != float64(within) || handleR != float64(handle) || maxR != float64(maxAbandon) {
			t.Errorf("interval %q: report %v; want from the records offered 3 answered 1 abandoned 2, waits %d/%d (max %d), within %d, handle %d",
				interval, m["queues"], answerWait, abandonWait, maxAbandon, within, handle)
		}
	}
	code, m := g.api("GET", fmt.Sprintf("/reports/agents?%s&agent_id=%d", period, int64(agentID)), "")
	rows, _ := m["agents"].([]any)
	if code != 200 || len(rows) != 1 {
		t.Fatalf("GET /reports/agents = %d %v", code, m)
	}
	r := rows[0].(map[string]any)
	if r["answered"] != float64(1) || r["aht"] != float64(handle) || r["offered"].(float64) < 1 {
		t.Errorf("agent1's report %v; want 1 answered, aht %d, offered at least once", r, handle)
	}
	// Occupancy from the state history: on the call about its 2 s, wrapping up the queue's 5 s,
	// and whatever the agent spent available around it.
	busy, wrap, avail := r["busy_time"].(float64), r["wrap_up_state_time"].(float64), r["available_time"].(float64)
	if occ, ok := r["occupancy"].(float64); !ok || busy < 1 || busy > 5 || wrap < 4 || wrap > 8 || math.Abs(occ-(busy+wrap)/(avail+busy+wrap)) > 1e-9 {
		t.Errorf("agent1's report %v: want about 2 s busy, 5 s in wrap-up and the occupancy they give", r)
	}
}
