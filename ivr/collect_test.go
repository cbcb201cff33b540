package ivr

import (
	"context"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// collectMenus are the dev menus plus collect steps: "account" (4 to 8 digits ended by '#',
// into the variable account, then queue support; no input → queue sales, invalid → the menu
// "main"), "order" (no prompt, up to 6 digits, no terminator, continue on no input and invalid)
// and "pin" (exactly 4 digits by pattern, one retry).
func collectMenus() map[string]Menu {
	menus := devMenus()
	menus["account"] = Menu{Prompt: "greeting", Collect: &Collect{
		Variable: "account", MinDigits: 4, MaxDigits: 8, Terminator: '#',
		DigitTimeout: 3 * time.Second, Timeout: 10 * time.Second,
		Pattern: regexp.MustCompile(`^[0-9]+$`),
		Next:    QueueTarget("support"), NoInput: QueueTarget("sales"), Invalid: MenuTarget("main"),
	}}
	menus["order"] = Menu{Collect: &Collect{Variable: "order", MaxDigits: 6, Next: QueueTarget("support")}}
	menus["pin"] = Menu{Collect: &Collect{Variable: "pin", Terminator: '#', Retries: 1,
		Pattern: regexp.MustCompile(`^[0-9]{4}$`), Next: QueueTarget("support"), Invalid: HangupTarget()}}
	return menus
}

// collectRig is newRig with the collect menus.
func collectRig(t *testing.T) *rig {
	t.Helper()
	r := newRig(t, testPrompts(t, 100*time.Millisecond))
	var err error
	r.eng, err = New(Options{Menus: collectMenus(), Prompts: testPrompts(t, 100*time.Millisecond), ACD: r.acd,
		Recorder: r.rec, Events: r.events, Clock: r.clk})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRule_CF4_CollectStepStoresDigits: keys typed in a collect step are stored under its
// variable and travel on call.ivr_selected as data; the entry ends at the terminator, at
// MaxDigits or after the inter-digit timeout; keys other than 0-9*# are dropped; an invalid
// entry or none follows its branch, or continues to Next without the variable.
func TestRule_CF4_CollectStepStoresDigits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		menu  string
		keys  string
		clock func(r *rig) // time passing after the keys
		queue string       // where the call ends up ("" : hung up)
		path  string
		data  map[string]string
	}{
		{name: "terminator ends the entry", menu: "account", keys: "0427#9",
			queue: "support", path: "account", data: map[string]string{"account": "0427"}},
		{name: "A-D dropped", menu: "account", keys: "04A2B7C#",
			queue: "support", path: "account", data: map[string]string{"account": "0427"}},
		{name: "max digits end the entry", menu: "order", keys: "12345678",
			queue: "support", path: "order", data: map[string]string{"order": "123456"}},
		{name: "star is a key without a terminator", menu: "order", keys: "12*",
			clock: func(r *rig) { r.clk.advanceAfterTimers(t, 1+3, DefaultCollectDigitTimeout) },
			queue: "support", path: "order", data: map[string]string{"order": "12*"}},
		{name: "inter-digit timeout ends the entry", menu: "account", keys: "98765",
			clock: func(r *rig) { r.clk.advanceAfterTimers(t, 1+5, 3*time.Second) },
			queue: "support", path: "account", data: map[string]string{"account": "98765"}},
		{name: "no input follows no_input", menu: "account",
			clock: func(r *rig) { r.clk.awaitTimer(t, 10*time.Second); r.clk.advance(10 * time.Second) },
			queue: "sales", path: "account>timeout"},
		{name: "terminator alone is no input", menu: "account", keys: "#",
			queue: "sales", path: "account>timeout"},
		{name: "too short is invalid → menu main", menu: "account", keys: "12#1",
			queue: "support", path: "account>invalid>main>1"},
		{name: "no input continues to next", menu: "order",
			clock: func(r *rig) { r.clk.awaitTimer(t, DefaultCollectTimeout); r.clk.advance(DefaultCollectTimeout) },
			queue: "support", path: "order>timeout"},
		{name: "invalid then valid on the retry", menu: "pin", keys: "123#4321#",
			queue: "support", path: "pin", data: map[string]string{"pin": "4321"}},
		{name: "pattern refuses twice → hang up", menu: "pin", keys: "12345#*123#", path: "pin>invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := collectRig(t)
			leg := newFakeLeg("call-collect")
			c := r.eng.NewCall(leg, CallInfo{From: "+15551230000", Line: "+15550100"})
			for _, k := range tc.keys {
				c.InjectDigit(k)
			}
			res := runCall(t, c, Line{Target: MenuTarget(tc.menu)})
			if tc.clock != nil {
				tc.clock(r)
			}
			sel := r.events.next(t, leg.id, callevent.EventIVRSelected)
			if sel.MenuPath != tc.path {
				t.Errorf("menu path %q, want %q", sel.MenuPath, tc.path)
			}
			if got := sel.Data.Map(); !maps.Equal(got, tc.data) {
				t.Errorf("call.ivr_selected data %v, want %v", got, tc.data)
			}
			if errs := callevent.Validate(withIdentity(sel)); len(errs) > 0 {
				t.Errorf("call.ivr_selected is not a valid event: %v", errs)
			}
			if tc.queue == "" {
				if got := result(t, res); got.Kind != ResultHangup {
					t.Errorf("result %+v, want hang-up", got)
				}
				return
			}
			if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != tc.queue {
				t.Errorf("queued in %q, want %q", q.Queue, tc.queue)
			}
			if v := c.Variables(); !maps.Equal(v, tc.data) {
				t.Errorf("Variables() = %v, want %v", v, tc.data)
			}
			leg.hangup()
			result(t, res)
		})
	}
}

