package ticketing_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

func (e *env) merge(src, target int64, status int) resp {
	e.t.Helper()
	return must(e.t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/users/%d/merge", src),
		map[string]any{"user": map[string]any{"id": target}}), status)
}

// rule UM-1: every number of the merged user moves to the target.
func TestRule_UM1_NumbersMoveToTarget(t *testing.T) {
	e := newEnv(t)
	e.newUser("Other", "+12125550121")
	src := e.newUser("Src", "+12125550120", "+12125550121") // direct, shared
	dst := e.newUser("Dst", "+13105550120")
	r := e.merge(src, dst, http.StatusOK)
	if r.id("user", "id") != dst {
		t.Fatalf("merge answered %s", r.Raw)
	}
	ids := e.identities(dst)
	if ids["+12125550120"] != "direct" || ids["+12125550121"] != "shared" || ids["+13105550120"] != "direct" {
		t.Fatalf("target identities %v", ids)
	}
	if res := e.resolve("+12125550120", ticketing.ResolveOptions{}); res.Requester.ID != dst {
		t.Fatalf("a call from the moved number resolves to %d, want %d", res.Requester.ID, dst)
	}
}

// rule UM-2: when both hold a shared number, the merged user's shared number is dropped.
func TestRule_UM2_BothSharedDropsSources(t *testing.T) {
	e := newEnv(t)
	e.newUser("O1", "+12125550122")
	e.newUser("O2", "+12125550123")
	src := e.newUser("Src", "+12125550122")
	dst := e.newUser("Dst", "+12125550123")
	e.merge(src, dst, http.StatusOK)
	ids := e.identities(dst)
	if len(ids) != 1 || ids["+12125550123"] != "shared" {
		t.Fatalf("target identities %v, want only its own shared number", ids)
	}
}

// rule UM-3: the merged user's tickets, closed ones too, get the target as requester (audited).
func TestRule_UM3_TicketsMoveToTarget(t *testing.T) {
	e := newEnv(t)
	src := e.newUser("Src", "+12125550124")
	dst := e.newUser("Dst")
	t1 := e.newTicket(src, nil)
	t2 := e.newTicket(src, map[string]any{"assignee_id": e.agent.ID})
	must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/tickets/%d", t2), map[string]any{"ticket": map[string]any{"status": "closed"}}), http.StatusOK)
	e.merge(src, dst, http.StatusOK)
	r := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d/tickets/requested", dst), nil), http.StatusOK)
	got := map[int64]bool{}
	for _, tk := range r.list("tickets") {
		got[int64(tk["id"].(float64))] = true
		if int64(tk["requester_id"].(float64)) != dst {
			t.Errorf("ticket %v requester %v", tk["id"], tk["requester_id"])
		}
	}
	if !got[t1] || !got[t2] {
		t.Fatalf("requested tickets of target: %s", r.Raw)
	}
	audits, err := e.store.Audits(context.Background(), 0, t1)
	if err != nil {
		t.Fatal(err)
	}
	if len(audits) != 1 || audits[0].Kind != ticketing.AuditRequesterChanged || audits[0].Details["reason"] != "user_merge" ||
		audits[0].ActorID == nil || *audits[0].ActorID != e.agent.ID {
		t.Fatalf("audits %+v", audits)
	}
}

// rule UM-4: a direct line of the merged user that the target holds as shared becomes the
// target's direct line.
func TestRule_UM4_SharedBecomesDirect(t *testing.T) {
	e := newEnv(t)
	src := e.newUser("Src", "+12125550125")
	dst := e.newUser("Dst", "+12125550125")
	if e.identities(dst)["+12125550125"] != "shared" {
		t.Fatal("setup: target holds the number as shared")
	}
	e.merge(src, dst, http.StatusOK)
	if ids := e.identities(dst); len(ids) != 1 || ids["+12125550125"] != "direct" {
		t.Fatalf("target identities %v", ids)
	}
	// The target may now take a shared number again.
	e.newUser("O", "+12125550126")
	e.addPhone(dst, "+12125550126", http.StatusCreated)
}

