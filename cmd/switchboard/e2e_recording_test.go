package main

import (
	"bytes"
	"context"
	bin "encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/media"
)

// The end-to-end proofs of issue 8 (recordings) through the real `switchboard serve` binary:
// SIPp plays the carrier (440 Hz) and the desk phone on the bridged line +15550197 (880 Hz),
// and the tests read what the gateway recorded through its HTTP API, its database and its
// recordings directory.

// recGateway is a `switchboard serve` process that can be SIGKILLed and started again with the
// same configuration, database and recordings directory.
type recGateway struct {
	t      *testing.T
	bin    string
	config string
	dbURL  string
	g      *testGateway // the running process; replaced by restart
}

// startRecGateway writes the dev-shaped test configuration (writeGatewayConfig) on a fresh
// database and starts serve.
func startRecGateway(t *testing.T) *recGateway {
	t.Helper()
	r := &recGateway{t: t, bin: binary(t), dbURL: pgtest.EmptyURL(t)}
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, r.dbURL)
	r.config = path
	r.g = &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	r.start()
	return r
}

// startRecGatewayEdit is startRecGateway with the configuration changed by edit first.
func startRecGatewayEdit(t *testing.T, edit func(cfg string) string) *recGateway {
	t.Helper()
	r := &recGateway{t: t, bin: binary(t), dbURL: pgtest.EmptyURL(t)}
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, r.dbURL)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
	r.config = path
	r.g = &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	r.start()
	return r
}

// start runs serve for r.g (a fresh testGateway value per process) and waits for /readyz.
// Cleanup stops the process with SIGTERM (SIGKILL after 20 s) unless it has exited already.
func (r *recGateway) start() {
	t := r.t
	t.Helper()
	r.g.launch(r.bin, r.config)
}

// kill SIGKILLs the gateway and waits until it is gone.
func (r *recGateway) kill() {
	r.t.Helper()
	if err := r.g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatalf("SIGKILL gateway: %v", err)
	}
	select {
	case err := <-r.g.exited:
		r.g.exited <- err
	case <-time.After(20 * time.Second):
		r.t.Fatal("gateway did not die within 20 s of SIGKILL")
	}
}

// restart starts serve again with the same configuration, database and directories.
func (r *recGateway) restart() {
	r.t.Helper()
	old := r.g
	r.g = &testGateway{t: r.t, base: old.base, sipPort: old.sipPort, deskPort: old.deskPort, dir: old.dir}
	r.start()
}

// query runs one SQL query on the gateway's database and scans its single row into dst.
func (r *recGateway) query(dst []any, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql, args...).Scan(dst...)
}

// writeToneFile writes secs seconds of a freq Hz μ-law tone as a WAV for SIPp's rtp_stream.
func writeToneFile(t *testing.T, path string, freq float64, secs int) {
	t.Helper()
	n := 8000 * secs
	data := make([]byte, n)
	for i := range data {
		data[i] = media.EncodeULaw(int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/8000)))
	}
	var b bytes.Buffer
	w := func(v any) { _ = bin.Write(&b, bin.LittleEndian, v) }
	b.WriteString("RIFF")
	w(uint32(4 + 26 + 12 + 8 + n))
	b.WriteString("WAVEfmt ")
	w(uint32(18))
	w(uint16(7)) // WAVE_FORMAT_MULAW
	w(uint16(1))
	w(uint32(8000))
	w(uint32(8000))
	w(uint16(1))
	w(uint16(8))
	w(uint16(0))
	b.WriteString("fact")
	w(uint32(4))
	w(uint32(n))
	b.WriteString("data")
	w(uint32(n))
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pcmWAV is a parsed 16-bit PCM WAV: what its header claims and the samples it holds.
type pcmWAV struct {
	channels, rate, bits int
	riffSize, dataSize   int64 // as the header says
	dataOffset           int64
	left, right          []float64 // the samples the header's data size covers, per channel
}