// advanceAfterTimers waits until n timers were armed since the clock last moved (a collect
// step arms its overall timer, then one inter-digit timer per key, each stopped before the next
// is armed), then advances it by d. Waiting for "a timer due within d" instead could fire an
// inter-digit timer of a key already followed by the next one.
func (c *fakeClock) advanceAfterTimers(t testing.TB, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(wait)
	for {
		c.mu.Lock()
		armed := len(c.timers)
		c.mu.Unlock()
		if armed >= n {
			break
		}
		select {
		case <-c.added:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d timers armed, want %d", armed, n)
		}
	}
	c.advance(d)
}

// withIdentity gives an ivr event the id and sequence sip's call adds, for Validate.
func withIdentity(e callevent.Event) callevent.Event {
	e.ID, e.Seq = "0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1", 2
	return e
}

// TestRule_CF4_CollectStepReadsRFC4733Digits: digits sent as RFC 4733 telephone-events on the
// caller's RTP stream stop the prompt and fill the variable, '#' ending the entry.
func TestRule_CF4_CollectStepReadsRFC4733Digits(t *testing.T) {
	r := newRig(t, testPrompts(t, 3*time.Second))
	var err error
	r.eng, err = New(Options{Menus: collectMenus(), Prompts: testPrompts(t, 3*time.Second), ACD: r.acd,
		Events: r.events, Clock: r.clk})
	if err != nil {
		t.Fatal(err)
	}
	gw, carrier := mediaPair(t)
	tap := tapReceived(carrier)
	leg := newFakeLeg("call-collect-rtp")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: MenuTarget("account")})
	tap.untilTone(t, 400) // the prompt
	for _, k := range "5551#" {
		if err := carrier.SendDTMF(context.Background(), k, 60*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	sel := r.events.next(t, leg.id, callevent.EventIVRSelected)
	if got := sel.Data.Map(); got["account"] != "5551" {
		t.Errorf("call.ivr_selected data %v, want account 5551", got)
	}
	if q := r.events.next(t, leg.id, callevent.EventQueued); q.Queue != "support" {
		t.Errorf("queued in %q, want support", q.Queue)
	}
	leg.hangup()
	result(t, res)
}

// TestRule_CF4_CollectStepRefusedWhenMisconfigured: New refuses a collect step without a
// usable variable, with options, with a bad terminator or naming a menu that does not exist.
func TestRule_CF4_CollectStepRefusedWhenMisconfigured(t *testing.T) {
	for _, tc := range []struct {
		name string
		menu Menu
		want string
	}{
		{"no variable", Menu{Collect: &Collect{Next: HangupTarget()}}, "not a data key"},
		{"variable with a space", Menu{Collect: &Collect{Variable: "a b", Next: HangupTarget()}}, "not a data key"},
		{"no next", Menu{Collect: &Collect{Variable: "a"}}, "no next"},
		{"options", Menu{Options: map[string]Target{"1": HangupTarget()}, Collect: &Collect{Variable: "a", Next: HangupTarget()}}, "no options"},
		{"terminator", Menu{Collect: &Collect{Variable: "a", Terminator: '5', Next: HangupTarget()}}, "terminator"},
		{"min above max", Menu{Collect: &Collect{Variable: "a", MinDigits: 9, MaxDigits: 4, Next: HangupTarget()}}, "min digits"},
		{"unknown menu", Menu{Collect: &Collect{Variable: "a", Next: HangupTarget(), Invalid: MenuTarget("nope")}}, "unknown menu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Menus: map[string]Menu{"x": tc.menu}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
