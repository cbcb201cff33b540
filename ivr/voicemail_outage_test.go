package ivr

import (
	"bytes"
	"context"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/recordings"
)

// recordingsRecorder is the gateway's voicemail recorder (cmd/switchboard wires the same) over
// the real recordings package: the test proves the IVR with its real recorder, not a fake.
type recordingsRecorder struct {
	svc   *recordings.Service
	mu    sync.Mutex
	paths map[string]string // recording id → file
}

func (r *recordingsRecorder) StartVoicemail(ctx context.Context, m VoicemailMeta, ep *media.Endpoint) (VoicemailRecording, error) {
	w, err := r.svc.StartVoicemail(ctx, m.CallID)
	if err != nil {
		return nil, err
	}
	return &recordingsMessage{r: r, w: w, untap: ep.AddTap(w.Tap(recordings.Mono, recordings.None))}, nil
}

type recordingsMessage struct {
	r     *recordingsRecorder
	w     *recordings.Writer
	untap func()
}

func (m *recordingsMessage) Finish(ctx context.Context, keep bool) (string, error) {
	m.untap()
	if !keep {
		_, err := m.w.Discard()
		return "", err
	}
	res, err := m.w.Finish(ctx)
	if err != nil {
		return "", err
	}
	m.r.mu.Lock()
	m.r.paths[res.ID] = res.Path
	m.r.mu.Unlock()
	return res.ID, nil
}

// Rule (issue 13, item 4): voicemail does not need PostgreSQL. With the database unreachable,
// 9 in the main menu reaches the beep and the message recording (not the goodbye), the IVR
// goroutine never waits on the database (every step below is a bounded wait), the caller's
// audio is in the message's file at once and call.voicemail carries its recording id; the
// message's row appears, complete, once the database answers again.
func TestVoicemailDuringDatabaseOutageRecordsTheMessage(t *testing.T) {
	proxy, pool, _ := pgtest.ProxiedPool(t)
	svc, err := recordings.New(recordings.Options{Dir: t.TempDir(), DB: pool, Node: "ivr-test",
		MetadataRetry: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	rec := &recordingsRecorder{svc: svc, paths: map[string]string{}}
	prompts := testPrompts(t, 100*time.Millisecond)
	r := newRig(t, prompts)
	eng, err := New(Options{Menus: devMenus(), Prompts: prompts, ACD: r.acd, Recorder: rec, Events: r.events, Clock: r.clk,
		Voicemail: VoicemailOptions{MinLength: DefaultMinLength}})
	if err != nil {
		t.Fatal(err)
	}
	proxy.Down()

	gw, carrier := mediaPair(t)
	leg := newFakeLeg("call-vm-outage")
	leg.ep = gw
	c := eng.NewCall(leg, CallInfo{From: "+15551230000", Line: "+15550100"})
	c.InjectDigit('9')
	res := runCall(t, c, Line{Number: "+15550100", Target: MenuTarget("main")})
	if sel := r.events.next(t, leg.id, callevent.EventIVRSelected); sel.MenuPath != "main>9" {
		t.Fatalf("menu path %q, want main>9", sel.MenuPath)
	}
	// The message is being recorded once its length timer runs (a goodbye arms none).
	r.clk.awaitTimer(t, DefaultMaxLength)
	// The caller speaks: half a second of 1700 Hz from the carrier side.
	msg := tone(1700, 500*time.Millisecond).Bytes(media.PCMU)
	pctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := carrier.Play(pctx, bytes.NewReader(msg), media.PCMU); err != nil {
		t.Fatal(err)
	}
	r.clk.advance(3 * time.Second)
	c.InjectDigit('#')
	got := result(t, res) // bounded: the IVR goroutine ends within wait
	if got.Outcome != callevent.OutcomeVoicemail || got.Kind != ResultHangup {
		t.Fatalf("result %+v during the outage, want voicemail then hang-up", got)
	}
	vm := r.events.next(t, leg.id, callevent.EventVoicemail)
	if vm.RecordingID == "" || vm.Seconds != 3 {
		t.Fatalf("call.voicemail %+v during the outage", vm)
	}
	for _, typ := range r.events.types(leg.id) {
		if typ == callevent.EventAbandoned {
			t.Fatal("call.abandoned during the outage: the caller was sent away")
		}
	}
	rec.mu.Lock()
	path := rec.paths[vm.RecordingID]
	rec.mu.Unlock()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := recordings.ParseHeader(b)
	if err != nil || h.Channels != 1 || !h.Consistent(int64(len(b))) {
		t.Fatalf("message file during the outage: %+v, %v", h, err)
	}
	pcm := make([]int16, 0, h.DataSize/2)
	for i := h.DataOffset; i+1 < h.DataOffset+int64(h.DataSize); i += 2 {
		pcm = append(pcm, int16(uint16(b[i])|uint16(b[i+1])<<8))
	}
	if goertzel(pcm, 1700) < 100*goertzel(pcm, 600) {
		t.Error("the caller's 1700 Hz is not in the message")
	}
	if svc.Pending() != 1 {
		t.Errorf("%d rows pending during the outage, want 1", svc.Pending())
	}

	proxy.Up()
	fctx, fcancel := context.WithTimeout(context.Background(), wait)
	defer fcancel()
	if err := svc.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	row, err := svc.Recording(fctx, vm.RecordingID)
	if err != nil {
		t.Fatalf("the message's row after the database came back: %v", err)
	}
	if row.Kind != "voicemail" || row.State != recordings.StateReady || row.CallID != leg.id || row.Channels != 1 ||
		row.SizeBytes != int64(len(b)) {
		t.Errorf("row %+v", row)
	}
}
