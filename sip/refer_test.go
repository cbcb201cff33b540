package sip

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestSIPPhoneAgentRefer: an agent's registered phone (SIPp) answers an offer, then transfers
// the call with REFER (RFC 3515). An attended transfer (Refer-To with Replaces) is declined
// with 603 when the gateway takes none (Options.PhoneComplete nil); a blind one to +15557770000 is accepted with 202, handed to Options.Refer with the
// call, the agent and the number, and reported with NOTIFYs (100 Trying, then 200 OK with
// Subscription-State terminated; the phone's scenario checks them) before the phone hangs up.
func TestSIPPhoneAgentRefer(t *testing.T) {
	var mu sync.Mutex
	var got []string
	a := newAgentSetupWith(t, func(o *Options) {
		o.Refer = func(_ context.Context, callID string, agentID int64, to ReferTarget) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%d %+v", agentID, to))
			return nil
		}
	}, 10e9, "uas_agent_refer.xml")
	a.register(t, "uac_register.xml", "agent1", "secret")
	a.carrier(t, "uac_wait_bye.xml").wait(t)
	a.phone.wait(t)
	if r := a.result(t); r.err != nil || r.end != "agent" {
		t.Fatalf("offer: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"7 {AgentID:0 Number:+15557770000}"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Refer got %v, want %v (the attended REFER must not reach it)", got, want)
	}
}

// TestReferTargetReading: Refer-To values as phones write them.
func TestReferTargetReading(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   ReferTarget
		status int
	}{
		{"<sip:+15557770000@127.0.0.1>", ReferTarget{Number: "+15557770000"}, 0},
		{"sip:15557770000@gw.example.com;user=phone", ReferTarget{Number: "15557770000"}, 0},
		{"<sip:agent2@127.0.0.1>", ReferTarget{AgentID: 8}, 0},
		{"\"Two\" <sip:agent2@127.0.0.1>", ReferTarget{AgentID: 8}, 0},
		{"<sip:nobody@127.0.0.1>", ReferTarget{}, 404},
		{"<sip:agent2@127.0.0.1?Replaces=x%40y%3Bto-tag%3D1%3Bfrom-tag%3D2>", ReferTarget{AgentID: 8}, 0}, // its Replaces is read by referReplaces
		{"<sip:agent2@127.0.0.1", ReferTarget{}, 400},
		{"<tel:+15557770000>", ReferTarget{}, 400},
	} {
		got, status, _ := referTarget(c.in, testAgents)
		if got != c.want || status != c.status {
			t.Errorf("referTarget(%q) = %+v %d, want %+v %d", c.in, got, status, c.want, c.status)
		}
	}
}

// TestReferReplacesReading: the Replaces of a Refer-To (RFC 3891 §6.1, escaped in the URI's
// headers) as phones write it; one that lacks a tag cannot name a dialog and is refused (400).
func TestReferReplacesReading(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   replaces
		has    bool
		status int
	}{
		{"<sip:+15557770000@127.0.0.1?Replaces=b%2F%2F%2Fx%40y%3Bto-tag%3D1%3Bfrom-tag%3D2>", replaces{"b///x@y", "1", "2"}, true, 0},
		{"<sip:agent2@h?Replaces=abc%3Bfrom-tag%3D2%3Bto-tag%3D1%3Bearly-only>", replaces{"abc", "1", "2"}, true, 0},
		{"<sip:agent2@h?Subject=x&replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>", replaces{"abc", "1", "2"}, true, 0},
		{"<sip:agent2@h?Replaces=abc%3Bto-tag%3D1>", replaces{}, true, 400},
		{"<sip:agent2@h?Replaces=%zz>", replaces{}, true, 400},
		{"<sip:agent2@h>", replaces{}, false, 0},
		{"<sip:agent2@h?Replaces=abc", replaces{}, false, 400},
	} {
		got, has, status, _ := referReplaces(c.in)
		if status == 0 && got != c.want || has != c.has || status != c.status {
			t.Errorf("referReplaces(%q) = %+v %v %d, want %+v %v %d", c.in, got, has, status, c.want, c.has, c.status)
		}
	}
}
