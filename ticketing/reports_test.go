package ticketing_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// reportEnv is the ticketing API with calls, call events and reports behind a real HTTP server
// on a fresh database, and the agents' state history.
type reportEnv struct {
	*engineHarness
	srv    *httptest.Server
	states *ticketing.AgentStateLog
}

var reportLevels = map[string]int{"support": 20, "sales": 30, "quiet": 20}

func newReportEnv(t *testing.T) *reportEnv {
	h := newEngineHarness(t, nil)
	log, err := eventlog.Open(context.Background(), eventlog.Options{Pool: h.pool, SpoolPath: filepath.Join(t.TempDir(), "spool")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	api := ticketing.NewAPI(h.store, ticketing.APIOptions{PublicURL: srv.URL})
	api.Register(mux, "/api/v2")
	api.RegisterCalls(mux, "/api/v2", log, nil)
	api.RegisterReports(mux, "/api/v2", ticketing.ReportOptions{ServiceLevels: reportLevels,
		Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }})
	states := ticketing.NewAgentStateLog(ticketing.AgentStateLogOptions{Pool: h.pool})
	t.Cleanup(states.Close)
	return &reportEnv{engineHarness: h, srv: srv, states: states}
}

// get does a GET as user (password1) and returns the status, the Content-Type and the body.
func (e *reportEnv) get(user, path string, header ...string) (int, string, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v2"+path, nil)
	req.SetBasicAuth(user, "password1")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func (e *reportEnv) getJSON(user, path string, into any) {
	e.t.Helper()
	code, _, b := e.get(user, path)
	if code != 200 {
		e.t.Fatalf("GET %s = %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
}

// getCSV reads a CSV answer with encoding/csv into maps by the header's names.
func (e *reportEnv) getCSV(user, path string, header ...string) []map[string]string {
	e.t.Helper()
	code, ct, b := e.get(user, path, header...)
	if code != 200 || !strings.HasPrefix(ct, "text/csv") {
		e.t.Fatalf("GET %s = %d %s %s", path, code, ct, b)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		e.t.Fatalf("GET %s: not CSV: %v\n%s", path, err, b)
	}
	if len(recs) == 0 {
		e.t.Fatalf("GET %s: no header", path)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, k := range recs[0] {
			m[k] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// postEvents sends events through POST /call_events and applies them all.
func (e *reportEnv) postEvents(evs []callevent.Event) {
	e.t.Helper()
	for len(evs) > 0 {
		n := min(len(evs), 500)
		body, _ := json.Marshal(map[string]any{"events": evs[:n]})
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v2/call_events", bytes.NewReader(body))
		req.SetBasicAuth("admin@example.com", "password1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"errors":[]`)) {
			e.t.Fatalf("POST /call_events = %d %s", resp.StatusCode, b)
		}
		evs = evs[n:]
	}
	for i := 0; ; i++ {
		n, err := e.engine.ApplyPending(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if i > 1000 {
			e.t.Fatal("events still pending after 1000 passes")
		}
	}
}

// flushStates closes the state log (writing everything) and opens a new one.
func (e *reportEnv) flushStates() {
	e.states.Close()
	e.states = ticketing.NewAgentStateLog(ticketing.AgentStateLogOptions{Pool: e.pool})
	e.t.Cleanup(e.states.Close)
}

// scriptedHour is an hour of calls, 10:00–11:00 UTC, built from a seeded random source: the
// events of every call and the agents' state changes, as a gateway would report them.
type scriptedHour struct {
	events []callevent.Event
	states []ticketing.AgentStateChange
	// offers counts call.offered per agent, as scripted.
	offers map[int64]int
	// answeredWait is each answered call's queue wait as scripted (call id → seconds), and
	// answeredQueued when it entered its queue.
	answeredWait   map[string]int64
	answeredQueued map[string]time.Time
	calls          int
}

var hourStart = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func buildHour(h *engineHarness) *scriptedHour {
	r := rand.New(rand.NewPCG(21, 2026))
	sh := &scriptedHour{offers: map[int64]int{}, answeredWait: map[string]int64{}, answeredQueued: map[string]time.Time{}}
	sec := func(lo, hi int) float64 { return float64(lo + r.IntN(hi-lo+1)) }
	n := 0
	newCall := func(t0 time.Time) *script {
		n++
		return h.newCall(t0).started(fmt.Sprintf("+1555800%04d", n), "+15550100")
	}
	// Agents take calls one after another: idle, answer, talk (maybe hold), wrap up.
	for _, ag := range []struct {
		id    int64
		queue string
	}{{h.agent1.ID, "support"}, {h.agent2.ID, "sales"}} {
		at := hourStart.Add(-10 * time.Minute)
		sh.states = append(sh.states, ticketing.AgentStateChange{AgentID: ag.id, State: "available", Since: at})
		for k := 0; ; k++ {
			at = at.Add(time.Duration(sec(5, 240)) * time.Second)
			if at.After(hourStart.Add(58 * time.Minute)) {
				break
			}
			if k == 4 { // a break, away, in the middle of the hour
				sh.states = append(sh.states, ticketing.AgentStateChange{AgentID: ag.id, State: "away", Since: at})
				at = at.Add(7 * time.Minute)
				sh.states = append(sh.states, ticketing.AgentStateChange{AgentID: ag.id, State: "available", Since: at})
				continue
			}
			// The call waited: ivr, then queue, then rang (one missed offer now and then).
			wait := []float64{0, 3, 12, 20, 21, 35, 60}[r.IntN(7)]
			ivr := sec(2, 15)
			t0 := at.Add(-time.Duration((ivr + wait) * float64(time.Second)))
			s := newCall(t0).queued(ivr, ag.queue)
			ring := math.Min(wait, sec(1, 8))
			if wait-ring >= 2 && r.IntN(3) == 0 {
				s.add(callevent.EventOffered, ivr+wait-ring-2, func(e *callevent.Event) { e.AgentID = h.agent2.ID + h.agent1.ID - ag.id })
				sh.offers[h.agent2.ID+h.agent1.ID-ag.id]++
			}
			s.add(callevent.EventOffered, ivr+wait-ring, func(e *callevent.Event) { e.AgentID = ag.id })
			sh.offers[ag.id]++
			s.answered(ivr+wait, ag.id)
			sh.answeredWait[s.id] = int64(wait)
			sh.answeredQueued[s.id] = t0.Add(time.Duration(ivr) * time.Second)
			talk := sec(20, 400)
			end := ivr + wait + talk
			if r.IntN(3) == 0 {
				hold := sec(5, 60)
				s.add(callevent.EventHeld, ivr+wait+talk/2, nil).add(callevent.EventResumed, ivr+wait+talk/2+hold, nil)
				end += hold
			}
			s.ended(end, callevent.OutcomeAnswered)
			sh.events = append(sh.events, s.evs...)
			sh.states = append(sh.states, ticketing.AgentStateChange{AgentID: ag.id, State: "busy", Since: at, CallID: s.id})
			at = t0.Add(time.Duration(end * float64(time.Second)))
			wrap := sec(0, 45)
			if wrap > 0 {
				sh.states = append(sh.states, ticketing.AgentStateChange{AgentID: ag.id, State: "wrap_up", Since: at})
				at = at.Add(time.Duration(wrap) * time.Second)
			}
			sh.states = append(sh.states, ticketing.AgentStateChange{AgentID: ag.id, State: "available", Since: at})
		}
		sh.states = append(sh.states, ticketing.AgentStateChange{AgentID: ag.id, State: "offline", Since: at.Add(time.Minute)})
	}
	// Callers who hung up waiting, calls that overflowed to voicemail, and one that failed.
	for i := 0; i < 14; i++ {
		q := []string{"support", "sales"}[i%2]
		t0 := hourStart.Add(time.Duration(r.IntN(3590)) * time.Second)
		s := newCall(t0).queued(sec(2, 10), q)
		qAt := s.evs[len(s.evs)-1].At.Sub(t0).Seconds()
		switch {
		case i < 10:
			left := qAt + []float64{4, 19, 20, 33, 90}[i%5]
			s.add(callevent.EventAbandoned, left, func(e *callevent.Event) { e.Where = "queue" }).ended(left, callevent.OutcomeAbandoned)
		case i < 13:
			s.add(callevent.EventVoicemail, qAt+120, func(e *callevent.Event) { e.RecordingID = fmt.Sprintf("vm-%d", i) }).
				ended(qAt+150, callevent.OutcomeVoicemail)
		default:
			s.ended(qAt+5, callevent.OutcomeFailed)
		}
		sh.events = append(sh.events, s.evs...)
	}
	// Outside the hour (before, at its very end) and one still going: none of them counts.
	sh.events = append(sh.events, newCall(hourStart.Add(-30*time.Second)).queued(25, "support").
		add(callevent.EventAbandoned, 40, func(e *callevent.Event) { e.Where = "queue" }).ended(40, callevent.OutcomeAbandoned).evs...)
	sh.events = append(sh.events, newCall(hourStart.Add(time.Hour-3*time.Second)).queued(3, "support").
		add(callevent.EventAbandoned, 9, func(e *callevent.Event) { e.Where = "queue" }).ended(9, callevent.OutcomeAbandoned).evs...)
	sh.events = append(sh.events, newCall(hourStart.Add(30*time.Minute)).queued(3, "support").evs...)
	sh.calls = n
	return sh
}

// exportedCall is one row of the call-record export, as the test reads it.
type exportedCall struct {
	queue, outcome                      string
	agent                               int64
	at                                  time.Time // queued_at, else started_at
	wait, talk, hold, wrap, queueT, rng int64
}

func parseExport(t *testing.T, rows []map[string]string) []exportedCall {
	t.Helper()
	num := func(s string) int64 {
		if s == "" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("export: %q is not a number", s)
		}
		return n
	}
	var out []exportedCall
	for _, m := range rows {
		at := m["queued_at"]
		if at == "" {
			at = m["started_at"]
		}
		ts, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatalf("export: time %q: %v", at, err)
		}
		c := exportedCall{queue: m["queue"], outcome: m["outcome"], agent: num(m["agent_id"]), at: ts,
			queueT: num(m["queue_time"]), rng: num(m["ring_time"]), talk: num(m["talk_time"]), hold: num(m["hold_time"]),
			wrap: num(m["wrap_up_time"])}
		c.wait = c.queueT + c.rng
		if m["ended_at"] == "" {
			continue // not ended: in no report
		}
		out = append(out, c)
	}
	return out
}

// queueFigures is what the test computes from the call records for one queue and interval.
type queueFigures struct {
	offered, answered, abandoned, voicemail, other, within int64
	answerWait, abandonWait, maxAbandon, talk, hold, wrap  int64
}

func computeQueues(calls []exportedCall, from, to time.Time, step time.Duration) map[string]*queueFigures {
	out := map[string]*queueFigures{}
	for _, c := range calls {
		if c.queue == "" || c.at.Before(from) || !c.at.Before(to) {
			continue
		}
		start := from
		if step > 0 {
			start = from.Add(c.at.Sub(from).Truncate(step))
		}
		k := c.queue + "@" + start.Format(time.RFC3339)
		f := out[k]
		if f == nil {
			f = &queueFigures{}
			out[k] = f
		}
		f.offered++
		switch c.outcome {
		case "answered":
			f.answered++
			f.answerWait += c.wait
			f.talk += c.talk
			f.hold += c.hold
			f.wrap += c.wrap
			if c.wait <= int64(reportLevels[c.queue]) {
				f.within++
			}
		case "abandoned":
			f.abandoned++
			f.abandonWait += c.wait
			f.maxAbandon = max(f.maxAbandon, c.wait)
		case "voicemail":
			f.voicemail++
		default:
			f.other++
		}
	}
	return out
}

func ratioOf(n, d int64) *float64 {
	if d == 0 {
		return nil
	}
	v := float64(n) / float64(d)
	return &v
}

func sameRatio(got *float64, want *float64) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	return math.Abs(*got-*want) < 1e-9
}

// A report over a scripted hour of calls (POST /call_events with chosen times, as a gateway
// would send them, and the agents' state changes) gives, per queue and per 15 minutes, hour and
// the whole period, in JSON and in CSV, exactly the figures the test computes on its own from
// the call records of the period (the CSV export, read with encoding/csv): offered, answered,
// abandoned and time to abandon, service level against each queue's threshold, ASA, AHT with
// wrap-up. The records themselves agree with the script (waits as scripted), and calls outside
// the period or not ended count nowhere.
func TestReport_ScriptedHourMatchesCallRecords(t *testing.T) {
	e := newReportEnv(t)
	sh := buildHour(e.engineHarness)
	e.postEvents(sh.events)
	for _, st := range sh.states {
		e.states.Record(st)
	}
	e.flushStates()

	from, to := hourStart, hourStart.Add(time.Hour)
	period := "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
	// The call records of a wider period (so that the test, not the server, decides what is in
	// the hour), as CSV; and the same records as JSON through GET /calls/{id} for the waits.
	wide := "from=" + url.QueryEscape(from.Add(-time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Add(time.Hour).Format(time.RFC3339))
	rows := e.getCSV("admin@example.com", "/reports/calls?"+wide+"&format=csv")
	if len(rows) != sh.calls {
		t.Fatalf("export has %d calls, want the %d scripted", len(rows), sh.calls)
	}
	calls := parseExport(t, rows)
	byID := map[string]map[string]string{}
	for _, m := range rows {
		byID[m["id"]] = m
	}
	for id, wait := range sh.answeredWait {
		var c struct{ Call ticketing.Call }
		e.getJSON("agent1@example.com", "/calls/"+id, &c)
		if got := c.Call.QueueTime + c.Call.RingTime; got != wait || c.Call.Outcome == nil || *c.Call.Outcome != "answered" {
			t.Fatalf("call %s: waited %d (outcome %v), scripted %d", id, got, c.Call.Outcome, wait)
		}
		if m := byID[id]; m["queue_time"] != strconv.FormatInt(c.Call.QueueTime, 10) || m["talk_time"] != strconv.FormatInt(c.Call.TalkTime, 10) {
			t.Fatalf("export row %v disagrees with GET /calls/%s %+v", m, id, c.Call)
		}
	}

	for _, iv := range []struct {
		param string
		step  time.Duration
	}{{"", 0}, {"hour", time.Hour}, {"15m", 15 * time.Minute}} {
		want := computeQueues(calls, from, to, iv.step)
		var got struct {
			Queues []ticketing.QueueReportRow
		}
		e.getJSON("admin@example.com", "/reports/queues?"+period+"&interval="+iv.param, &got)
		csvRows := e.getCSV("admin@example.com", "/reports/queues?"+period+"&interval="+iv.param, "Accept", "text/csv")
		if len(csvRows) != len(got.Queues) {
			t.Fatalf("interval %q: %d CSV rows, %d JSON rows", iv.param, len(csvRows), len(got.Queues))
		}
		buckets := 1
		if iv.step > 0 {
			buckets = int(time.Hour / iv.step)
		}
		if len(got.Queues) != buckets*len(reportLevels) {
			t.Fatalf("interval %q: %d rows, want every queue (quiet too) in each of %d intervals", iv.param, len(got.Queues), buckets)
		}
		seen := 0
		for i, r := range got.Queues {
			k := r.Queue + "@" + r.IntervalStart.Format(time.RFC3339)
			w := want[k]
			if w == nil {
				w = &queueFigures{}
			} else {
				seen++
			}
			if iv.step > 0 && r.IntervalEnd.Sub(r.IntervalStart.Time) != iv.step {
				t.Errorf("%s: interval %s–%s", k, r.IntervalStart, r.IntervalEnd)
			}
			var wantMax *int64
			if w.abandoned > 0 {
				wantMax = &w.maxAbandon
			}
			ok := r.Offered == w.offered && r.Answered == w.answered && r.Abandoned == w.abandoned && r.Voicemail == w.voicemail &&
				r.Other == w.other && r.AnsweredWithinSL == w.within && r.ServiceLevelSeconds == reportLevels[r.Queue] &&
				sameRatio(r.ServiceLevel, ratioOf(w.within, w.offered)) && sameRatio(r.ASA, ratioOf(w.answerWait, w.answered)) &&
				sameRatio(r.AHT, ratioOf(w.talk+w.hold+w.wrap, w.answered)) &&
				sameRatio(r.AvgTimeToAbandon, ratioOf(w.abandonWait, w.abandoned)) &&
				((r.MaxTimeToAbandon == nil && wantMax == nil) || (r.MaxTimeToAbandon != nil && wantMax != nil && *r.MaxTimeToAbandon == *wantMax)) &&
				r.WrapUpTime == w.wrap && r.TalkTime == w.talk && r.HoldTime == w.hold
			if !ok {
				t.Errorf("interval %q %s: report %+v\nwant (from the call records) %+v", iv.param, k, r, *w)
			}
			// The CSV row says the same.
			c := csvRows[i]
			wantCSV := map[string]string{"queue": r.Queue, "interval_start": r.IntervalStart.Format(time.RFC3339),
				"offered": strconv.FormatInt(w.offered, 10), "answered": strconv.FormatInt(w.answered, 10),
				"abandoned": strconv.FormatInt(w.abandoned, 10), "wrap_up_time": strconv.FormatInt(w.wrap, 10)}
			for col, v := range wantCSV {
				if c[col] != v {
					t.Errorf("interval %q %s: CSV %s = %q, want %q", iv.param, k, col, c[col], v)
				}
			}
			if sl := ratioOf(w.within, w.offered); sl != nil {
				if v, err := strconv.ParseFloat(c["service_level"], 64); err != nil || math.Abs(v-*sl) > 0.00005 {
					t.Errorf("interval %q %s: CSV service_level %q, want %.4f", iv.param, k, c["service_level"], *sl)
				}
			} else if c["service_level"] != "" {
				t.Errorf("interval %q %s: CSV service_level %q for no calls, want empty", iv.param, k, c["service_level"])
			}
		}
		if seen != len(want) {
			t.Errorf("interval %q: the report has %d of the %d queue intervals with calls", iv.param, seen, len(want))
		}
	}

	// The hour as a whole, against the script itself (not only the records): every queued call
	// of the hour, 14 of them unanswered, the two outside and the one still going left out.
	var whole struct{ Queues []ticketing.QueueReportRow }
	e.getJSON("admin@example.com", "/reports/queues?"+period, &whole)
	var offered, answered, abandoned int64
	for _, r := range whole.Queues {
		offered, answered, abandoned = offered+r.Offered, answered+r.Answered, abandoned+r.Abandoned
	}
	var inHour int64
	for _, q := range sh.answeredQueued {
		if !q.Before(from) && q.Before(to) {
			inHour++
		}
	}
	if inHour < 10 || answered != inHour || offered != answered+14 || abandoned != 10 {
		t.Errorf("hour: offered %d answered %d abandoned %d, scripted %d answered + 14, 10 abandoned", offered, answered, abandoned, inHour)
	}
}

// The agents report over the same scripted hour: per agent and interval, the offers (as
// scripted), answered calls and handle time (from the call records), and the time in each state
// and the occupancy, which the test computes from the state changes it recorded, clipped to each
// interval. An agent reads only their own rows; a supervisor-level reader (admin) reads all.
func TestReport_AgentsOccupancyAndHandleTime(t *testing.T) {
	e := newReportEnv(t)
	sh := buildHour(e.engineHarness)
	e.postEvents(sh.events)
	for _, st := range sh.states {
		e.states.Record(st)
	}
	e.flushStates()
	from, to := hourStart, hourStart.Add(time.Hour)
	period := "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
	calls := parseExport(t, e.getCSV("admin@example.com", "/reports/calls?"+period+"&format=csv"))

	for _, step := range []time.Duration{time.Hour, 15 * time.Minute} {
		param := map[time.Duration]string{time.Hour: "hour", 15 * time.Minute: "15m"}[step]
		var got struct{ Agents []ticketing.AgentReportRow }
		e.getJSON("admin@example.com", "/reports/agents?"+period+"&interval="+param, &got)
		rows := map[string]ticketing.AgentReportRow{}
		for _, r := range got.Agents {
			rows[fmt.Sprintf("%d@%s", r.AgentID, r.IntervalStart.Format(time.RFC3339))] = r
		}
		for b := from; b.Before(to); b = b.Add(step) {
			end := b.Add(step)
			for _, ag := range []int64{e.agent1.ID, e.agent2.ID} {
				k := fmt.Sprintf("%d@%s", ag, b.Format(time.RFC3339))
				r, ok := rows[k]
				if !ok {
					t.Errorf("%s: no row", k)
					continue
				}
				// Handle time from the call records.
				var n, handle int64
				for _, c := range calls {
					if c.agent == ag && c.outcome == "answered" && !c.at.Before(b) && c.at.Before(end) {
						n++
						handle += c.talk + c.hold + c.wrap
					}
				}
				// Time in each state from the recorded changes.
				secs := map[string]int64{}
				var mine []ticketing.AgentStateChange
				for _, s := range sh.states {
					if s.AgentID == ag {
						mine = append(mine, s)
					}
				}
				sort.Slice(mine, func(i, j int) bool { return mine[i].Since.Before(mine[j].Since) })
				for i, s := range mine {
					until := to
					if i+1 < len(mine) {
						until = mine[i+1].Since
					}
					lo, hi := maxTime(s.Since, b), minTime(until, end)
					if hi.After(lo) {
						secs[s.State] += int64(hi.Sub(lo) / time.Second)
					}
				}
				offers := 0
				for _, ev := range sh.events {
					if ev.Type == callevent.EventOffered && ev.AgentID == ag && !ev.At.Before(b) && ev.At.Before(end) {
						offers++
					}
				}
				occ := ratioOf(secs["busy"]+secs["wrap_up"], secs["available"]+secs["busy"]+secs["wrap_up"])
				if r.Answered != n || !sameRatio(r.AHT, ratioOf(handle, n)) || r.Offered != int64(offers) ||
					r.AvailableTime != secs["available"] || r.BusyTime != secs["busy"] || r.WrapUpState != secs["wrap_up"] ||
					r.AwayTime != secs["away"] || !sameRatio(r.Occupancy, occ) {
					t.Errorf("%s: report %+v\nwant answered %d handle %d offers %d states %v occupancy %v", k, r, n, handle, offers, secs, floatOrNil(occ))
				}
			}
		}
	}
	// Agents see themselves only; asking for another agent is refused.
	var mine struct{ Agents []ticketing.AgentReportRow }
	e.getJSON("agent1@example.com", "/reports/agents?"+period, &mine)
	if len(mine.Agents) != 1 || mine.Agents[0].AgentID != e.agent1.ID {
		t.Errorf("agent1's report = %+v, want agent1's row only", mine.Agents)
	}
	if code, _, b := e.get("agent1@example.com", fmt.Sprintf("/reports/agents?%s&agent_id=%d", period, e.agent2.ID)); code != 403 {
		t.Errorf("agent1 asking for agent2 = %d %s, want 403", code, b)
	}
	own := e.getCSV("agent2@example.com", "/calls?format=csv&since="+url.QueryEscape(from.Format(time.RFC3339)))
	if len(own) == 0 {
		t.Fatal("agent2's export is empty")
	}
	for _, m := range own {
		if m["agent_id"] != strconv.FormatInt(e.agent2.ID, 10) {
			t.Fatalf("agent2's export holds another's call: %v", m)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func floatOrNil(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// Intervals follow the local clock of the time zone asked for: hours of a zone at +05:30 start
// at :30 UTC, and the day DST ends in Paris is 25 hours long; the intervals meet exactly.
func TestReport_IntervalsFollowTheTimeZone(t *testing.T) {
	e := newReportEnv(t)
	var got struct{ Queues []ticketing.QueueReportRow }
	e.getJSON("admin@example.com", "/reports/queues?queue=support&interval=hour&time_zone=Asia/Kolkata&from=2026-11-30T10:00:00Z&to=2026-11-30T12:00:00Z", &got)
	var starts []string
	for _, r := range got.Queues {
		starts = append(starts, r.IntervalStart.Format(time.RFC3339)+"/"+r.IntervalEnd.Format(time.RFC3339))
	}
	want := "2026-11-30T10:00:00Z/2026-11-30T10:30:00Z 2026-11-30T10:30:00Z/2026-11-30T11:30:00Z 2026-11-30T11:30:00Z/2026-11-30T12:00:00Z"
	if strings.Join(starts, " ") != want {
		t.Errorf("Kolkata hours = %v, want %s (clipped to the period)", starts, want)
	}
	got.Queues = nil
	e.getJSON("admin@example.com", "/reports/queues?queue=support&interval=day&time_zone=Europe/Paris&from=2026-10-23T22:00:00Z&to=2026-10-26T23:00:00Z", &got)
	var lens []string
	for _, r := range got.Queues {
		lens = append(lens, r.IntervalStart.Format(time.RFC3339)+"+"+r.IntervalEnd.Sub(r.IntervalStart.Time).String())
	}
	want = "2026-10-23T22:00:00Z+24h0m0s 2026-10-24T22:00:00Z+25h0m0s 2026-10-25T23:00:00Z+24h0m0s"
	if strings.Join(lens, " ") != want {
		t.Errorf("Paris days = %v, want %s", lens, want)
	}
	// The hour Paris skips (02:00 local on 29 March 2026) is an interval of no length, with
	// nothing in it; the call queued at 01:00:30 UTC (03:00:30 local) is in the next one only.
	s := e.newCall(time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)).started("+15558880001", "+15550100").queued(30, "support").
		add(callevent.EventAbandoned, 40, func(ev *callevent.Event) { ev.Where = "queue" }).ended(40, callevent.OutcomeAbandoned)
	e.postEvents(s.evs)
	got.Queues = nil
	e.getJSON("admin@example.com", "/reports/queues?queue=support&interval=hour&time_zone=Europe/Paris&from=2026-03-29T00:00:00Z&to=2026-03-29T02:00:00Z", &got)
	var hours []string
	for _, r := range got.Queues {
		hours = append(hours, fmt.Sprintf("%s+%s:%d", r.IntervalStart.Format("15:04"), r.IntervalEnd.Sub(r.IntervalStart.Time), r.Offered))
	}
	if want := "00:00+1h0m0s:0 01:00+0s:0 01:00+1h0m0s:1"; strings.Join(hours, " ") != want {
		t.Errorf("Paris hours on 29 March = %v, want %s", hours, want)
	}
}

// Bad parameters get 422 naming the parameter; a period too long for its interval too.
func TestReport_BadParametersNameTheParameter(t *testing.T) {
	e := newReportEnv(t)
	ok := "from=2026-11-30T10:00:00Z&to=2026-11-30T11:00:00Z"
	for _, c := range []struct{ path, field string }{
		{"/reports/queues?to=2026-11-30T11:00:00Z", "from"},
		{"/reports/queues?from=2026-11-30T10:00:00Z", "to"},
		{"/reports/queues?from=yesterday&to=2026-11-30T11:00:00Z", "from"},
		{"/reports/queues?from=2026-11-30T11:00:00Z&to=2026-11-30T10:00:00Z", "to"},
		{"/reports/queues?" + ok + "&interval=week", "interval"},
		{"/reports/queues?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&interval=15m", "to"},
		{"/reports/agents?from=2025-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "to"},
		{"/reports/queues?" + ok + "&time_zone=Mars/Olympus", "time_zone"},
		{"/reports/queues?" + ok + "&service_level_seconds=0", "service_level_seconds"},
		{"/reports/queues?" + ok + "&format=xml", "format"},
		{"/reports/agents?" + ok + "&agent_id=-3", "agent_id"},
		{"/reports/calls?" + ok + "&format=pdf", "format"},
		{"/calls?format=csv", "since"},
		{"/calls?format=csv&since=2026-11-30T10:00:00Z&until=2026-11-30T09:00:00Z", "until"},
		{"/calls?format=csv&since=2026-11-30T10:00:00Z&outcome=won", "outcome"},
	} {
		code, _, b := e.get("admin@example.com", c.path)
		var m struct {
			Error   string
			Details map[string]any
		}
		_ = json.Unmarshal(b, &m)
		if code != 422 || m.Error != "RecordInvalid" || m.Details[c.field] == nil {
			t.Errorf("GET %s = %d %s, want 422 naming %s", c.path, code, b, c.field)
		}
	}
	if code, _, _ := e.get("nobody@example.com", "/reports/queues?"+ok); code != 401 {
		t.Errorf("unauthenticated = %d, want 401", code)
	}
}

// The call-record export is a CSV a spreadsheet can open safely: a caller name or number from
// outside that looks like a formula is quoted, fields with commas and quotes survive
// encoding/csv, and an empty period is a header alone.
func TestReport_CallExportIsSafeCSV(t *testing.T) {
	e := newReportEnv(t)
	s := e.newCall(hourStart).add(callevent.EventStarted, 0, func(ev *callevent.Event) {
		ev.Direction, ev.From, ev.To, ev.Line = "inbound", "=HYPERLINK(\"x\")", "+15550100", "+15550100"
	}).queued(2, "support").add(callevent.EventAbandoned, 9, func(ev *callevent.Event) { ev.Where = "queue" }).
		ended(9, callevent.OutcomeAbandoned)
	e.postEvents(s.evs)
	rows := e.getCSV("admin@example.com", "/calls?format=csv&since="+url.QueryEscape(hourStart.Add(-time.Minute).Format(time.RFC3339)))
	if len(rows) != 1 || rows[0]["from"] != `'=HYPERLINK("x")` || rows[0]["to"] != "+15550100" || rows[0]["queue_time"] != "7" {
		t.Fatalf("export = %v", rows)
	}
	empty := e.getCSV("admin@example.com", "/reports/calls?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z&format=csv")
	if len(empty) != 0 {
		t.Errorf("empty period = %v", empty)
	}
	// The JSON form is streamed, and parses: the value as stored (JSON needs no quoting).
	var js struct {
		Report map[string]string
		Calls  []ticketing.ExportedCall
	}
	period := "from=" + url.QueryEscape(hourStart.Add(-time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(hourStart.Add(time.Hour).Format(time.RFC3339))
	e.getJSON("admin@example.com", "/reports/calls?"+period, &js)
	if len(js.Calls) != 1 || js.Calls[0].From == nil || *js.Calls[0].From != `=HYPERLINK("x")` || js.Calls[0].QueuedAt == nil ||
		js.Report["from"] != hourStart.Add(-time.Minute).Format(time.RFC3339) {
		t.Errorf("JSON export = %+v", js)
	}
	js.Calls = nil
	e.getJSON("admin@example.com", "/reports/calls?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z", &js)
	if js.Calls == nil || len(js.Calls) != 0 {
		t.Errorf("empty JSON export = %+v, want calls []", js)
	}
}

// The report gauges (the Grafana row) say what the queue and agents reports say of the last
// hour: every configured queue has its series (a quiet one 0 offered, NaN service level), and
// the team's occupancy is the agents' busy and wrap-up time over their time ready.
func TestReport_GaugesShowTheLastHoursReport(t *testing.T) {
	e := newReportEnv(t)
	sh := buildHour(e.engineHarness)
	e.postEvents(sh.events)
	for _, st := range sh.states {
		e.states.Record(st)
	}
	e.flushStates()
	end := hourStart.Add(time.Hour)
	reg := prometheus.NewRegistry()
	g, err := e.store.StartReportGauges(ticketing.ReportGaugesOptions{Reports: ticketing.ReportOptions{ServiceLevels: reportLevels},
		Registerer: reg, Interval: time.Hour, Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	value := func(name, queue string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if queue == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == queue) {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no series %s{queue=%q}", name, queue)
		return 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for value("switchboard_report_offered", "support") == 0 || math.IsNaN(value("switchboard_report_occupancy", "")) {
		if time.Now().After(deadline) {
			t.Fatal("the gauges were never computed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	q := ticketing.ReportQuery{From: end.Add(-time.Hour), To: end}
	rows, err := e.store.QueueReport(e.ctx, q, ticketing.ReportOptions{ServiceLevels: reportLevels})
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	f := func(p *float64) float64 {
		if p == nil {
			return nan
		}
		return *p
	}
	same := func(a, b float64) bool { return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-9 }
	for _, r := range rows {
		for name, want := range map[string]float64{
			"switchboard_report_offered": float64(r.Offered), "switchboard_report_answered": float64(r.Answered),
			"switchboard_report_abandoned": float64(r.Abandoned), "switchboard_report_service_level": f(r.ServiceLevel),
			"switchboard_report_asa_seconds": f(r.ASA), "switchboard_report_aht_seconds": f(r.AHT),
			"switchboard_report_abandon_time_seconds": f(r.AvgTimeToAbandon),
		} {
			if got := value(name, r.Queue); !same(got, want) {
				t.Errorf("%s{queue=%q} = %v, the report says %v", name, r.Queue, got, want)
			}
		}
	}
	if v := value("switchboard_report_offered", "quiet"); v != 0 || !math.IsNaN(value("switchboard_report_service_level", "quiet")) {
		t.Errorf("quiet queue: offered %v, service level %v; want 0 and NaN", v, value("switchboard_report_service_level", "quiet"))
	}
	agents, err := e.store.AgentReport(e.ctx, q, ticketing.ReportOptions{Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	var work, ready int64
	for _, a := range agents {
		work += a.BusyTime + a.WrapUpState
		ready += a.AvailableTime + a.BusyTime + a.WrapUpState
	}
	if got := value("switchboard_report_occupancy", ""); ready == 0 || !same(got, float64(work)/float64(ready)) {
		t.Errorf("occupancy %v, want %d/%d", got, work, ready)
	}
}
