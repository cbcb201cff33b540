package ticketing_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// rule PM-1: a number on a user makes that user the requester; search by phone finds them.
func TestRule_PM1_NumberOnUserIsRequester(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Ada", "+12125550101")
	res := e.resolve("+12125550101", ticketing.ResolveOptions{})
	if res.Requester == nil || res.Requester.ID != u || res.Created || res.Rule != "PM-1" {
		t.Fatalf("resolution %+v, want existing user %d by PM-1", res, u)
	}
	if res.Location != "New York, NY" {
		t.Errorf("location %q, want New York, NY (CD-5)", res.Location)
	}
	r := must(t, e.call(e.asAgent(), "GET", "/users/search?phone=%2B12125550101", nil), http.StatusOK)
	if us := r.list("users"); len(us) != 1 || int64(us[0]["id"].(float64)) != u {
		t.Fatalf("search: %s", r.Raw)
	}
}

// rule PM-2: an unknown number creates an end user named after it, owning it as a direct line.
func TestRule_PM2_UnknownNumberCreatesOwner(t *testing.T) {
	e := newEnv(t)
	res := e.resolve("2125550102", ticketing.ResolveOptions{}) // national format, region US
	if res.Requester == nil || !res.Created || res.Rule != "PM-2" || res.Number != "+12125550102" {
		t.Fatalf("resolution %+v", res)
	}
	r := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d", res.Requester.ID), nil), http.StatusOK)
	if r.str("user", "name") != "+12125550102" || r.str("user", "role") != "end-user" || r.str("user", "phone") != "+12125550102" {
		t.Fatalf("created user: %s", r.Raw)
	}
	if ids := e.identities(res.Requester.ID); ids["+12125550102"] != "direct" {
		t.Fatalf("identities %v, want the number as a direct line", ids)
	}
	// The next call from it finds the same user (PM-1), no second user.
	again := e.resolve("+1 212 555 0102", ticketing.ResolveOptions{})
	if again.Created || again.Requester.ID != res.Requester.ID {
		t.Fatalf("second call: %+v", again)
	}
}

// rule PM-3: an anonymous caller gets a new placeholder per call by default, which never
// matches a later call; agent_as_requester and no_ticket follow the setting.
func TestRule_PM3_AnonymousCallerPolicy(t *testing.T) {
	e := newEnv(t)
	a := e.resolve("anonymous", ticketing.ResolveOptions{CallID: "c1"})
	b := e.resolve("", ticketing.ResolveOptions{CallID: "c2"})
	if a.Requester == nil || b.Requester == nil || !a.Requester.Placeholder || a.Requester.ID == b.Requester.ID || !a.Anonymous {
		t.Fatalf("placeholders %+v %+v: want two distinct placeholder users", a, b)
	}
	if len(e.identities(a.Requester.ID)) != 0 {
		t.Fatal("a placeholder has no number, so it can never match a later call")
	}
	r := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d", a.Requester.ID), nil), http.StatusOK)
	if r.get("user", "placeholder") != true {
		t.Fatalf("placeholder flag: %s", r.Raw)
	}

	e.putSettings(map[string]any{"anonymous_caller_policy": "agent_as_requester"})
	c := e.resolve("Restricted", ticketing.ResolveOptions{AgentID: e.agent.ID})
	if c.Requester == nil || c.Requester.ID != e.agent.ID || c.Created {
		t.Fatalf("agent_as_requester: %+v", c)
	}
	e.putSettings(map[string]any{"anonymous_caller_policy": "no_ticket"})
	d := e.resolve("", ticketing.ResolveOptions{})
	if !d.NoTicket || d.Requester != nil {
		t.Fatalf("no_ticket: %+v", d)
	}
}

