package ticketing_test

import (
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// rule PM-3 (issue 15): a caller ID that is no phone number — too few digits for any country,
// a star code — is an anonymous caller. The call record keeps it as it was received, the
// requester is a placeholder, and no user is named after it or holds it. Before, ticketing put
// "+1" in front of what libphonenumber parsed (12 became +112) and made a user of it.
func TestRule_PM3_UnreadableCallerIDIsAnonymousAndKeptAsReceived(t *testing.T) {
	h := newEngineHarness(t, nil)
	for _, raw := range []string{"12", "1000", "*67"} {
		s := h.answeredCall(h.now, raw, "support", h.agent1.ID, 30)
		h.run(s.evs...)
		c := h.call(s.id)
		if c.From == nil || *c.From != raw {
			t.Errorf("%q: call record from %v, want it kept as received", raw, c.From)
		}
		if c.RequesterID == nil {
			t.Fatalf("%q: no requester, want the PM-3 placeholder", raw)
		}
		u, err := h.store.LiveUser(h.ctx, *c.RequesterID)
		if err != nil {
			t.Fatal(err)
		}
		if !u.Placeholder {
			t.Errorf("%q: requester %+v, want an anonymous placeholder (PM-3)", raw, u)
		}
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM user_identities`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d phone identities after calls from unreadable caller IDs, want none", n)
	}
}

// rule PM-1 with PM-10 (issue 15): an event posted without a region (POST /call_events from
// another phone system) with a national caller ID is read in the store's default region (US)
// and finds the user holding the E.164 number; a French caller in E.164, or written with the
// international prefix 00, finds the French user and is located in France (CD-5). Before,
// ticketing read 0033… as a US number (+1 0033…) and made a user of it.
func TestRule_PM1_NationalCallerOfAPostedEventMatchesTheE164Holder(t *testing.T) {
	h := newEngineHarness(t, nil)
	dee := h.endUser("Dee", "+12025550123")
	amelie := h.endUser("Amélie", "+33612345678")
	for _, tc := range []struct {
		from, location string
		want           ticketing.User
	}{
		{"(202) 555-0123", "Washington D.C.", dee},
		{"+33 6 12 34 56 78", "France", amelie},
		{"0033 6 12 34 56 78", "France", amelie}, // 00, the international prefix: was +1 0033…
	} {
		s := h.answeredCall(h.now, tc.from, "support", h.agent1.ID, 30)
		h.run(s.evs...)
		c := h.call(s.id)
		if c.RequesterID == nil || *c.RequesterID != tc.want.ID {
			t.Errorf("%q: requester %v, want %d (%s)", tc.from, c.RequesterID, tc.want.ID, tc.want.Name)
		}
		if c.Location == nil || *c.Location != tc.location {
			t.Errorf("%q: location %v, want %q", tc.from, c.Location, tc.location)
		}
	}
}
