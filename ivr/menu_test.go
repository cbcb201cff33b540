package ivr

import (
	"context"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// fakeRecorder records nothing; it reports when a message starts and how it was finished.
type fakeRecorder struct {
	started  chan VoicemailMeta
	mu       sync.Mutex
	finished []bool
}

func newFakeRecorder() *fakeRecorder { return &fakeRecorder{started: make(chan VoicemailMeta, 8)} }

func (r *fakeRecorder) StartVoicemail(ctx context.Context, m VoicemailMeta, ep *media.Endpoint) (VoicemailRecording, error) {
	r.started <- m
	return fakeRecording{r}, nil
}

type fakeRecording struct{ r *fakeRecorder }

func (f fakeRecording) Finish(ctx context.Context, keep bool) (string, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	f.r.finished = append(f.r.finished, keep)
	if !keep {
		return "", nil
	}
	return "vm-1", nil
}

func (r *fakeRecorder) awaitStart(t testing.TB) VoicemailMeta {
	t.Helper()
	select {
	case m := <-r.started:
		return m
	case <-time.After(wait):
		t.Fatal("voicemail recording never started")
	}
	return VoicemailMeta{}
}

// devMenus is the dev configuration's IVR (deploy/dev/switchboard.yaml) plus a language menu.
func devMenus() map[string]Menu {
	return map[string]Menu{
		"main": {
			Prompt: "greeting", Timeout: 5 * time.Second, Retries: 1,
			Options: map[string]Target{"1": QueueTarget("support"), "2": QueueTarget("sales"), "9": VoicemailTarget()},
			NoInput: QueueTarget("support"), Invalid: QueueTarget("support"),
		},
		"lang": {
			Prompt:  "lang",
			Options: map[string]Target{"1": MenuTarget("main"), "2": MenuTarget("main_fr")},
			NoInput: MenuTarget("main"),
		},
		"main_fr": {
			Prompt: "greeting", Language: "fr",
			Options: map[string]Target{"1": QueueTarget("support"), "2": QueueTarget("sales")},
			NoInput: QueueTarget("support"),
		},
		"codes": {
			Prompt:  "greeting",
			Options: map[string]Target{"1": QueueTarget("support"), "12": QueueTarget("sales")},
			NoInput: HangupTarget(),
		},
	}
}

type rig struct {
	clk    *fakeClock
	events *eventLog
	dialer *fakeDialer
	rec    *fakeRecorder
	acd    *ACD
	eng    *Engine
	states chan AgentStatus // agent state changes after setup
}

// newRig builds an engine and ACD on a fake clock with the dev menus and queues support and
// sales; agents 1, 2 (support) and 3 (sales) start offline.
func newRig(t testing.TB, prompts *Prompts, queues ...Queue) *rig {
	t.Helper()
	r := &rig{
		clk:    newFakeClock(time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)), // a Monday
		events: newEventLog(),
		dialer: newFakeDialer(),
		rec:    newFakeRecorder(),
		states: make(chan AgentStatus, 64),
	}
	if queues == nil {
		queues = []Queue{{Name: "support"}, {Name: "sales"}}
	}
	var err error
	r.acd, err = NewACD(ACDOptions{
		Queues: queues,
		Agents: []Agent{
			{ID: 1, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}},
			{ID: 2, Email: "agent2@example.com", Name: "Agent Two", Queues: []string{"support"}},
			{ID: 3, Email: "agent3@example.com", Name: "Agent Three", Queues: []string{"sales"}},
		},
		Dialer: r.dialer, Prompts: prompts, Clock: r.clk,
		OnAgentState: func(s AgentStatus) {
			select {
			case r.states <- s:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.acd.Close)
	r.eng, err = New(Options{Menus: devMenus(), Prompts: prompts, ACD: r.acd, Recorder: r.rec, Events: r.events, Clock: r.clk,
		Voicemail: VoicemailOptions{MinLength: DefaultMinLength}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMainMenu_Branches: the dev menu's keys lead where deploy/dev/switchboard.yaml says, and the menu path
// and language are reported (SD-1).
func TestMainMenu_Branches(t *testing.T) {
	for _, tc := range []struct {
		digit rune
		queue string
		path  string
	}{
		{'1', "support", "main>1"},
		{'2', "sales", "main>2"},
	} {
		t.Run(string(tc.digit), func(t *testing.T) {
			r := newRig(t, testPrompts(t, 2*time.Second))
			leg := newFakeLeg("call-" + string(tc.digit))
			c := r.eng.NewCall(leg, CallInfo{From: "+15551230000", Line: "+15550100"})
			c.InjectDigit(tc.digit)
			res := runCall(t, c, Line{Number: "+15550100", Target: MenuTarget("main")})
			sel := r.events.next(t, leg.id, callevent.EventIVRSelected)
			if sel.MenuPath != tc.path || sel.Language != "en" {
				t.Errorf("ivr_selected = %q/%q, want %q/en", sel.MenuPath, sel.Language, tc.path)
			}
			if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != tc.queue {
				t.Errorf("queued in %q, want %q", q.Queue, tc.queue)
			}
			leg.hangup()
			if got := result(t, res); got.Outcome != callevent.OutcomeAbandoned {
				t.Errorf("outcome %q, want abandoned (caller left the queue)", got.Outcome)
			}
			if ab := r.events.next(t, leg.id, callevent.EventAbandoned); ab.Where != callevent.WhereQueue {
				t.Errorf("abandoned where=%q, want queue", ab.Where)
			}
		})
	}
}

// TestMainMenu_NineLeavesVoicemail: 9 → voicemail; '#' ends the message; call.voicemail carries
// the recording and its length (VM-1, TC-3).
func TestMainMenu_NineLeavesVoicemail(t *testing.T) {
	r := newRig(t, testPrompts(t, 2*time.Second))
	leg := newFakeLeg("call-9")
	c := r.eng.NewCall(leg, CallInfo{From: "+15551230000", Line: "+15550100"})
	c.InjectDigit('9')
	res := runCall(t, c, Line{Number: "+15550100", Target: MenuTarget("main")})
	if sel := r.events.next(t, leg.id, callevent.EventIVRSelected); sel.MenuPath != "main>9" {
		t.Errorf("menu path %q, want main>9", sel.MenuPath)
	}
	m := r.rec.awaitStart(t)
	if m.CallID != leg.id || m.From != "+15551230000" || m.Line != "+15550100" || m.Language != "en" {
		t.Errorf("voicemail meta %+v", m)
	}
	r.clk.awaitTimer(t, DefaultMaxLength)
	r.clk.advance(3 * time.Second)
	c.InjectDigit('#')
	got := result(t, res)
	if got.Outcome != callevent.OutcomeVoicemail || got.Kind != ResultHangup {
		t.Errorf("result %+v, want voicemail then hang-up", got)
	}
	vm := r.events.next(t, leg.id, callevent.EventVoicemail)
	if vm.RecordingID != "vm-1" || vm.Seconds != 3 {
		t.Errorf("call.voicemail %+v, want vm-1 of 3 s", vm)
	}
}

// TestMainMenu_NoDigitRepeatsOnceThenSupport: no key within 5 s plays the menu again, once;
// a second silence sends the call to support (deploy/dev/switchboard.yaml).
func TestMainMenu_NoDigitRepeatsOnceThenSupport(t *testing.T) {
	r := newRig(t, testPrompts(t, 100*time.Millisecond))
	gw, carrier := mediaPair(t)
	tap := tapReceived(carrier)
	leg := newFakeLeg("call-timeout")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: MenuTarget("main")})

	tap.untilTone(t, 400) // the greeting
	r.clk.awaitTimer(t, 5*time.Second)
	tap.quiet(60 * time.Millisecond)
	if r.clk.pending(4*time.Second) != 0 {
		t.Fatal("menu timeout shorter than 5 s")
	}
	r.clk.advance(5 * time.Second)
	tap.untilTone(t, 400) // played again
	r.clk.awaitTimer(t, 5*time.Second)
	r.clk.advance(5 * time.Second)
	if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != "support" {
		t.Errorf("queued in %q, want support", q.Queue)
	}
	if c.MenuPath() != "main>timeout" {
		t.Errorf("menu path %q, want main>timeout", c.MenuPath())
	}
	leg.hangup()
	result(t, res)
}

// TestMenu_InvalidDigit: a key with no option replays the menu; after the retries the call
// follows Invalid (support in the dev menu); a valid key on the retry is taken.
func TestMenu_InvalidDigit(t *testing.T) {
	t.Run("twice invalid → support", func(t *testing.T) {
		r := newRig(t, testPrompts(t, 2*time.Second))
		leg := newFakeLeg("call-inv")
		c := r.eng.NewCall(leg, CallInfo{})
		c.InjectDigit('5')
		c.InjectDigit('7')
		res := runCall(t, c, Line{Target: MenuTarget("main")})
		if sel := r.events.next(t, leg.id, callevent.EventIVRSelected); sel.MenuPath != "main>invalid" {
			t.Errorf("menu path %q, want main>invalid", sel.MenuPath)
		}
		if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != "support" {
			t.Errorf("queued in %q, want support", q.Queue)
		}
		leg.hangup()
		result(t, res)
	})
	t.Run("invalid then 2 → sales", func(t *testing.T) {
		r := newRig(t, testPrompts(t, 2*time.Second))
		leg := newFakeLeg("call-inv2")
		c := r.eng.NewCall(leg, CallInfo{})
		c.InjectDigit('5')
		c.InjectDigit('2')
		res := runCall(t, c, Line{Target: MenuTarget("main")})
		if sel := r.events.next(t, leg.id, callevent.EventIVRSelected); sel.MenuPath != "main>2" {
			t.Errorf("menu path %q, want main>2", sel.MenuPath)
		}
		leg.hangup()
		result(t, res)
	})
}

// TestMenu_HashEndsInput: multi-key options collect keys until '#', until no longer option
// can match, or until the timeout; '#' alone is no input.
func TestMenu_HashEndsInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keys  string
		queue string
		path  string
	}{
		{"1# picks 1", "1#", "support", "codes>1"},
		{"12 picks 12 at once", "12", "sales", "codes>12"},
		{"# alone is no input", "#", "", "codes>timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, testPrompts(t, 2*time.Second))
			leg := newFakeLeg("call-hash")
			c := r.eng.NewCall(leg, CallInfo{})
			for _, k := range tc.keys {
				c.InjectDigit(k)
			}
			res := runCall(t, c, Line{Target: MenuTarget("codes")})
			if tc.queue == "" {
				got := result(t, res)
				if got.Kind != ResultHangup || c.MenuPath() != tc.path {
					t.Errorf("result %+v path %q, want hang-up via %s", got, c.MenuPath(), tc.path)
				}
				return
			}
			if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != tc.queue {
				t.Errorf("queued in %q, want %q", q.Queue, tc.queue)
			}
			if c.MenuPath() != tc.path {
				t.Errorf("menu path %q, want %q", c.MenuPath(), tc.path)
			}
			leg.hangup()
			result(t, res)
		})
	}
}