// rule UM-5: the merged user stays as a redirect that lookups follow; agents and admins
// cannot be merged (422).
func TestRule_UM5_RedirectAndStaffNotMerged(t *testing.T) {
	e := newEnv(t)
	src := e.newUser("Src")
	dst := e.newUser("Dst")
	e.merge(src, dst, http.StatusOK)
	r := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d", src), nil), http.StatusOK)
	if r.id("user", "merged_into_id") != dst {
		t.Fatalf("merged user: %s", r.Raw)
	}
	// Lookups follow it: a ticket for the merged user is the target's; numbers land there.
	tk := e.newTicket(src, nil)
	g := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d", tk), nil), http.StatusOK)
	if g.id("ticket", "requester_id") != dst {
		t.Fatalf("ticket requester %d, want %d", g.id("ticket", "requester_id"), dst)
	}
	ident := e.addPhone(src, "+12125550127", http.StatusCreated)
	if ident.id("identity", "user_id") != dst {
		t.Fatalf("identity went to %d", ident.id("identity", "user_id"))
	}
	// Merged once is merged for good.
	if r := e.merge(src, e.newUser("Third"), http.StatusConflict); r.str("error") != "Conflict" {
		t.Fatalf("second merge: %s", r.Raw)
	}
	// Staff cannot be merged, in either role.
	if r := e.merge(e.agent.ID, dst, http.StatusUnprocessableEntity); !r.detail("role") {
		t.Fatalf("merging an agent: %s", r.Raw)
	}
	if r := e.merge(dst, e.admin.ID, http.StatusUnprocessableEntity); !r.detail("id") {
		t.Fatalf("merging into an admin: %s", r.Raw)
	}
	if r := e.merge(dst, dst, http.StatusUnprocessableEntity); !r.detail("id") {
		t.Fatalf("merging into itself: %s", r.Raw)
	}
}

// rule TM-1: the sources' comments and calls show on the target; sources are closed with a
// private note pointing to the target.
func TestRule_TM1_SourcesClosedWithNote(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("U", "+12125550131")
	target := e.newTicket(u, nil)
	src := e.voiceTicket(u, "+12125550131")
	r := must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", target), map[string]any{"ids": []int64{src}}), http.StatusOK)
	if r.id("ticket", "id") != target {
		t.Fatalf("merge answered %s", r.Raw)
	}
	s := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d", src), nil), http.StatusOK)
	if s.str("ticket", "status") != "closed" || s.id("ticket", "merged_into_id") != target {
		t.Fatalf("source: %s", s.Raw)
	}
	// A merged source has no assignee, yet its tags can still change.
	must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/tickets/%d", src), map[string]any{"ticket": map[string]any{"tags": []string{"merged"}}}), http.StatusOK)
	sc := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", src), nil), http.StatusOK).list("comments")
	last := sc[len(sc)-1]
	if last["public"] != false || !strings.Contains(last["body"].(string), fmt.Sprintf("#%d", target)) {
		t.Fatalf("source's last comment %v, want a private note pointing to #%d", last, target)
	}
	tc := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", target), nil), http.StatusOK).list("comments")
	voice := 0
	for _, c := range tc {
		if c["type"] == "VoiceComment" {
			voice++
			if c["from"] != "+12125550131" || c["location"] != "New York, NY" {
				t.Errorf("voice comment %v", c)
			}
		}
	}
	if voice != 1 {
		t.Fatalf("target comments %v: want the source's call", tc)
	}
	// Comments keep their order.
	for i := 1; i < len(tc); i++ {
		if tc[i]["id"].(float64) <= tc[i-1]["id"].(float64) {
			t.Fatalf("comments out of order: %v", tc)
		}
	}
	// TU-6: a later write for the source's call follows the chain to the live ticket.
	c, err := e.store.AppendVoiceComment(context.Background(), src, ticketing.VoiceComment{CallID: "late", From: "+12125550131"})
	if err != nil || c.TicketID != target {
		t.Fatalf("late write landed on %d (%v), want %d", c.TicketID, err, target)
	}
}

// rule TM-2: when source and target both have a voice comment, the target's displayed number
// becomes the number that created the source (as the Talk document states).
func TestRule_TM2_DisplayedNumberBecomesSourcesNumber(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("U", "+12125550132", "+13105550132")
	target := e.voiceTicket(u, "+12125550132")
	src := e.voiceTicket(u, "+13105550132")
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", target), map[string]any{"ids": []int64{src}}), http.StatusOK)
	r := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d", target), nil), http.StatusOK)
	if r.str("ticket", "display_phone") != "+13105550132" || r.str("ticket", "origin_phone") != "+12125550132" {
		t.Fatalf("target: display %q origin %q", r.str("ticket", "display_phone"), r.str("ticket", "origin_phone"))
	}
	// Without a voice comment on the target, its displayed number stays.
	plain := e.newTicket(u, nil)
	other := e.voiceTicket(u, "+13105550132")
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", plain), map[string]any{"ids": []int64{other}}), http.StatusOK)
	if r := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d", plain), nil), http.StatusOK); r.get("ticket", "display_phone") != nil {
		t.Fatalf("target without a call: %s", r.Raw)
	}
}

