package sip

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	sipgosip "github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestLineMatchesEveryFormOfItsNumber: a line written in E.164 matches the dialled number
// whether the carrier sends it in E.164, with separators, with 00, as its digits without "+",
// or with URI parameters — on a trunk without a region (every form the old "+"-prefixing
// normaliser matched) — and a national number on a trunk of the line's country (issue 15: on a
// US trunk, 2025550100 is +12025550100).
func TestLineMatchesEveryFormOfItsNumber(t *testing.T) {
	s := &Server{}
	none := TargetFunc(func(context.Context, *Call) error { return nil })
	if err := s.SetLines([]Line{{Number: "+15550197", Target: none}, {Number: "+12025550100", Target: none}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ region, user, want string }{
		{"", "+15550197", "+15550197"},
		{"", "15550197", "+15550197"},
		{"", "0015550197", "+15550197"},
		{"", "+1 (555) 019-7", "+15550197"},
		{"", "15550197;phone-context=x", "+15550197"},
		{"", "%2B15550197", "+15550197"},
		{"US", "2025550100", "+12025550100"},
		{"US", "1-202-555-0100", "+12025550100"},
		{"FR", "0012025550100", "+12025550100"},
		{"", "2025550100", ""},
		{"", "desk", ""},
		{"", "", ""},
	} {
		req := sipgosip.NewRequest(sipgosip.INVITE, sipgosip.Uri{Scheme: "sip", User: tc.user, Host: "127.0.0.1"})
		_, got, ok := s.lineFor(req, Trunk{Region: tc.region})
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("region %q, Request-URI user %q: line %q (%v), want %q", tc.region, tc.user, got, ok, tc.want)
		}
	}
}