// parsePCMWAV reads a RIFF/WAVE file chunk by chunk and checks that it is 16-bit PCM and that
// the header's sizes stay within the bytes present.
func parsePCMWAV(b []byte) (*pcmWAV, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, fmt.Errorf("not a RIFF/WAVE file (%d bytes)", len(b))
	}
	w := &pcmWAV{riffSize: int64(bin.LittleEndian.Uint32(b[4:8]))}
	if w.riffSize+8 > int64(len(b)) {
		return nil, fmt.Errorf("RIFF size %d beyond the %d bytes present", w.riffSize, len(b))
	}
	for off := int64(12); off+8 <= int64(len(b)); {
		id, size := string(b[off:off+4]), int64(bin.LittleEndian.Uint32(b[off+4:off+8]))
		body := off + 8
		switch id {
		case "fmt ":
			if size < 16 || body+16 > int64(len(b)) {
				return nil, fmt.Errorf("short fmt chunk")
			}
			if f := bin.LittleEndian.Uint16(b[body:]); f != 1 {
				return nil, fmt.Errorf("format %d, want 1 (PCM)", f)
			}
			w.channels = int(bin.LittleEndian.Uint16(b[body+2:]))
			w.rate = int(bin.LittleEndian.Uint32(b[body+4:]))
			w.bits = int(bin.LittleEndian.Uint16(b[body+14:]))
		case "data":
			if body+size > int64(len(b)) {
				return nil, fmt.Errorf("data size %d beyond the %d bytes present", size, int64(len(b))-body)
			}
			if w.channels < 1 || w.bits != 16 {
				return nil, fmt.Errorf("data before a 16-bit fmt chunk")
			}
			w.dataOffset, w.dataSize = body, size
			frames := size / int64(2*w.channels)
			w.left, w.right = make([]float64, frames), make([]float64, frames)
			for i := range frames {
				p := body + i*int64(2*w.channels)
				w.left[i] = float64(int16(bin.LittleEndian.Uint16(b[p:])))
				if w.channels > 1 {
					w.right[i] = float64(int16(bin.LittleEndian.Uint16(b[p+2:])))
				}
			}
			return w, nil
		}
		off = body + size + size%2
	}
	return nil, fmt.Errorf("no data chunk")
}

func (w *pcmWAV) seconds() float64 { return float64(len(w.left)) / float64(w.rate) }

