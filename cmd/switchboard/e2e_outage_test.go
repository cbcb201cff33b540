package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// runProxiedGateway runs serve on a fresh database reached through a proxy the test can cut;
// it also returns the database's direct URL, for checks that must not go through the proxy.
func runProxiedGateway(t *testing.T) (*testGateway, *pgtest.Proxy, string) {
	t.Helper()
	db := pgtest.EmptyURL(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, u.String())
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(binary(t), path)
	return g, proxy, db
}

// awaitRecordingFile waits (bounded) until recordings.dir holds exactly one file matching
// pattern and its row is pending, and returns the file's bytes.
func awaitRecordingFile(t *testing.T, g *testGateway, pattern string) (string, []byte) {
	t.Helper()
	var files []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		files, _ = filepath.Glob(filepath.Join(g.dir, "recordings", "*", "*", "*", pattern))
		if len(files) == 1 && g.metric("switchboard_recording_rows_pending") == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(files) != 1 {
		t.Fatalf("recording files %s during the outage: %v, want 1", pattern, files)
	}
	if n := g.metric("switchboard_recording_rows_pending"); n != 1 {
		t.Fatalf("switchboard_recording_rows_pending = %v during the outage, want 1", n)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return files[0], b
}

// awaitNoPendingRows waits (bounded) until every recording row reached the database.
func awaitNoPendingRows(t *testing.T, g *testGateway) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for g.metric("switchboard_recording_rows_pending") != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := g.metric("switchboard_recording_rows_pending"); n != 0 {
		t.Errorf("switchboard_recording_rows_pending = %v after the database came back", n)
	}
}

// Issue 13, item 4, end to end through the real binary: PostgreSQL is unreachable (the
// gateway's connection goes through a proxy the test cuts) for the whole of a recorded call
// on the bridged line +15550197 — SIPp as carrier and desk phone. The call is recorded all the
// same: while the database is still away the WAV is complete on disk and its row waits in the
// journal (switchboard_recording_rows_pending 1); once the database is back, the call, its
// ticket and the voice comment carrying the recording appear, and GET /recordings/{id} serves
// the very file.
func TestEndToEnd_RecordingDuringDatabaseOutage(t *testing.T) {
	requireSipp(t)
	g, proxy, _ := runProxiedGateway(t)
	sipPort, deskPort := g.sipPort, g.deskPort
	proxy.Down()
	tones := t.TempDir()
	desk880 := filepath.Join(tones, "desk880.wav")
	writeToneFile(t, desk880, 880, 20)
	desk := startSipp(t, "desk_tone.xml", map[string]string{"TONE_FILE": desk880}, "-p", fmt.Sprint(deskPort))
	carrier := startSipp(t, "carrier_rtp.xml", nil, "-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")

	// Still no database: the recording is on disk, complete, and its row is pending.
	file, onDisk := awaitRecordingFile(t, g, "*.wav")
	w, err := parsePCMWAV(onDisk)
	if err != nil {
		t.Fatalf("recording during the outage: %v", err)
	}
	if w.channels != 2 || w.dataOffset+w.dataSize != int64(len(onDisk)) || w.seconds() < 2.5 {
		t.Fatalf("recording during the outage: %d channels, data %d at %d of %d bytes, %.2f s; want a complete stereo file of the 3 s call",
			w.channels, w.dataSize, w.dataOffset, len(onDisk), w.seconds())
	}
	if left := windows(w.left, 440, w.rate); bytes.Count([]byte(left), []byte("t")) < len(left)/2 {
		t.Errorf("left channel (caller, 440 Hz) during the outage: %s", left)
	}

	t.Logf("during the outage: %s, %.2f s, row pending", file, w.seconds())
	proxy.Up()
	back := time.Now()
	call := g.awaitCall("+15550197", func(c map[string]any) bool {
		return c["state"] == "ended" && c["ticket_id"] != nil && c["recording_id"] != nil
	})
	t.Logf("call with ticket and recording %.1f s after the database came back", time.Since(back).Seconds())
	// The row's writer retries with a backoff of up to 5 s: until it has written the row, the
	// comment names a recording the API cannot serve yet (docs/recordings.md).
	awaitNoPendingRows(t, g)
	comment, served := g.recordingOf("+15550197")
	if rec, _ := comment["recording"].(map[string]any); rec["id"] != call["recording_id"] {
		t.Errorf("voice comment recording %v, want %v", comment["recording"], call["recording_id"])
	}
	if !bytes.Equal(served, onDisk) {
		t.Errorf("GET /recordings/{id} served %d bytes, the file written during the outage has %d", len(served), len(onDisk))
	}
}