// rule TM-3: a closed ticket can be neither source nor target (409), and nothing changes.
func TestRule_TM3_ClosedTicketsRefused(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("U")
	open1 := e.newTicket(u, nil)
	open2 := e.newTicket(u, nil)
	closed := e.newTicket(u, map[string]any{"assignee_id": e.agent.ID})
	must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/tickets/%d", closed), map[string]any{"ticket": map[string]any{"status": "closed"}}), http.StatusOK)
	r := must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", open1), map[string]any{"ids": []int64{open2, closed}}), http.StatusConflict)
	if r.str("error") != "Conflict" {
		t.Fatalf("closed source: %s", r.Raw)
	}
	if s := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d", open2), nil), http.StatusOK); s.str("ticket", "status") == "closed" {
		t.Fatal("a refused merge closed a source: half-written")
	}
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", closed), map[string]any{"ids": []int64{open2}}), http.StatusConflict)
	// A merged source is closed, so merging it again is refused too.
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", open1), map[string]any{"ids": []int64{open2}}), http.StatusOK)
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", open1), map[string]any{"ids": []int64{open2}}), http.StatusConflict)
}

// Merge chains A→B→C: the live ticket of A is C, and C shows A's comments.
func TestTicketMergeChainIsFollowed(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("U")
	a, b, c := e.newTicket(u, nil), e.newTicket(u, nil), e.newTicket(u, nil)
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", b), map[string]any{"ids": []int64{a}}), http.StatusOK)
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", c), map[string]any{"ids": []int64{b}}), http.StatusOK)
	live, err := e.store.LiveTicketID(context.Background(), a)
	if err != nil || live != c {
		t.Fatalf("live ticket of %d is %d (%v), want %d", a, live, err, c)
	}
	cs := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", c), nil), http.StatusOK).list("comments")
	seen := map[int64]bool{}
	for _, cm := range cs {
		seen[int64(cm["ticket_id"].(float64))] = true
	}
	if !seen[a] || !seen[b] || !seen[c] {
		t.Fatalf("comments of %d come from %v, want %d, %d and %d", c, seen, a, b, c)
	}
}

// The ticket system rules: new becomes open when assigned and never returns to new; solved
// needs an assignee; closed is immutable except its tags.
func TestTicketSystemRules(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("U")
	id := e.newTicket(u, nil)
	path := fmt.Sprintf("/tickets/%d", id)
	put := func(fields map[string]any, status int) resp {
		t.Helper()
		return must(t, e.call(e.asAgent(), "PUT", path, map[string]any{"ticket": fields}), status)
	}
	if r := must(t, e.call(e.asAgent(), "GET", path, nil), http.StatusOK); r.str("ticket", "status") != "new" {
		t.Fatalf("a fresh ticket is new: %s", r.Raw)
	}
	if r := put(map[string]any{"status": "solved"}, http.StatusUnprocessableEntity); !r.detail("assignee_id") {
		t.Fatalf("solved without assignee: %s", r.Raw)
	}
	if r := put(map[string]any{"assignee_id": e.agent.ID}, http.StatusOK); r.str("ticket", "status") != "open" {
		t.Fatalf("assigned new ticket: %s", r.Raw)
	}
	if r := put(map[string]any{"status": "new"}, http.StatusUnprocessableEntity); !r.detail("status") {
		t.Fatalf("back to new: %s", r.Raw)
	}
	put(map[string]any{"status": "pending"}, http.StatusOK)
	if r := put(map[string]any{"assignee_id": nil, "status": "solved"}, http.StatusUnprocessableEntity); !r.detail("assignee_id") {
		t.Fatalf("unassign and solve: %s", r.Raw)
	}
	put(map[string]any{"status": "solved"}, http.StatusOK)
	put(map[string]any{"status": "closed"}, http.StatusOK)
	if r := put(map[string]any{"subject": "changed"}, http.StatusConflict); r.str("error") != "Conflict" {
		t.Fatalf("closed subject change: %s", r.Raw)
	}
	must(t, e.call(e.asAgent(), "POST", path+"/comments", map[string]any{"comment": map[string]any{"body": "late"}}), http.StatusConflict)
	if r := put(map[string]any{"tags": []string{"VIP", "vip", "callback"}}, http.StatusOK); fmt.Sprint(r.get("ticket", "tags")) != "[vip callback]" {
		t.Fatalf("tags on a closed ticket: %s", r.Raw)
	}
	// Sending the ticket back as read, with new tags, is a tag change only.
	put(map[string]any{"status": "closed", "subject": "help", "assignee_id": e.agent.ID, "tags": []string{"done"}}, http.StatusOK)
	// The database holds the rules even for a direct write.
	_, err := e.store.Pool().Exec(context.Background(), `UPDATE tickets SET subject = 'x' WHERE id = $1`, id)
	if err == nil {
		t.Fatal("the database let a closed ticket change")
	}
	// Comments keep order.
	id2 := e.newTicket(u, nil)
	for i := range 5 {
		must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/comments", id2), map[string]any{"comment": map[string]any{"body": fmt.Sprintf("c%d", i), "public": i%2 == 0}}), http.StatusCreated)
	}
	cs := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", id2), nil), http.StatusOK).list("comments")
	var bodies []string
	for _, c := range cs {
		bodies = append(bodies, c["body"].(string))
	}
	if strings.Join(bodies, ",") != "first,c0,c1,c2,c3,c4" {
		t.Fatalf("comment order %v", bodies)
	}
}
