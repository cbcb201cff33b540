package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// The fault suite: the gateway's bad days, driven through the real binary with real peers.

// faultGateway is a dev-shaped gateway whose database sits behind a proxy the test can cut.
type faultGateway struct {
	*testGateway
	db    string // the real database, for the test's own queries
	proxy *pgtest.Proxy
}

func startFaultGateway(t *testing.T) *faultGateway {
	t.Helper()
	g, p, db := runProxiedGateway(t)
	return &faultGateway{testGateway: g, db: db, proxy: p}
}

// count runs a count query on the real database (never through the proxy).
func (f *faultGateway) count(sql string, args ...any) int {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, f.db)
	if err != nil {
		f.t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// awaitCount polls a count query until it reaches want, within limit.
func (f *faultGateway) awaitCount(what string, want int, limit time.Duration, sql string, args ...any) {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	n := -1
	for time.Now().Before(deadline) {
		if n = f.count(sql, args...); n == want {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	f.t.Fatalf("%s: %d, want %d after %v\n%s", what, n, want, limit, tail(f.logText(), 4000))
}

// PostgreSQL goes away for 60 s while SIPp keeps placing bridged, recorded calls and callers
// keep leaving voicemails. Proves: no call is refused or dropped (every SIPp call succeeds),
// every call is recorded and every voicemail taken during the outage, no event is lost (every
// call ends up ended, with its ticket, its recording row and its voice comment), and the spool
// drains at runtime once the database is back.
func TestFault_DatabaseDown60sUnderLoad_NoCallDroppedNoEventLost(t *testing.T) {
	requireSipp(t)
	if testing.Short() {
		t.Skip("60 s outage")
	}
	f := startFaultGateway(t)
	const (
		bridged   = 80 // one a second, 3 s each, to the desk line
		voicemail = 16 // one every five seconds, an 8 s message each
		outage    = 60 * time.Second
	)
	desk := startSippN(t, "desk_echo.xml", nil, bridged, 200*time.Second, "-p", strconv.Itoa(f.deskPort), "-rtp_echo")
	carrier := startSippN(t, "carrier_rtp.xml", nil, bridged, 200*time.Second,
		"-s", "+15550197", "-r", "1", "-rp", "1000", "-l", "10", fmt.Sprintf("127.0.0.1:%d", f.sipPort))
	caller := startSippN(t, "carrier_rtp.xml", map[string]string{`<pause milliseconds="3000"/>`: `<pause milliseconds="8000"/>`},
		voicemail, 200*time.Second, "-s", "+15550198", "-r", "1", "-rp", "5000", "-l", "5", fmt.Sprintf("127.0.0.1:%d", f.sipPort))

	time.Sleep(8 * time.Second) // calls before the outage too: the load is steady, not a test event
	t.Logf("database cut at %s", time.Now().Format(time.RFC3339))
	f.proxy.Down()
	cut := time.Now()
	// While the database is away the gateway keeps answering: /healthz stays up and calls flow.
	time.Sleep(outage - time.Since(cut))
	f.proxy.Up()
	t.Logf("database back at %s", time.Now().Format(time.RFC3339))

	carrier.wait(t, "carrier (bridged load)")
	desk.wait(t, "desk")
	caller.wait(t, "voicemail callers")

	// Every event reached the database and was applied: each call is ended with its ticket.
	f.awaitCount("bridged calls ended with a ticket and a recording", bridged, 120*time.Second,
		`SELECT count(*) FROM calls WHERE to_number = '+15550197' AND state = 'ended' AND outcome = 'answered'
		   AND ticket_id IS NOT NULL AND recording_id IS NOT NULL`)
	f.awaitCount("voicemail calls ended with a ticket and the message", voicemail, 60*time.Second,
		`SELECT count(*) FROM calls WHERE to_number = '+15550198' AND state = 'ended' AND outcome = 'voicemail'
		   AND ticket_id IS NOT NULL AND voicemail_id IS NOT NULL`)
	// Recordings made during the outage have their rows, finished.
	f.awaitCount("recording rows ready", bridged+voicemail, 60*time.Second,
		`SELECT count(*) FROM recordings WHERE state = 'ready' AND duration_ms > 0`)
	// Nothing left unapplied, nothing dead-lettered, the spool drained.
	f.awaitCount("unapplied events", 0, 30*time.Second, `SELECT count(*) FROM call_events_pending`)
	if n := f.count(`SELECT count(*) FROM call_events_dead`); n != 0 {
		t.Errorf("%d events dead-lettered; an outage must not make any", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.metric("switchboard_ticketing_spool_events") != 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if n := f.metric("switchboard_ticketing_spool_events"); n != 0 {
		t.Errorf("spool still holds %v events", n)
	}
	// Each call's voice comment (or voicemail comment) carries its recording.
	if n := f.count(`SELECT count(*) FROM calls c WHERE c.to_number IN ('+15550197', '+15550198') AND NOT EXISTS (
		SELECT 1 FROM ticket_comments m WHERE m.ticket_id = c.ticket_id AND m.call_id = c.id AND m.recording_id IS NOT NULL)`); n != 0 {
		t.Errorf("%d calls without a voice comment carrying the recording", n)
	}
}

// poisonSpool writes the spool a previous run (one from before SIP strings were cleaned) could
// have left: a call.started whose caller name holds a NUL, which PostgreSQL's jsonb refuses
// (SQLSTATE 22P05), between the events of a good call.
func poisonSpool(t *testing.T, path string, at time.Time) (poison, good string) {
	t.Helper()
	poison, good = "poison-"+strconv.FormatInt(at.UnixNano(), 36), "good-"+strconv.FormatInt(at.UnixNano(), 36)
	evs := []string{
		fmt.Sprintf(`{"id":"%s","call_id":%q,"seq":1,"type":"call.started","at":%q,"direction":"inbound","from":"+15557770001","to":"+15550198","line":"+15550198"}`,
			uuid.NewString(), good, at.Format(time.RFC3339Nano)),
		fmt.Sprintf(`{"id":"%s","call_id":%q,"seq":1,"type":"call.started","at":%q,"direction":"inbound","from":"+15557770002","to":"+15550198","line":"+15550198","caller_name":"Eve\u0000"}`,
			uuid.NewString(), poison, at.Format(time.RFC3339Nano)),
		fmt.Sprintf(`{"id":"%s","call_id":%q,"seq":2,"type":"call.ended","at":%q,"outcome":"failed"}`,
			uuid.NewString(), good, at.Add(time.Second).Format(time.RFC3339Nano)),
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Join(evs, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	return poison, good
}

// A poison event reaches the gateway by every road, and ticketing keeps going:
//   - in the spool a previous run left (written before SIP strings were cleaned): PostgreSQL
//     refuses it at replay; it is set aside in call_events_dead and the events around it are
//     applied;
//   - through SIP: a carrier INVITE whose From carries control characters in the display name
//     and a %00 in the user part — the call is bridged and gets its ticket, with clean strings;
//   - through POST /call_events: the poison gets 422 naming the field, the good events of the
//     same request are applied.
func TestFault_PoisonEventBySpoolSIPAndAPI_TicketingKeepsGoing(t *testing.T) {
	requireSipp(t)
	db := pgtest.EmptyURL(t)
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, db)
	poison, good := poisonSpool(t, filepath.Join(dir, "spool", "events.jsonl"), time.Now().Add(-time.Minute).UTC())
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(binary(t), path)
	f := &faultGateway{testGateway: g, db: db}

	// The spool: the poison is dead-lettered, the good call around it applied.
	f.awaitCount("poison event in call_events_dead", 1, 30*time.Second, `SELECT count(*) FROM call_events_dead WHERE call_id = $1`, poison)
	f.awaitCount("the good call of the spool applied", 1, 30*time.Second, `SELECT count(*) FROM calls WHERE id = $1 AND state = 'ended'`, good)
	if n := g.metric("switchboard_ticketing_events_dead_total"); n != 1 {
		t.Errorf("switchboard_ticketing_events_dead_total = %v, want 1", n)
	}

	// SIP: control characters in the display name, a %00 in the user part.
	desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(deskPort), "-rtp_echo")
	carrier := startSipp(t, "carrier_rtp.xml", map[string]string{
		`"Alice Caller" <sip:+15551234567@`: "\"Al\x01ice\x1b Caller\x7f\" <sip:%2B1555%001234567@"},
		"-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")
	call := g.awaitCall("+15550197", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["from"] != "+15551234567" || call["outcome"] != "answered" {
		t.Errorf("hostile call %v: want from +15551234567 (the %%00 dropped), answered", call)
	}
	tk, _ := g.ticketOf(call)
	for _, s := range []string{fmt.Sprint(call["caller_name"]), fmt.Sprint(tk["subject"])} {
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("a control character reached the ticketing core: %q", s)
		}
	}
	if strings.Contains(g.logText(), `\u0001`) || strings.Contains(g.logText(), `\u001b`) {
		t.Errorf("a control character reached a log line")
	}

	// The API: the poison is refused naming its field, the good events of the request applied.
	apiCall := "api-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	body := fmt.Sprintf(`{"events":[
		{"id":%q,"call_id":%q,"seq":1,"type":"call.started","at":%q,"direction":"inbound","from":"+15557770003","to":"+15550198","line":"+15550198"},
		{"id":%q,"call_id":%q,"seq":2,"type":"call.ended","at":%q,"outcome":"failed"},
		{"id":%q,"call_id":"api-poison","seq":1,"type":"call.started","at":%q,"direction":"inbound","from":"+15557770004","to":"+15550198","caller_name":"Eve\u0000"}]}`,
		uuid.NewString(), apiCall, at, uuid.NewString(), apiCall, at, uuid.NewString(), at)
	code, m := g.api("POST", "/call_events", body)
	errs, _ := m["errors"].([]any)
	if code != 200 || m["accepted"] != float64(2) || len(errs) != 1 {
		t.Fatalf("POST /call_events with one poison event: %d %v; want 200, 2 accepted, 1 error", code, m)
	}
	if e := errs[0].(map[string]any); e["index"] != float64(2) || e["field"] != "caller_name" {
		t.Errorf("error %v: want index 2, field caller_name", e)
	}
	f.awaitCount("the API's good call applied", 1, 30*time.Second, `SELECT count(*) FROM calls WHERE id = $1 AND state = 'ended'`, apiCall)
	if n := f.count(`SELECT count(*) FROM call_events WHERE call_id = 'api-poison'`); n != 0 {
		t.Errorf("the refused event was stored (%d rows)", n)
	}

	// The operator's side: the spool's dead letter is listed, shown, put back cleaned — the
	// poison call then gets its record like any call — and is no longer pending.
	f.deadLettersCommand(poison, path)
}

// deadLettersCommand drives `switchboard dead-letters` on the dead letter of call poison.
func (f *faultGateway) deadLettersCommand(poison, path string) {
	t := f.t
	cmd := func(want int, args ...string) string {
		t.Helper()
		var out, errb strings.Builder
		if code := run(context.Background(), append([]string{"dead-letters", "--config", path}, args...), &out, &errb); code != want {
			t.Fatalf("dead-letters %v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	list := cmd(0)
	if !strings.Contains(list, poison) || !strings.Contains(list, "22P05") || !strings.Contains(list, "pending") {
		t.Fatalf("dead-letters lists no pending poison event (SQLSTATE 22P05):\n%s", list)
	}
	id := strconv.Itoa(f.count(`SELECT id::int FROM call_events_dead WHERE call_id = $1`, poison))
	if out := cmd(0, "--show", id); !strings.Contains(out, `Eve\u0000`) || !strings.Contains(out, `"caller_name":"Eve"`) {
		t.Errorf("--show: want the event as set aside and as --reinject would store it:\n%s", out)
	}
	if out := cmd(2, "--drop", "x"); !strings.Contains(out, "--drop takes a dead letter's id") {
		t.Errorf("--drop x: %s", out)
	}
	if out := cmd(1, "--reinject", "999999"); !strings.Contains(out, "no such dead letter") {
		t.Errorf("--reinject of no dead letter: %s", out)
	}
	if out := cmd(0, "--reinject", id); !strings.Contains(out, "re-injected dead letter "+id) {
		t.Errorf("--reinject: %s", out)
	}
	f.awaitCount("the re-injected call.started applied", 1, 30*time.Second, `SELECT count(*) FROM calls WHERE id = $1 AND caller_name = 'Eve'`, poison)
	if out := cmd(0); !strings.Contains(out, "no pending dead letters") {
		t.Errorf("dead-letters after the re-injection:\n%s", out)
	}
	if out := cmd(0, "--all"); !strings.Contains(out, "re-injected") {
		t.Errorf("dead-letters --all does not say the poison was re-injected:\n%s", out)
	}
	if out := cmd(1, "--drop", id); !strings.Contains(out, "already re-injected or dropped") {
		t.Errorf("--drop of a re-injected dead letter: %s", out)
	}
}