// numbersGateway has a US trunk on 127.0.0.1, a French one on 127.0.0.3 and, on 127.0.0.4, a
// US trunk that ignores P-Asserted-Identity; its lines answer 486, so each INVITE ends at once
// with call.started and call.ended.
func numbersGateway(t *testing.T) *testGateway {
	busy := TargetFunc(func(context.Context, *Call) error {
		return &StatusError{Code: 486, Reason: "Busy Here", Outcome: "no_answer"}
	})
	return startGateway(t, func(o *Options) {
		o.Trunks = []Trunk{
			{Name: "us", Region: "US", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
			{Name: "fr", Region: "FR", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}},
			{Name: "pbx", Region: "US", IgnoreAssertedIdentity: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.4/32")}},
		}
		o.Lines = []Line{{Number: "+12025550100", Target: busy}, {Number: "+15550197", Target: busy}}
	})
}

// inviteFrom sends an INVITE for dialled from src with the From header from (and extra headers)
// and returns the call's call.started once the call ended.
func (g *testGateway) inviteFrom(t *testing.T, src, dialled, from, extra string) callevent.Event {
	t.Helper()
	inv := strings.Replace(rawInvite(dialled, extra, pcmuOffer), `From: "Bob" <sip:+15557654321@127.0.0.1>;tag=abc`, "From: "+from+";tag=abc", 1)
	if res := udpExchangeFrom(t, src, g.port(), inv, 5*time.Second); statusCode(res) != 486 {
		t.Fatalf("INVITE from %s for %s: %d, want the line's 486\n%s", src, dialled, statusCode(res), res)
	}
	evs := g.sink.waitEnded(t, 10*time.Second)
	if len(evs) == 0 || evs[0].Type != callevent.EventStarted {
		t.Fatalf("events %+v: want call.started first", evs)
	}
	return evs[0]
}

// TestNationalCallerIDIsE164InTheTrunksRegion is issue 15: a national caller ID on a US trunk
// (2025550123) and on a French trunk (0612345678) reach call.started as the E.164 numbers
// (+12025550123, +33612345678) the users hold, and a national dialled number on the US trunk
// finds the line written in E.164. The old normaliser put "+" in front of the digits:
// +2025550123 (Cairo), +0612345678, and 404 for the national dialled number.
func TestNationalCallerIDIsE164InTheTrunksRegion(t *testing.T) {
	g := numbersGateway(t)
	st := g.inviteFrom(t, "127.0.0.1", "2025550100", `"Dee" <sip:2025550123@127.0.0.1>`, "")
	if st.From != "+12025550123" || st.To != "+12025550100" || st.Line != "+12025550100" || st.CallerName != "Dee" {
		t.Errorf("US trunk: from %q to %q line %q name %q; want +12025550123 +12025550100 +12025550100 Dee", st.From, st.To, st.Line, st.CallerName)
	}
	st = g.inviteFrom(t, "127.0.0.3", "+12025550100", `<sip:0612345678@127.0.0.3>`, "")
	if st.From != "+33612345678" {
		t.Errorf("FR trunk: from %q, want +33612345678", st.From)
	}
	st = g.inviteFrom(t, "127.0.0.3", "+12025550100", `<sip:0033612345678@127.0.0.3>`, "")
	if st.From != "+33612345678" {
		t.Errorf("FR trunk, 00 international prefix: from %q, want +33612345678", st.From)
	}
	st = g.inviteFrom(t, "127.0.0.1", "+15550197", `<tel:+1-202-555-0123>`, "")
	if st.From != "+12025550123" {
		t.Errorf("tel: From: from %q, want +12025550123", st.From)
	}
	// A caller ID that is no number is kept as received (the ticketing core makes it an
	// anonymous caller), never turned into a number.
	st = g.inviteFrom(t, "127.0.0.1", "+15550197", `<sip:desk@127.0.0.1>`, "")
	if st.From != "desk" {
		t.Errorf("unreadable caller ID: from %q, want desk as received", st.From)
	}
}

// TestAssertedIdentityIsTheCallerOnATrustedTrunk: on a trunk, P-Asserted-Identity (RFC 3325
// §9.1) is the caller, not the From the caller chose to present; a trunk set to ignore it keeps
// From. The old code read From only.
func TestAssertedIdentityIsTheCallerOnATrustedTrunk(t *testing.T) {
	g := numbersGateway(t)
	pai := "P-Asserted-Identity: \"Carol, Sales\" <sip:2025550123@carrier.example;user=phone>, <tel:+12025550123>\n"
	st := g.inviteFrom(t, "127.0.0.1", "+15550197", `"Main Desk" <sip:+15557654321@127.0.0.1>`, pai)
	if st.From != "+12025550123" || st.CallerName != "Carol, Sales" {
		t.Errorf("trusted trunk: from %q name %q; want the asserted +12025550123 \"Carol, Sales\"", st.From, st.CallerName)
	}
	st = g.inviteFrom(t, "127.0.0.1", "+15550197", `"Main Desk" <sip:+15557654321@127.0.0.1>`, "P-Asserted-Identity: <tel:+33612345678>\n")
	if st.From != "+33612345678" || st.CallerName != "" {
		t.Errorf("tel: PAI: from %q name %q; want +33612345678 and no name", st.From, st.CallerName)
	}
	st = g.inviteFrom(t, "127.0.0.4", "+15550197", `"Main Desk" <sip:+15557654321@127.0.0.4>`, pai)
	if st.From != "+15557654321" || st.CallerName != "Main Desk" {
		t.Errorf("trunk ignoring PAI: from %q name %q; want From's +15557654321 \"Main Desk\"", st.From, st.CallerName)
	}
}

// TestWithheldCallerIsAnonymous: Privacy: id (RFC 3325 §9.3) and the anonymous From forms
// (RFC 3323 §4.1.1.3, and the markers carriers send) make call.started's from and caller_name
// empty, so the ticketing core treats the caller as anonymous (PM-3) and no user is made or
// matched. The old code ignored Privacy and sent "anonymous" and the like on as the number.
func TestWithheldCallerIsAnonymous(t *testing.T) {
	g := numbersGateway(t)
	const real = `"Dee" <sip:+12025550123@127.0.0.1>`
	for _, tc := range []struct{ name, from, extra string }{
		{"Privacy: id with an asserted identity", real, "Privacy: id\nP-Asserted-Identity: <sip:+12025550123@carrier.example>\n"},
		{"Privacy: id;critical", real, "Privacy: id;critical\n"},
		{"Privacy: user", real, "Privacy: user\n"},
		{"RFC 3323 anonymous From", `"Anonymous" <sip:anonymous@anonymous.invalid>`, ""},
		{"Anonymous display name", `"Anonymous" <sip:+12025550123@127.0.0.1>`, ""},
		{"restricted", `<sip:restricted@127.0.0.1>`, ""},
		{"unknown", `<sip:Unknown@127.0.0.1>`, ""},
		{"empty user", `<sip:127.0.0.1>`, ""},
		{"anonymous asserted identity", real, "P-Asserted-Identity: <sip:anonymous@anonymous.invalid>\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := g.inviteFrom(t, "127.0.0.1", "+15550197", tc.from, tc.extra)
			if st.From != "" || st.CallerName != "" {
				t.Errorf("from %q name %q; want both empty (anonymous caller)", st.From, st.CallerName)
			}
		})
	}
	if st := g.inviteFrom(t, "127.0.0.1", "+15550197", real, "Privacy: none\n"); st.From != "+12025550123" {
		t.Errorf("Privacy: none: from %q, want +12025550123", st.From)
	}
}