// tone measures one window: the share of its energy at freq (Goertzel, RFC-free DSP: the
// squared DFT magnitude at one bin, normalised so a pure on-bin tone gives ~1) and its RMS.
func tone(x []float64, freq float64, rate int) (share, rms float64) {
	n := len(x)
	if n == 0 {
		return 0, 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2, energy float64
	for _, v := range x {
		s0 := v + coeff*s1 - s2
		s2, s1 = s1, s0
		energy += v * v
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	if energy == 0 {
		return 0, 0
	}
	return 2 * power / (float64(n) * energy), math.Sqrt(energy / float64(n))
}

// window labels each 100 ms of one channel: 't' when freq holds most of the energy, 's' when
// it is silent, '?' otherwise.
func windows(x []float64, freq float64, rate int) string {
	const win = 800 // 100 ms at 8 kHz: 440 and 880 Hz fall on bins
	var sb strings.Builder
	for i := 0; i+win <= len(x); i += win {
		share, rms := tone(x[i:i+win], freq, rate)
		switch {
		case rms < 50:
			sb.WriteByte('s')
		case share > 0.6:
			sb.WriteByte('t')
		default:
			sb.WriteByte('?')
		}
	}
	return sb.String()
}

// logRecordingMetrics logs the gateway's recording and RTP counters: when a window of a
// recording is silent, they tell whether the writer dropped packets (late after a stall, or a
// full buffer) or none arrived.
func logRecordingMetrics(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Logf("metrics: %v", err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "switchboard_recording") || strings.HasPrefix(l, "switchboard_rtp_packets") ||
			strings.HasPrefix(l, "switchboard_media_") {
			t.Log(l)
		}
	}
}

// getRecording fetches GET /api/v2/recordings/{id} with basic auth and an optional Range.
func getRecording(t *testing.T, base, id, user, pass, rng string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v2/recordings/"+id, nil)
	req.SetBasicAuth(user, pass)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// recordingFile returns the absolute path of a recording under the config's recordings dir.
func (r *recGateway) recordingFile(id string) string {
	r.t.Helper()
	var rel string
	if err := r.query([]any{&rel}, `SELECT path FROM recordings WHERE id = $1`, id); err != nil {
		r.t.Fatalf("recording %s: %v", id, err)
	}
	return filepath.Join(r.g.dir, "recordings", filepath.FromSlash(rel))
}

// A bridged call with a hold in the middle, recorded end to end: the carrier sends 440 Hz, the
// desk 880 Hz; the recording downloaded from the API is a stereo 8 kHz 16-bit WAV with 440 Hz
// on the left (the caller) and 880 Hz on the right (what the caller hears), the carrier's hold
// (re-INVITE sendonly, 3 s) is silence on the right for its length at its place — the file is
// not shortened and the tone after the hold sits at the right time — and the file lasts the
// recorded time (recording start to call.ended) within two 20 ms frames. Then the access rules
// (Range, agents_can_access) and the deletion from the ticket (CD-6) on that same recording.
func TestEndToEnd_RecordingBridgedCallToneHoldAccessDelete(t *testing.T) {
	requireSipp(t)
	r := startRecGateway(t)
	g := r.g
	tones := t.TempDir()
	desk880 := filepath.Join(tones, "desk880.wav")
	writeToneFile(t, desk880, 880, 20)

	const talk1, hold, talk2 = 2000, 3000, 2000
	desk := startSipp(t, "desk_tone.xml", map[string]string{"TONE_FILE": desk880}, "-p", strconv.Itoa(g.deskPort))
	carrier := startSipp(t, "carrier_hold.xml", map[string]string{
		"TALK1_MS": strconv.Itoa(talk1), "HOLD_MS": strconv.Itoa(hold), "TALK2_MS": strconv.Itoa(talk2)},
		"-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")

	call := g.awaitCall("+15550197", func(c map[string]any) bool {
		return c["state"] == "ended" && c["ticket_id"] != nil && c["recording_id"] != nil
	})
	recID := call["recording_id"].(string)
	if h, _ := call["hold_time"].(float64); h < 2 || h > 4 {
		t.Errorf("call hold_time %v, want about 3 s", call["hold_time"])
	}
	comment, raw := g.recordingOf("+15550197")
	if rec, _ := comment["recording"].(map[string]any); rec["id"] != recID {
		t.Errorf("voice comment recording %v, want %s", comment["recording"], recID)
	}

	t.Run("tones_hold_and_length", func(t *testing.T) {
		w, err := parsePCMWAV(raw)
		if err != nil {
			t.Fatalf("recording: %v", err)
		}
		if w.channels != 2 || w.rate != 8000 || w.bits != 16 || w.dataOffset+w.dataSize != int64(len(raw)) || w.riffSize+8 != int64(len(raw)) {
			t.Fatalf("recording: %d channels, %d Hz, %d bits, data %d at %d, RIFF %d, %d bytes; want stereo 8 kHz 16-bit with exact sizes",
				w.channels, w.rate, w.bits, w.dataSize, w.dataOffset, w.riffSize, len(raw))
		}
		// Recorded time: from the recording's start (row started_at, the writer's clock zero)
		// to the call's end. The gateway finishes the recording right after it emitted
		// call.ended, and the row is completed after the file is closed: the file must end
		// between the two, and within 100 ms of call.ended (issue 8). Known failure (a gateway
		// bug, not this test): when the gateway's RTP reading stalls longer than the writer's
		// resync (Delay/2 = 150 ms) — CPU starvation under -race — recordings/timeline.go
		// re-anchors the burst after the stall at its arrival: silence is inserted in both
		// channels and the stream stays up to 150 ms ahead of wall time, so the file outlasts
		// the call (seen once: 7.161 s for 7.023 s, a "?ss" gap in both channels, no drops).
		var started, ready, ended time.Time
		if err := r.query([]any{&started, &ready}, `SELECT started_at, ready_at FROM recordings WHERE id = $1`, recID); err != nil {
			t.Fatal(err)
		}
		if err := r.query([]any{&ended}, `SELECT at FROM call_events WHERE call_id = $1 AND type = 'call.ended'`, call["id"]); err != nil {
			t.Fatal(err)
		}
		toEnd, toReady := ended.Sub(started).Seconds(), ready.Sub(started).Seconds()
		t.Logf("file %.3f s; recording start → call.ended %.3f s, → row ready %.3f s", w.seconds(), toEnd, toReady)
		if w.seconds() < toEnd-0.020 || w.seconds() > toReady+0.020 || w.seconds() > toEnd+0.100 {
			t.Errorf("file lasts %.3f s; want between the recorded time to call.ended (%.3f s) and to the row's completion (%.3f s), within a 20 ms frame, and at most 100 ms past call.ended",
				w.seconds(), toEnd, toReady)
		}
		// The whole call is at least talk1+hold+talk2 of wall time: nothing was cut out.
		if w.seconds() < float64(talk1+hold+talk2)/1000 {
			t.Errorf("file lasts %.3f s, shorter than the %d ms the carrier talked and held", w.seconds(), talk1+hold+talk2)
		}

		logRecordingMetrics(t, g.base)
		left, right := windows(w.left, 440, w.rate), windows(w.right, 880, w.rate)
		t.Logf("left  440 Hz (100 ms windows): %s", left)
		t.Logf("right 880 Hz (100 ms windows): %s", right)
		// Left: the caller's 440 Hz from its first packet to the BYE, hold included (a
		// sendonly carrier keeps sending).
		first := strings.IndexByte(left, 't')
		if first < 0 || first > 5 {
			t.Fatalf("left channel: 440 Hz starts at window %d, want within 0.5 s of the answer", first)
		}
		if body := left[first : len(left)-1]; strings.Count(body, "t") < len(body)-4 {
			t.Errorf("left channel: 440 Hz in %d of %d windows after it started, want all but a few", strings.Count(body, "t"), len(body))
		}
		// Right: 880 Hz, then silence for the hold at its place, then 880 Hz again to the end.
		rf := strings.IndexByte(right, 't')
		holdFrom := rf + strings.Index(right[max(rf, 0):], "sssss")
		if rf < 0 || rf > 5 || holdFrom < rf {
			t.Fatalf("right channel: no 880 Hz then hold silence: %s", right)
		}
		holdTo := holdFrom + strings.IndexByte(right[holdFrom:], 't')
		if holdTo < holdFrom {
			t.Fatalf("right channel: no 880 Hz after the hold: %s", right)
		}
		// The hold starts talk1 after the ACK (≈ the carrier's first 440 Hz window) and lasts
		// hold; allow 500 ms for the re-INVITE transactions and window edges.
		if at := float64(holdFrom-first) / 10; math.Abs(at-talk1/1000.0) > 0.5 {
			t.Errorf("right channel: hold silence starts %.1f s after the caller's audio, want %.1f s", at, talk1/1000.0)
		}
		if d := float64(holdTo-holdFrom) / 10; math.Abs(d-hold/1000.0) > 0.5 {
			t.Errorf("right channel: hold silence lasts %.1f s, want %.1f s", d, hold/1000.0)
		}
		if body := right[rf:holdFrom]; strings.Count(body, "t") < len(body)-4 {
			t.Errorf("right channel before hold: 880 Hz in %d of %d windows", strings.Count(body, "t"), len(body))
		}
		if body := right[holdTo : len(right)-1]; strings.Count(body, "t") < len(body)-4 ||
			math.Abs(float64(len(body))/10-talk2/1000.0) > 0.5 {
			t.Errorf("right channel after hold: 880 Hz in %d of %d windows, want all but a few over about %d ms", strings.Count(body, "t"), len(body), talk2)
		}
	})

	t.Run("range_and_access", func(t *testing.T) {
		resp, b := getRecording(t, g.base, recID, "admin@example.com", "adminpass", "bytes=0-99")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, raw[:100]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-99/%d", len(raw)) {
			t.Errorf("Range bytes=0-99: %d, %d bytes, Content-Range %q; want 206 with the first 100 bytes of %d",
				resp.StatusCode, len(b), resp.Header.Get("Content-Range"), len(raw))
		}
		resp, b = getRecording(t, g.base, recID, "admin@example.com", "adminpass", "bytes=44-")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, raw[44:]) {
			t.Errorf("Range bytes=44-: %d, %d bytes; want 206 with the audio after the header", resp.StatusCode, len(b))
		}
		if resp, _ := getRecording(t, g.base, recID, "agent1@example.com", "agentpass", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("agent with agents_can_access on (default): %d, want 200", resp.StatusCode)
		}
		if code, m := g.api("PUT", "/settings/voice", `{"settings": {"recordings": {"agents_can_access": false}}}`); code != 200 {
			t.Fatalf("PUT settings = %d %v", code, m)
		}
		if resp, _ := getRecording(t, g.base, recID, "agent1@example.com", "agentpass", ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("agent with agents_can_access off: %d, want 403", resp.StatusCode)
		}
		if resp, b := getRecording(t, g.base, recID, "admin@example.com", "adminpass", ""); resp.StatusCode != http.StatusOK || !bytes.Equal(b, raw) {
			t.Errorf("admin with agents_can_access off: %d, %d bytes; want 200 with the file", resp.StatusCode, len(b))
		}
		if resp, _ := getRecording(t, g.base, recID, "admin@example.com", "wrong", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("bad password: %d, want 401", resp.StatusCode)
		}
	})

	t.Run("delete_from_ticket", func(t *testing.T) {
		path := r.recordingFile(recID)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("recording file before deletion: %v", err)
		}
		ticketID := int64(call["ticket_id"].(float64))
		req, _ := http.NewRequest("DELETE", fmt.Sprintf("%s/api/v2/tickets/%d/recordings", g.base, ticketID), nil)
		req.SetBasicAuth("admin@example.com", "adminpass")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE recordings = %d, want 204", resp.StatusCode)
		}
		if resp, _ := getRecording(t, g.base, recID, "admin@example.com", "adminpass", ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET deleted recording = %d, want 404", resp.StatusCode)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("recording file after deletion: %v, want it gone", err)
		}
		_, comments := g.ticketOf(call)
		kept := false
		for _, c := range comments {
			cm := c.(map[string]any)
			rec, _ := cm["recording"].(map[string]any)
			if cm["type"] == "VoiceComment" && rec != nil && rec["id"] == recID {
				kept = true
				if rec["deleted_at"] == nil {
					t.Errorf("voice comment recording %v: want deleted_at set", rec)
				}
			}
		}
		if !kept {
			t.Errorf("the voice comment with the recording is gone: %v", comments)
		}
		// The audit entry, as GET /audit_logs lists it.
		code, m := g.api("GET", fmt.Sprintf("/audit_logs?filter[action]=recording_deleted&filter[source_type]=ticket&filter[source_id]=%d", ticketID), "")
		if code != http.StatusOK {
			t.Fatalf("GET /audit_logs = %d %v", code, m)
		}
		logs, _ := m["audit_logs"].([]any)
		n := len(logs)
		var actor *int64
		if n == 1 {
			e := logs[0].(map[string]any)
			if id, ok := e["actor_id"].(float64); ok && e["actor_name"] == "Admin" && strings.Contains(e["change_description"].(string), recID) {
				v := int64(id)
				actor = &v
			}
		}
		if n != 1 || actor == nil {
			t.Errorf("recording_deleted entries on ticket %d: %v, want 1 by the admin naming %s", ticketID, logs, recID)
		}
		var state string
		var deletedBy *int64
		if err := r.query([]any{&state, &deletedBy}, `SELECT state, deleted_by FROM recordings WHERE id = $1`, recID); err != nil {
			t.Fatal(err)
		}
		if state != "deleted" || deletedBy == nil || actor == nil || *deletedBy != *actor {
			t.Errorf("recording row: state %s, deleted_by %v; want deleted by the admin (%v)", state, deletedBy, actor)
		}
	})
}