// rule PM-4: a number no one else has becomes a direct line.
func TestRule_PM4_NewNumberIsDirect(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Bea")
	r := e.addPhone(u, "+12125550104", http.StatusCreated)
	if r.str("identity", "line_type") != "direct" || r.get("identity", "primary") != true {
		t.Fatalf("identity: %s", r.Raw)
	}
}

// rule PM-5: several direct lines; a call from any of them resolves to the user.
func TestRule_PM5_SeveralDirectLines(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Cy", "+12125550105", "+13105550105")
	for _, n := range []string{"+12125550105", "+13105550105"} {
		if res := e.resolve(n, ticketing.ResolveOptions{}); res.Requester.ID != u {
			t.Fatalf("call from %s resolved to %d, want %d", n, res.Requester.ID, u)
		}
	}
	if ids := e.identities(u); ids["+12125550105"] != "direct" || ids["+13105550105"] != "direct" {
		t.Fatalf("identities %v", ids)
	}
}

// rule PM-6: another user's direct line added to a user is a shared number there.
func TestRule_PM6_OthersDirectLineIsShared(t *testing.T) {
	e := newEnv(t)
	e.newUser("Owner", "+12125550106")
	u2 := e.newUser("Spouse")
	r := e.addPhone(u2, "+12125550106", http.StatusCreated)
	if r.str("identity", "line_type") != "shared" {
		t.Fatalf("identity: %s", r.Raw)
	}
	u := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d", u2), nil), http.StatusOK)
	if u.get("user", "shared_phone_number") != true {
		t.Fatalf("shared_phone_number: %s", u.Raw)
	}
}

// rule PM-7: U1's direct line that is U2's shared number resolves to U1.
func TestRule_PM7_DirectOwnerWinsOverSharedHolder(t *testing.T) {
	e := newEnv(t)
	u1 := e.newUser("U1", "+12125550107")
	u2 := e.newUser("U2", "+12125550107")
	res := e.resolve("+12125550107", ticketing.ResolveOptions{})
	if res.Requester.ID != u1 || len(res.Candidates) != 2 || res.Candidates[1].User.ID != u2 || res.Ambiguous {
		t.Fatalf("resolution %+v", res)
	}
}

// rule PM-8: a second shared number is refused (422) and nothing is written.
func TestRule_PM8_SecondSharedNumberRefused(t *testing.T) {
	e := newEnv(t)
	e.newUser("A", "+12125550181")
	e.newUser("B", "+12125550182")
	u := e.newUser("C", "+12125550181")
	before := e.identities(u)
	r := e.addPhone(u, "+12125550182", http.StatusUnprocessableEntity)
	if r.str("error") != "RecordInvalid" || !r.detail("value") {
		t.Fatalf("error: %s", r.Raw)
	}
	if after := e.identities(u); len(after) != len(before) {
		t.Fatalf("identities changed: %v → %v", before, after)
	}
	// A number nobody has is still a direct line for C.
	e.addPhone(u, "+12125550183", http.StatusCreated)
}

