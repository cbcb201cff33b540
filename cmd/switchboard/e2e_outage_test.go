package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Issue 13, item 4, end to end through the real binary: PostgreSQL is unreachable (the
// gateway's connection goes through a proxy the test cuts) for the whole of a recorded call
// on the bridged line +15550197 — SIPp as carrier and desk phone. The call is recorded all the
// same: while the database is still away the WAV is complete on disk and its row waits in the
// journal (switchboard_recording_rows_pending 1); once the database is back, the call, its
// ticket and the voice comment carrying the recording appear, and GET /recordings/{id} serves
// the very file.
func TestEndToEnd_RecordingDuringDatabaseOutage(t *testing.T) {
	requireSipp(t)
	dbURL := pgtest.EmptyURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, u.String())
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(binary(t), path)

	proxy.Down()
	tones := t.TempDir()
	desk880 := filepath.Join(tones, "desk880.wav")
	writeToneFile(t, desk880, 880, 20)
	desk := startSipp(t, "desk_tone.xml", map[string]string{"TONE_FILE": desk880}, "-p", fmt.Sprint(deskPort))
	carrier := startSipp(t, "carrier_rtp.xml", nil, "-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")

	// Still no database: the recording is on disk, complete, and its row is pending.
	recDir := filepath.Join(dir, "recordings")
	var files []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		files, _ = filepath.Glob(filepath.Join(recDir, "*", "*", "*", "*.wav"))
		if len(files) == 1 && g.metric("switchboard_recording_rows_pending") == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(files) != 1 {
		t.Fatalf("recording files during the outage: %v, want 1", files)
	}
	if n := g.metric("switchboard_recording_rows_pending"); n != 1 {
		t.Fatalf("switchboard_recording_rows_pending = %v during the outage, want 1", n)
	}
	onDisk, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
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

	t.Logf("during the outage: %s, %.2f s, row pending", files[0], w.seconds())
	proxy.Up()
	back := time.Now()
	call := g.awaitCall("+15550197", func(c map[string]any) bool {
		return c["state"] == "ended" && c["ticket_id"] != nil && c["recording_id"] != nil
	})
	t.Logf("call with ticket and recording %.1f s after the database came back", time.Since(back).Seconds())
	comment, served := g.recordingOf("+15550197")
	if rec, _ := comment["recording"].(map[string]any); rec["id"] != call["recording_id"] {
		t.Errorf("voice comment recording %v, want %v", comment["recording"], call["recording_id"])
	}
	if !bytes.Equal(served, onDisk) {
		t.Errorf("GET /recordings/{id} served %d bytes, the file written during the outage has %d", len(served), len(onDisk))
	}
	deadline = time.Now().Add(30 * time.Second)
	for g.metric("switchboard_recording_rows_pending") != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := g.metric("switchboard_recording_rows_pending"); n != 0 {
		t.Errorf("switchboard_recording_rows_pending = %v after the database came back", n)
	}
}