// SIGKILL mid-call: the WAV on disk is already a valid WAV holding the audio up to about a
// second before the kill (header sizes kept true as it grows); after a restart with the same
// configuration, database and directory, Repair makes the header exact and the gateway emits
// call.recording_ready, so the call record carries the recording and the API serves it.
func TestEndToEnd_RecordingSurvivesSIGKILL(t *testing.T) {
	requireSipp(t)
	r := startRecGateway(t)
	tones := t.TempDir()
	desk880 := filepath.Join(tones, "desk880.wav")
	writeToneFile(t, desk880, 880, 20)
	desk := startSipp(t, "desk_tone.xml", map[string]string{"TONE_FILE": desk880}, "-p", strconv.Itoa(r.g.deskPort))
	carrier := startSipp(t, "carrier_hold.xml", map[string]string{"TALK1_MS": "60000", "HOLD_MS": "1000", "TALK2_MS": "1000"},
		"-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", r.g.sipPort))

	// The recording's row, then its file growing on disk (bounded polls: the writer's
	// progress is only visible there).
	call := r.g.awaitCall("+15550197", func(c map[string]any) bool { return c["state"] == "talking" })
	callID := call["id"].(string)
	var recID string
	var started time.Time
	deadline := time.Now().Add(30 * time.Second)
	for recID == "" {
		err := r.query([]any{&recID, &started}, `SELECT id, started_at FROM recordings WHERE call_id = $1 AND state = 'recording'`, callID)
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("no recording row for call %s: %v", callID, err)
		}
		if err != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	path := r.recordingFile(recID)
	const recordFor = 4 * time.Second
	for deadline = time.Now().Add(30 * time.Second); ; {
		b, err := os.ReadFile(path)
		if err == nil && len(b) >= 44 && int64(bin.LittleEndian.Uint32(b[40:44])) >= int64(recordFor/time.Second)*32000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording %s did not reach %v on disk: %d bytes, %v", path, recordFor, len(b), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	killedAt := time.Now()
	r.kill()
	// The peers are still in the call with a dead gateway: stop them before the restart.
	for _, p := range []*sippRun{carrier, desk} {
		_ = p.cmd.Process.Kill()
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(10 * time.Second):
			t.Fatal("sipp did not exit after SIGKILL")
		}
	}

	// Before any repair: the file as the killed process left it.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := parsePCMWAV(raw)
	if err != nil {
		t.Fatalf("after SIGKILL the file is not a valid WAV: %v", err)
	}
	upTo := killedAt.Sub(started).Seconds()
	t.Logf("after SIGKILL: header covers %.3f s of %d data bytes on disk; killed %.3f s after the recording started",
		w.seconds(), len(raw)-int(w.dataOffset), upTo)
	if w.channels != 2 || w.rate != 8000 || w.seconds() < upTo-1.5 || w.seconds() > upTo+0.1 {
		t.Errorf("after SIGKILL: %d channels, %d Hz, header covers %.3f s; want stereo 8 kHz up to about a second before the kill (%.3f s)",
			w.channels, w.rate, w.seconds(), upTo)
	}
	if l := windows(w.left, 440, w.rate); strings.Count(l, "t") < len(l)-8 {
		t.Errorf("after SIGKILL: left channel 440 Hz windows %s", l)
	}
	if rt := windows(w.right, 880, w.rate); strings.Count(rt, "t") < len(rt)-8 {
		t.Errorf("after SIGKILL: right channel 880 Hz windows %s", rt)
	}
	if sox, err := exec.LookPath("sox"); err == nil {
		out, err := exec.Command(sox, "--i", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Channels       : 2") || !strings.Contains(string(out), "Sample Rate    : 8000") {
			t.Errorf("sox --i after SIGKILL: %v\n%s", err, out)
		}
	}

	// Restart: Repair runs before /readyz, fixes the header and emits call.recording_ready.
	r.restart()
	if !strings.Contains(r.g.logText(), "recording repaired after a crash") {
		t.Errorf("no repair logged at start-up")
	}
	var state string
	var durMS int64
	if err := r.query([]any{&state, &durMS}, `SELECT state, duration_ms FROM recordings WHERE id = $1`, recID); err != nil || state != "ready" {
		t.Fatalf("recording row after restart: state %q, %v; want ready", state, err)
	}
	// The call.ended never came because the process died: the restarted gateway ends the call
	// (at the end of the repaired audio), then announces the recording; the call record and the
	// ticket's voice comment carry it.
	ended := r.g.awaitCall("+15550197", func(c map[string]any) bool {
		return c["id"] == callID && c["recording_id"] == recID && c["state"] == "ended"
	})
	_, comments := r.g.ticketOf(ended)
	onTicket := false
	for _, c := range comments {
		cm := c.(map[string]any)
		if rec, _ := cm["recording"].(map[string]any); cm["type"] == "VoiceComment" && rec != nil && rec["id"] == recID {
			onTicket = true
		}
	}
	if !onTicket {
		t.Errorf("the ticket's voice comment does not carry the repaired recording: %v", comments)
	}
	var ready int
	if err := r.query([]any{&ready}, `SELECT count(*) FROM call_events e WHERE call_id = $1 AND type = 'call.recording_ready'
		AND NOT EXISTS (SELECT 1 FROM call_events_pending p WHERE p.pos = e.pos) AND body->>'recording_id' = $2`, callID, recID); err != nil || ready != 1 {
		t.Errorf("applied call.recording_ready events for the call: %d, %v; want 1", ready, err)
	}
	resp, got := getRecording(t, r.g.base, recID, "admin@example.com", "adminpass", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/wav" {
		t.Fatalf("GET repaired recording = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rw, err := parsePCMWAV(got)
	if err != nil {
		t.Fatalf("repaired recording: %v", err)
	}
	if rw.dataOffset+rw.dataSize != int64(len(got)) || rw.riffSize+8 != int64(len(got)) || rw.seconds() < w.seconds() ||
		rw.seconds() > upTo+0.5 || math.Abs(rw.seconds()*1000-float64(durMS)) > 1 {
		t.Errorf("repaired recording: %.3f s, data %d at %d, RIFF %d, %d bytes, row %d ms; want exact sizes, at least the %.3f s before repair, at most the %.3f s to the kill",
			rw.seconds(), rw.dataSize, rw.dataOffset, rw.riffSize, len(got), durMS, w.seconds(), upTo)
	}
}

// With recordings.start: call_start, a caller who leaves a voicemail keeps both recordings:
// the call's (stereo, from the IVR's answer) and the message (mono), each holding the caller's
// 440 Hz for as long as the caller sent it. An endpoint had one tap slot: the voicemail's tap
// replaced the call recording's and clearing it left the call recording deaf from the message
// on (issue 15). SIPp sends the tone from 2.5 s to 11.5 s; the message starts after the
// voicemail greeting and the beep.
func TestEndToEnd_VoicemailUnderCallStartRecordingKeepsBothAudios(t *testing.T) {
	requireSipp(t)
	r := startRecGatewayEdit(t, func(cfg string) string {
		return strings.Replace(cfg, "start: answer", "start: call_start", 1)
	})
	g := r.g
	carrier := startSipp(t, "carrier_ivr.xml", map[string]string{"KEY_PCAP": "/usr/share/sip-tester/dtmf_2833_9.pcap", "TALK_MS": "9000"},
		"-s", "+15550100", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	call := g.awaitCall("+15550100", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "voicemail" {
		t.Fatalf("call %v: want outcome voicemail", call)
	}
	callID := call["id"].(string)
	// Both recordings are finished (their rows follow the files in the background).
	var callRec, vmRec string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		err := r.query([]any{&callRec, &vmRec}, `SELECT coalesce(max(id) FILTER (WHERE kind = 'call' AND state = 'ready'), ''),
			coalesce(max(id) FILTER (WHERE kind = 'voicemail' AND state = 'ready'), '') FROM recordings WHERE call_id = $1`, callID)
		if err != nil {
			t.Fatal(err)
		}
		if callRec != "" && vmRec != "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if callRec == "" || vmRec == "" {
		t.Fatalf("recordings of the call: call %q, voicemail %q; want both ready", callRec, vmRec)
	}
	toneSeconds := func(id string, wantChannels int) float64 {
		b, err := os.ReadFile(r.recordingFile(id))
		if err != nil {
			t.Fatal(err)
		}
		w, err := parsePCMWAV(b)
		if err != nil {
			t.Fatalf("recording %s: %v", id, err)
		}
		if w.channels != wantChannels {
			t.Errorf("recording %s: %d channels, want %d", id, w.channels, wantChannels)
		}
		win := windows(w.left, 440, w.rate)
		t.Logf("recording %s (%d channels, %.1f s), caller's channel: %s", id, w.channels, w.seconds(), win)
		return float64(strings.Count(win, "t")) / 10
	}
	if s := toneSeconds(vmRec, 1); s < 3 {
		logRecordingMetrics(t, g.base)
		t.Errorf("voicemail message holds %.1f s of the caller's tone, want at least 3 s", s)
	}
	if s := toneSeconds(callRec, 2); s < 6 {
		logRecordingMetrics(t, g.base)
		t.Errorf("call recording holds %.1f s of the caller's tone, want at least 6 s (the tone lasted 9 s, the message included)", s)
	}
}