// rule PM-9: the direct owner removed the number while others hold it shared. Default
// create_user: a new user owns it and the holders lose it, audited. most_recent_contact: the
// most recently created holder is the requester and nothing is removed.
func TestRule_PM9_UnownedNumberPolicy(t *testing.T) {
	e := newEnv(t)
	const n = "+12125550109"
	owner := e.newUser("Owner", n)
	h1 := e.newUser("Holder1", n)
	h2 := e.newUser("Holder2", n)
	ids := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d/identities", owner), nil), http.StatusOK).list("identities")
	must(t, e.call(e.asAgent(), "DELETE", fmt.Sprintf("/users/%d/identities/%d", owner, int64(ids[0]["id"].(float64))), nil), http.StatusNoContent)

	t.Run("most_recent_contact", func(t *testing.T) {
		e.putSettings(map[string]any{"unowned_number_policy": "most_recent_contact"})
		res := e.resolve(n, ticketing.ResolveOptions{})
		if res.Requester.ID != h2 || res.Created || !res.Ambiguous || len(res.Candidates) != 2 || res.Candidates[1].User.ID != h1 {
			t.Fatalf("resolution %+v, want the most recent holder %d", res, h2)
		}
		if e.identities(h1)[n] != "shared" {
			t.Fatal("most_recent_contact removes nothing")
		}
	})
	t.Run("create_user", func(t *testing.T) {
		e.putSettings(map[string]any{"unowned_number_policy": "create_user"})
		res := e.resolve(n, ticketing.ResolveOptions{})
		if !res.Created || res.Rule != "PM-9" || res.Requester.ID == h1 || res.Requester.ID == h2 {
			t.Fatalf("resolution %+v", res)
		}
		if e.identities(res.Requester.ID)[n] != "direct" {
			t.Fatal("the new user owns the number as a direct line")
		}
		for _, h := range []int64{h1, h2} {
			if _, ok := e.identities(h)[n]; ok {
				t.Fatalf("holder %d still holds %s", h, n)
			}
			audits, err := e.store.Audits(context.Background(), h, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(audits) != 1 || audits[0].Kind != ticketing.AuditIdentityRemoved || audits[0].Details["value"] != n {
				t.Fatalf("audits of %d: %+v", h, audits)
			}
		}
	})
}

// rule PM-10: with phone_validation numbers must be E.164 (422 otherwise); matching uses the
// normalised value whatever the display format.
func TestRule_PM10_E164AndNormalisedMatching(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Dee")
	for _, bad := range []string{"2125550110", "12345", "+0123", "phone", "+1 212 555 0110 ext 5"} {
		r := e.addPhone(u, bad, http.StatusUnprocessableEntity)
		if !r.detail("value") {
			t.Errorf("%q: error does not name value: %s", bad, r.Raw)
		}
	}
	r := e.addPhone(u, "+1 (212) 555-0110", http.StatusCreated)
	if r.str("identity", "value") != "+12125550110" {
		t.Fatalf("stored %q, want +12125550110", r.str("identity", "value"))
	}
	s := must(t, e.call(e.asAgent(), "GET", "/users/search?phone=%2B1-212-555-0110", nil), http.StatusOK)
	if us := s.list("users"); len(us) != 1 {
		t.Fatalf("search by a display format: %s", s.Raw)
	}
	if res := e.resolve("(212) 555-0110", ticketing.ResolveOptions{}); res.Requester.ID != u {
		t.Fatalf("call in national format resolved to %d", res.Requester.ID)
	}
	// Without validation a national number is read in the default region.
	e.putSettings(map[string]any{"phone_validation": false})
	r = e.addPhone(u, "212-555-0199", http.StatusCreated)
	if r.str("identity", "value") != "+12125550199" {
		t.Fatalf("stored %q", r.str("identity", "value"))
	}
}

// rule PM-11: every matching user is listed, the direct owner first, then the shared holders.
func TestRule_PM11_CandidatesOwnerFirst(t *testing.T) {
	e := newEnv(t)
	const n = "+12125550111"
	owner := e.newUser("Owner", n)
	h1 := e.newUser("H1", n)
	h2 := e.newUser("H2", n)
	res := e.resolve(n, ticketing.ResolveOptions{})
	got := []int64{}
	for _, c := range res.Candidates {
		got = append(got, c.User.ID)
	}
	want := []int64{owner, h2, h1}
	if fmt.Sprint(got) != fmt.Sprint(want) || res.Candidates[0].LineType != "direct" || res.Candidates[1].LineType != "shared" {
		t.Fatalf("candidates %v, want %v (owner, then holders newest first)", got, want)
	}
	s := must(t, e.call(e.asAgent(), "GET", "/users/search?phone=%2B12125550111", nil), http.StatusOK)
	got = got[:0]
	for _, u := range s.list("users") {
		got = append(got, int64(u["id"].(float64)))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("search order %v, want %v", got, want)
	}
}