// Issue 13, item 4, end to end: a caller presses 9 in the main menu while PostgreSQL is
// unreachable and leaves a message. The menu reaches the beep and the recording (not the
// goodbye), the mono message is complete on disk at once; once the database is back the call
// ends as voicemail with a voicemail ticket whose voice comment serves that very file.
func TestEndToEnd_VoicemailDuringDatabaseOutage(t *testing.T) {
	requireSipp(t)
	g, proxy, _ := runProxiedGateway(t)
	proxy.Down()
	carrier := startSipp(t, "carrier_ivr.xml", map[string]string{"KEY_PCAP": "/usr/share/sip-tester/dtmf_2833_9.pcap", "TALK_MS": "9000"},
		"-s", "+15550100", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	_, onDisk := awaitRecordingFile(t, g, "*-voicemail.wav")
	if ch, secs := wavChannels(t, onDisk); ch != 1 || secs < 1 {
		t.Fatalf("voicemail message during the outage: %d channels, %.1f s; want mono with the message", ch, secs)
	}

	proxy.Up()
	call := g.awaitCall("+15550100", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["menu_path"] != "main>9" || call["outcome"] != "voicemail" {
		t.Errorf("call %v: want menu path main>9, outcome voicemail", call)
	}
	tk, _ := g.ticketOf(call)
	if tk["via"].(map[string]any)["channel"] != "voicemail" {
		t.Errorf("ticket %v: want a voicemail ticket", tk)
	}
	awaitNoPendingRows(t, g)
	if _, served := g.recordingOf("+15550100"); !bytes.Equal(served, onDisk) {
		t.Errorf("GET /recordings/{id} served %d bytes, the message written during the outage has %d", len(served), len(onDisk))
	}
}

// Issue 17, end to end through the real binary: PostgreSQL answers, but slowly — every message
// the gateway sends it is held back 400 ms by the proxy, so each commit of the event log takes
// about a second — while SIPp places six calls to the bridged line (+15550197, SIPp's desk
// answers), two at a time back to back, with sip.max_calls 3 (one place for the call whose BYE
// SIPp just got answered: its teardown — the desk's BYE, the media, the recording — still holds
// its place for a moment, and SIPp starts the next call at once; on a loaded machine that
// moment outlasted the 80 ms SIPp took, with max_calls 2). Every call is set up, answered
// and hung up by SIPp without a 503: a call's place is free at its BYE, not once the event log
// has committed its last events (before, each call kept its place until then and the next
// INVITE got 503, failing SIPp). The rules engine, on the same slow database, falls behind and
// the backlog gauges say so; once the database is fast again it catches up: every call becomes
// an ended call record with its ticket and recording, and the backlog gauge reads 0.
func TestEndToEnd_SlowDatabaseHoldsNoCallPlaceAndEveryCallGetsItsTicket(t *testing.T) {
	requireSipp(t)
	db := pgtest.EmptyURL(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, u.String())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "sip:\n  listen:", "sip:\n  max_calls: 3\n  listen:", 1)
	if cfg == string(b) {
		t.Fatal("the harness configuration no longer has sip.listen")
	}
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(binary(t), path)

	proxy.Slow(400 * time.Millisecond)
	const calls = 6
	desk := startSippN(t, "desk_echo.xml", nil, calls, 120*time.Second, "-p", strconv.Itoa(deskPort), "-rtp_echo")
	carrier := startSippN(t, "carrier_rtp.xml", nil, calls, 120*time.Second, "-s", "+15550197", "-l", "2", "-r", "10",
		fmt.Sprintf("127.0.0.1:%d", sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")
	if n := g.metric(`switchboard_sip_responses_total{code="503"}`); n != 0 {
		t.Errorf("%v INVITEs got 503 with the database slow", n)
	}
	// The rules engine works on the same slow database: it is behind the calls, and says so.
	behind := time.Now().Add(30 * time.Second)
	for time.Now().Before(behind) && g.metric("switchboard_ticketing_backlog_events") == 0 {
		time.Sleep(200 * time.Millisecond)
	}
	if g.metric("switchboard_ticketing_backlog_events") == 0 || g.metric("switchboard_ticketing_oldest_unapplied_seconds") == 0 {
		t.Errorf("backlog %v events, oldest %v s while the engine works on a slow database; want both above 0",
			g.metric("switchboard_ticketing_backlog_events"), g.metric("switchboard_ticketing_oldest_unapplied_seconds"))
	}
	proxy.Slow(0)

	deadline := time.Now().Add(60 * time.Second)
	var ended int
	for time.Now().Before(deadline) {
		ended = 0
		if code, m := g.api("GET", "/calls?to=%2B15550197", ""); code == 200 {
			for _, c := range m["calls"].([]any) {
				cm := c.(map[string]any)
				if cm["state"] == "ended" && cm["ticket_id"] != nil && cm["recording_id"] != nil {
					ended++
				}
			}
		}
		if ended == calls {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ended != calls {
		t.Fatalf("%d calls ended with a ticket and a recording, want %d", ended, calls)
	}
	for time.Now().Before(deadline) && g.metric("switchboard_ticketing_backlog_events") != 0 {
		time.Sleep(200 * time.Millisecond)
	}
	if n := g.metric("switchboard_ticketing_backlog_events"); n != 0 {
		t.Errorf("switchboard_ticketing_backlog_events = %v once every call has its ticket", n)
	}
}
