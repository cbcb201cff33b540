package main

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"
)

// TestEndToEnd_NationalCallerIDsMatchTheUsersHoldingTheE164Numbers is issue 15 through the real
// binary: two trunks, "carrier" on 127.0.0.1 in the default region (US) and "paris" on
// 127.0.0.3 with region FR; two users created through the API holding +12025550123 and
// +33612345678. A caller on each trunk sends its national caller ID (2025550123 and 0612345678)
// and dials the line +12025550100 the way its carrier would (2025550100 in the US, 00 1 202… in
// France). Each call is matched to the line, its record carries the E.164 number, its ticket's
// requester is the existing user — no user is created — and the voice comment's location is
// the number's (Washington D.C., France), not Cairo. Before, sip put "+" in front of the digits:
// the national dialled number matched no line (404), and a national caller ID became
// +2025550123 (Egypt) or +0612345678 and a new user.
func TestEndToEnd_NationalCallerIDsMatchTheUsersHoldingTheE164Numbers(t *testing.T) {
	requireSipp(t)
	g := runEditedGateway(t, func(deskPort int) [][2]string {
		return [][2]string{
			// The US trunk keeps the default region (ticketing.default_region, US); the French one
			// names its own. Lines must name their trunk once there are two.
			{"    inbound: {allow: [127.0.0.0/8]}\n", "    inbound: {allow: [127.0.0.1/32]}\n"},
			{"lines:\n", "  - name: paris\n    region: FR\n    inbound: {allow: [127.0.0.3/32]}\nlines:\n" +
				fmt.Sprintf("  - {number: \"+12025550100\", trunk: carrier, target: \"sip:desk@127.0.0.1:%d\"}\n", deskPort)},
			{`{number: "+15550100", target`, `{number: "+15550100", trunk: carrier, target`},
			{`{number: "+15550198", target`, `{number: "+15550198", trunk: carrier, target`},
			{`{number: "+15550197", target`, `{number: "+15550197", trunk: carrier, target`},
		}
	})

	user := func(name, phone string) float64 {
		code, m := g.api("POST", "/users", fmt.Sprintf(`{"user":{"name":%q,"phone":%q}}`, name, phone))
		u, _ := m["user"].(map[string]any)
		if code != 201 || u == nil {
			t.Fatalf("create %s: %d %v", name, code, m)
		}
		return u["id"].(float64)
	}
	dee, amelie := user("Dee Washington", "+12025550123"), user("Amélie Paris", "+33612345678")

	for _, tc := range []struct {
		trunk, src, callerID, dialled, e164, location string
		requester                                     float64
	}{
		{"carrier (US)", "127.0.0.1", "2025550123", "2025550100", "+12025550123", "Washington D.C.", dee},
		{"paris (FR)", "127.0.0.3", "0612345678", "0012025550100", "+33612345678", "France", amelie},
	} {
		desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
		// The scenario's caller is +15551234567 (in the INVITE, the ACK and the BYE); this
		// carrier sends the national form, from the trunk's own address (-i comes last and wins).
		carrier := startSipp(t, "carrier_rtp.xml", map[string]string{"+15551234567": tc.callerID},
			"-s", tc.dialled, "-i", tc.src, fmt.Sprintf("127.0.0.1:%d", g.sipPort))
		carrier.wait(t, tc.trunk+" carrier")
		desk.wait(t, tc.trunk+" desk")

		call := g.awaitCall("+12025550100", func(c map[string]any) bool {
			return c["from"] == tc.e164 && c["state"] == "ended" && c["ticket_id"] != nil
		})
		if call["requester_id"] != tc.requester || call["line"] != "+12025550100" {
			t.Errorf("%s: call requester %v line %v; want the user holding %s (%v) and line +12025550100", tc.trunk, call["requester_id"], call["line"], tc.e164, tc.requester)
		}
		tk, comments := g.ticketOf(call)
		if tk["requester_id"] != tc.requester {
			t.Errorf("%s: ticket requester %v, want %v (the user holding %s)", tc.trunk, tk["requester_id"], tc.requester, tc.e164)
		}
		found := false
		for _, c := range comments {
			cm := c.(map[string]any)
			if cm["type"] != "VoiceComment" {
				continue
			}
			found = true
			if cm["from"] != tc.e164 || cm["location"] != tc.location {
				t.Errorf("%s: voice comment from %v location %v; want %s %q", tc.trunk, cm["from"], cm["location"], tc.e164, tc.location)
			}
		}
		if !found {
			t.Errorf("%s: the ticket has no voice comment: %v", tc.trunk, comments)
		}
	}

	// No junk user: the end users are the two created above, and nobody holds the numbers the
	// old normaliser made.
	code, m := g.api("GET", "/users?role=end-user", "")
	if us, _ := m["users"].([]any); code != 200 || len(us) != 2 {
		t.Errorf("end users: %d %v; want only the two created through the API", code, m["users"])
	}
	for _, junk := range []string{"+2025550123", "+0612345678"} {
		code, m := g.api("GET", "/users/search?phone="+url.QueryEscape(junk), "")
		if us, _ := m["users"].([]any); code == 200 && len(us) != 0 {
			t.Errorf("a user holds %s: %v", junk, us)
		}
	}
}