// TestMenu_LanguageSelection: the key of a language menu sets the call's language; prompts
// are then played in it and call.ivr_selected carries it.
func TestMenu_LanguageSelection(t *testing.T) {
	r := newRig(t, testPrompts(t, 2*time.Second))
	gw, carrier := mediaPair(t)
	tap := tapReceived(carrier)
	leg := newFakeLeg("call-fr")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: MenuTarget("lang")})
	tap.untilTone(t, 1200) // the language menu
	c.InjectDigit('2')
	tap.untilTone(t, 1400) // the French greeting
	c.InjectDigit('1')
	sel := r.events.next(t, leg.id, callevent.EventIVRSelected)
	if sel.Language != "fr" || sel.MenuPath != "lang>2>main_fr>1" {
		t.Errorf("ivr_selected %q/%q, want lang>2>main_fr>1 in fr", sel.MenuPath, sel.Language)
	}
	leg.hangup()
	result(t, res)
}

// TestHours_OpenAndClosed: a line's opening hours pick the open flow or the closed one, read
// in the line's time zone.
func TestHours_OpenAndClosed(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	h := &Hours{Location: ny, Holidays: []Date{{2026, time.December, 25}}, Closed: QueueTarget("sales")}
	for d := time.Monday; d <= time.Friday; d++ {
		h.Weekly[d] = []TimeRange{{9 * time.Hour, 17 * time.Hour}}
	}
	for _, tc := range []struct {
		name  string
		at    time.Time
		queue string
	}{
		{"Monday 10:00 New York is open", time.Date(2026, 11, 23, 10, 0, 0, 0, ny), "support"},
		{"Monday 17:00 New York is closed", time.Date(2026, 11, 23, 17, 0, 0, 0, ny), "sales"},
		{"Monday 16:00 UTC is 11:00 in New York: open", time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC), "support"},
		{"Saturday is closed", time.Date(2026, 11, 28, 10, 0, 0, 0, ny), "sales"},
		{"Christmas (a Friday) is a holiday", time.Date(2026, 12, 25, 10, 0, 0, 0, ny), "sales"},
		{"09:00 on the day summer time starts is open", time.Date(2026, 3, 9, 9, 0, 0, 0, ny), "support"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, testPrompts(t, 100*time.Millisecond))
			r.clk.now = tc.at
			leg := newFakeLeg("call-hours")
			c := r.eng.NewCall(leg, CallInfo{})
			res := runCall(t, c, Line{Target: QueueTarget("support"), Hours: h})
			if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != tc.queue {
				t.Errorf("queued in %q, want %q", q.Queue, tc.queue)
			}
			leg.hangup()
			result(t, res)
		})
	}
}

// TestBargeIn_DigitStopsPrompt: an RFC 4733 key from the carrier stops the greeting within a
// few frames; the next audio (please hold) follows on the same RTP stream, sequence unbroken.
func TestBargeIn_DigitStopsPrompt(t *testing.T) {
	r := newRig(t, testPrompts(t, 3*time.Second))
	gw, carrier := mediaPair(t)
	tap := tapReceived(carrier)
	leg := newFakeLeg("call-barge")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: MenuTarget("main")})
	first := tap.untilTone(t, 400)
	if err := carrier.SendDTMF(context.Background(), '2', 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	// Everything up to please hold (600 Hz): the greeting must stop well before its 3 s end.
	last := first
	greetingAfter := 0
	for range 200 {
		p := tap.next(t)
		if p.Sequence != last.Sequence+1 {
			t.Fatalf("sequence jumped from %d to %d", last.Sequence, p.Sequence)
		}
		last = p
		if f := toneOf(p.Payload); f == 600 {
			break
		} else if f == 400 && p.At.After(sent.Add(20*time.Millisecond)) {
			greetingAfter++
		}
	}
	if toneOf(last.Payload) != 600 {
		t.Fatal("please hold never followed the greeting")
	}
	if greetingAfter > 10 {
		t.Errorf("%d greeting frames after the digit; barge-in should stop it within a few", greetingAfter)
	}
	if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != "sales" {
		t.Errorf("queued in %q, want sales", q.Queue)
	}
	leg.hangup()
	result(t, res)
}

// TestINFO_DigitDrivesMenu: a key sent by SIP INFO (application/dtmf-relay) chooses like an
// RFC 4733 one.
func TestINFO_DigitDrivesMenu(t *testing.T) {
	r := newRig(t, testPrompts(t, 2*time.Second))
	leg := newFakeLeg("call-info")
	c := r.eng.NewCall(leg, CallInfo{})
	if err := c.InjectINFO("application/dtmf-relay", []byte("Signal=2\r\nDuration=160\r\n")); err != nil {
		t.Fatal(err)
	}
	res := runCall(t, c, Line{Target: MenuTarget("main")})
	if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != "sales" {
		t.Errorf("queued in %q, want sales", q.Queue)
	}
	leg.hangup()
	result(t, res)
}

// TestRule_TC5_AbandonedInIVR: a caller hanging up during the menu gives call.abandoned
// where=ivr, after call.ivr_selected with the path so far.
func TestRule_TC5_AbandonedInIVR(t *testing.T) {
	r := newRig(t, testPrompts(t, 2*time.Second))
	gw, carrier := mediaPair(t)
	tap := tapReceived(carrier)
	leg := newFakeLeg("call-ab-ivr")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: MenuTarget("main")})
	tap.untilTone(t, 400)
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAbandoned {
		t.Errorf("outcome %q, want abandoned", got.Outcome)
	}
	if ab := r.events.next(t, leg.id, callevent.EventAbandoned); ab.Where != callevent.WhereIVR {
		t.Errorf("where=%q, want ivr", ab.Where)
	}
	if got := r.events.types(leg.id); len(got) != 2 || got[0] != callevent.EventIVRSelected {
		t.Errorf("events %v, want ivr_selected then abandoned", got)
	}
}

// TestLine_SIPTargetIsHandedBack: a menu option that is a SIP URI returns a transfer for sip.
func TestLine_SIPTargetIsHandedBack(t *testing.T) {
	r := newRig(t, testPrompts(t, 100*time.Millisecond))
	leg := newFakeLeg("call-sip")
	c := r.eng.NewCall(leg, CallInfo{})
	got := result(t, runCall(t, c, Line{Target: SIPTarget("sip:desk@127.0.0.1:5090")}))
	if got.Kind != ResultTransfer || got.URI != "sip:desk@127.0.0.1:5090" {
		t.Errorf("result %+v, want transfer to the desk phone", got)
	}
}
