package ticketing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// auditLogs lists the audit trail as a, following links.next to the end (at most 50 pages).
func (e *env) auditLogs(a auth, query string) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	path := "/audit_logs?" + query
	for range 50 {
		r := must(e.t, e.call(a, "GET", path, nil), http.StatusOK)
		out = append(out, r.list("audit_logs")...)
		next, _ := r.get("links", "next").(string)
		if next == "" {
			return out
		}
		u, err := url.Parse(next)
		if err != nil {
			e.t.Fatal(err)
		}
		path = strings.TrimPrefix(u.Path, "/api/v2") + "?" + u.RawQuery
	}
	e.t.Fatalf("audit logs %q: more than 50 pages", query)
	return nil
}

// auditOf returns the entries of one action, in the order listed.
func auditOf(logs []map[string]any, action string) []map[string]any {
	var out []map[string]any
	for _, l := range logs {
		if l["action"] == action {
			out = append(out, l)
		}
	}
	return out
}

func num(v any) int64 { f, _ := v.(float64); return int64(f) }

// voicemailTicket makes a ticket the way the events engine makes a voicemail's (VM-1): via
// voicemail, with the voice comment that carries the message recordingID.
func (e *env) voicemailTicket(requester int64, from, recordingID string) int64 {
	e.t.Helper()
	ctx := context.Background()
	agent := e.agent.ID
	t, err := e.store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{
		Subject: "Voicemail from " + from, RequesterID: requester, OriginPhone: from, AssigneeID: &agent,
		Via: ticketing.Via{Channel: ticketing.ChannelVoicemail, Source: "inbound"}, Tags: []string{"voicemail"},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	d := int64(12)
	if _, err := e.store.AppendVoiceComment(ctx, t.ID, ticketing.VoiceComment{
		Body: "Voicemail from " + from, CallID: "call-" + recordingID, From: from, To: "+15550198",
		StartedAt: time.Now(), Duration: &d, RecordingID: recordingID, RecordingURL: "/api/v2/recordings/" + recordingID,
	}); err != nil {
		e.t.Fatal(err)
	}
	return t.ID
}

// TU-9: reading a voicemail (its message fetched: what the recordings route calls, Store.
// AuditVoicemailRead), closing it (its ticket set solved through PUT /tickets/{id}) and calling
// it back (a dial on its ticket: Store.AuditVoicemailCallback, what POST /calls calls) each
// write an entry on the voicemail's ticket naming the agent; the same on a ticket that is not a
// voicemail's writes nothing.
func TestRule_TU9_VoicemailReadCloseCallbackAreAudited(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.newUser("Vera", "+12125550190")
	vm := e.voicemailTicket(u, "+12125550190", "rec-vm-1")
	other := e.voiceTicket(u, "+12125550190")
	agent := ticketing.Actor(e.agent.ID)

	if err := e.store.AuditVoicemailRead(ctx, agent, "rec-vm-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AuditVoicemailRead(ctx, agent, "rec-of-a-call"); err != nil {
		t.Fatal(err)
	}
	must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/tickets/%d", vm), map[string]any{"ticket": map[string]any{"status": "solved"}}), http.StatusOK)
	must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/tickets/%d", other), map[string]any{"ticket": map[string]any{"status": "solved", "assignee_id": e.agent.ID}}), http.StatusOK)
	if err := e.store.AuditVoicemailCallback(ctx, agent, vm, "call-back-1", "+12125550190"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AuditVoicemailCallback(ctx, agent, other, "call-back-2", "+12125550190"); err != nil {
		t.Fatal(err)
	}

	logs := e.auditLogs(e.asAgent(), "sort=created_at&filter[source_type]=ticket&filter[source_id]="+fmt.Sprint(vm))
	var actions []string
	for _, l := range logs {
		actions = append(actions, l["action"].(string))
		if num(l["actor_id"]) != e.agent.ID || l["actor_name"] != "Agent One" || l["source_type"] != "ticket" || num(l["source_id"]) != vm {
			t.Errorf("entry %v: want the agent's, on ticket %d", l, vm)
		}
	}
	want := []string{ticketing.AuditVoicemailRead, ticketing.AuditVoicemailClosed, ticketing.AuditVoicemailCalledBack}
	if !slices.Equal(actions, want) {
		t.Fatalf("voicemail ticket's audit trail %v, want %v", actions, want)
	}
	if d := logs[1]["change_description"].(string); !strings.Contains(d, "to solved") {
		t.Errorf("close description %q", d)
	}
	if d := logs[2]["change_description"].(string); !strings.Contains(d, "+12125550190") || !strings.Contains(d, "call-back-1") {
		t.Errorf("callback description %q", d)
	}
	if ip := logs[1]["ip_address"]; ip != "127.0.0.1" {
		t.Errorf("close through the API: ip_address %v, want the client's 127.0.0.1", ip)
	}
	if got := e.auditLogs(e.asAdmin(), "filter[source_type]=ticket&filter[source_id]="+fmt.Sprint(other)); len(got) != 0 {
		t.Errorf("a ticket that is no voicemail's: %v, want no entry", got)
	}
}

// The audit trail's visibility: an admin sees every entry (other people's and the system's);
// an agent only the entries of their own actions — in the list, whatever actor they filter
// on, and one by one (another's entry is a 404, as a missing one).
func TestAuditLogs_AgentSeesOnlyOwnAdminSeesAll(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Ann")
	t1, t2 := e.newTicket(u, nil), e.newTicket(u, nil)
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", t1), map[string]any{"ids": []int64{t2}}), http.StatusOK)
	e.putSettings(map[string]any{"callback_append_window": 120}) // by the admin

	all := e.auditLogs(e.asAdmin(), "")
	if len(auditOf(all, ticketing.AuditTicketMerged)) != 2 || len(auditOf(all, ticketing.AuditSettingsChanged)) != 1 {
		t.Fatalf("admin's view: %v", all)
	}
	mine := e.auditLogs(e.asAgent(), "")
	if len(mine) != 2 {
		t.Fatalf("agent's view: %v, want the two entries of the merge", mine)
	}
	for _, l := range mine {
		if num(l["actor_id"]) != e.agent.ID {
			t.Errorf("agent sees %v", l)
		}
	}
	if got := e.auditLogs(e.asAgent(), fmt.Sprintf("filter[actor_id]=%d", e.admin.ID)); len(got) != 0 {
		t.Errorf("agent filtering on the admin: %v, want nothing", got)
	}
	settings := auditOf(all, ticketing.AuditSettingsChanged)[0]
	must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/audit_logs/%d", num(settings["id"])), nil), http.StatusNotFound)
	r := must(t, e.call(e.asAdmin(), "GET", fmt.Sprintf("/audit_logs/%d", num(settings["id"])), nil), http.StatusOK)
	if r.str("audit_log", "action") != ticketing.AuditSettingsChanged || r.get("audit_log", "source_id") != nil ||
		r.str("audit_log", "source_type") != "account_setting" || !strings.HasSuffix(r.str("audit_log", "url"), fmt.Sprintf("/api/v2/audit_logs/%d", num(settings["id"]))) {
		t.Errorf("one entry: %s", r.Raw)
	}
	r = must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/audit_logs/%d", num(mine[0]["id"])), nil), http.StatusOK)
	if r.id("audit_log", "id") != num(mine[0]["id"]) {
		t.Errorf("agent's own entry: %s", r.Raw)
	}
}

// Cursor pagination walks the whole trail once in either order (page[size], links.next,
// page[before] back), and each filter selects what it names: source, actor, action, a
// created_at window given twice, and the short names of the first API (source_type, since).
func TestAuditLogs_CursorPaginationAndFilters(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.putSettings(map[string]any{"callback_append_window": 30 + i})
	}
	// The settings changes happened an hour ago (the clock moved, not slept): the created_at
	// filters, in whole RFC 3339 seconds, have a gap to fall in.
	if _, err := e.store.Pool().Exec(context.Background(), `UPDATE audits SET created_at = created_at - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	mid := time.Now().UTC().Add(-30 * time.Minute)
	u := e.newUser("Pat")
	t1, t2 := e.newTicket(u, nil), e.newTicket(u, nil)
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", t1), map[string]any{"ids": []int64{t2}}), http.StatusOK)

	all := e.auditLogs(e.asAdmin(), "page[size]=2")
	if len(all) != 7 {
		t.Fatalf("%d entries over pages of 2, want 7: %v", len(all), all)
	}
	seen := map[int64]bool{}
	for i, l := range all {
		if seen[num(l["id"])] {
			t.Fatalf("entry %v listed twice", l["id"])
		}
		seen[num(l["id"])] = true
		if i > 0 && l["created_at"].(string) > all[i-1]["created_at"].(string) {
			t.Errorf("default order is newest first: %v after %v", l["created_at"], all[i-1]["created_at"])
		}
	}
	asc := e.auditLogs(e.asAdmin(), "page[size]=3&sort=created_at")
	if len(asc) != 7 || num(asc[0]["id"]) != num(all[6]["id"]) || num(asc[6]["id"]) != num(all[0]["id"]) {
		t.Fatalf("sort=created_at is the reverse: %v", asc)
	}
	// Page two, then back with its before cursor: page one again.
	p1 := must(t, e.call(e.asAdmin(), "GET", "/audit_logs?page[size]=2", nil), http.StatusOK)
	if p1.get("meta", "has_more") != true || p1.get("links", "prev") != nil {
		t.Fatalf("first page: %s", p1.Raw)
	}
	p2 := must(t, e.call(e.asAdmin(), "GET", "/audit_logs?page[size]=2&page[after]="+p1.str("meta", "after_cursor"), nil), http.StatusOK)
	back := must(t, e.call(e.asAdmin(), "GET", "/audit_logs?page[size]=2&page[before]="+p2.str("meta", "before_cursor"), nil), http.StatusOK)
	if ids := func(r resp) []int64 {
		var out []int64
		for _, l := range r.list("audit_logs") {
			out = append(out, num(l["id"]))
		}
		return out
	}; !slices.Equal(ids(back), ids(p1)) || p2.get("links", "prev") == nil {
		t.Errorf("back from page two: %v, want page one %v", ids(back), ids(p1))
	}

	for _, tc := range []struct {
		query string
		want  int
	}{
		{"filter[source_type]=account_setting", 5},
		{"source_type=account_setting", 5},
		{"filter[action]=ticket_merged", 2},
		{fmt.Sprintf("filter[source_type]=ticket&filter[source_id]=%d", t2), 1},
		{fmt.Sprintf("filter[actor_id]=%d", e.agent.ID), 2},
		{fmt.Sprintf("actor_id=%d", e.admin.ID), 5},
		{"filter[ip_address]=127.0.0.1", 7},
		{"filter[ip_address]=10.0.0.1", 0},
		{"since=" + mid.Format(time.RFC3339), 2},
		{"filter[created_at][]=" + mid.Add(-time.Hour).Format(time.RFC3339) + "&filter[created_at][]=" + mid.Format(time.RFC3339), 5},
		{"filter[created_at]=" + mid.Format(time.RFC3339) + "&filter[created_at]=" + mid.Add(time.Hour).Format(time.RFC3339), 2},
	} {
		if got := e.auditLogs(e.asAdmin(), tc.query+"&page[size]=1"); len(got) != tc.want {
			t.Errorf("%s: %d entries, want %d: %v", tc.query, len(got), tc.want, got)
		}
	}
}

// A filter the trail cannot apply is a 422 naming the parameter as the client wrote it, never
// the whole trail: a misread filter would hide nothing and say so to nobody.
func TestAuditLogs_InvalidFilterIs422NamingIt(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ query, field string }{
		{"filter[source_type]=tickets", "filter[source_type]"},
		{"filter[source_id]=7", "filter[source_id]"}, // without a source type
		{"filter[source_type]=ticket&filter[source_id]=x", "filter[source_id]"},
		{"filter[actor_id]=-1", "filter[actor_id]"},
		{"actor_id=abc", "actor_id"},
		{"filter[action]=delete", "filter[action]"},
		{"filter[ip_address]=300.1.1.1", "filter[ip_address]"},
		{"filter[created_at][]=2026-01-01T00:00:00Z", "filter[created_at][]"},
		{"filter[created_at][]=2026-01-02T00:00:00Z&filter[created_at][]=2026-01-01T00:00:00Z", "filter[created_at][]"},
		{"filter[created_at][]=yesterday&filter[created_at][]=2026-01-01T00:00:00Z", "filter[created_at][]"},
		{"since=2026-13-01", "since"},
		{"filter[actor]=1", "filter[actor]"},
		{"sort=id", "sort"},
		{"page[size]=0", "page[size]"},
		{"page[size]=101", "page[size]"},
		{"page[after]=%00%1b", "page[after]"},
		{"page[before]=bm90LWEtY3Vyc29y", "page[before]"},
	} {
		r := must(t, e.call(e.asAgent(), "GET", "/audit_logs?"+tc.query, nil), http.StatusUnprocessableEntity)
		if !r.detail(tc.field) || r.str("error") != "RecordInvalid" {
			t.Errorf("%s: %s, want details naming %s", tc.query, r.Raw, tc.field)
		}
		if strings.ContainsAny(string(r.Raw), "\x00\x1b") {
			t.Errorf("%s: control characters echoed: %q", tc.query, r.Raw)
		}
	}
}

// Settings changes (PUT /settings/voice) are audited in the transaction that stores them:
// which keys changed, old → new; a PUT that changes nothing writes no entry.
func TestAuditLogs_SettingsChangeListsKeysOldToNew(t *testing.T) {
	e := newEnv(t)
	e.putSettings(map[string]any{"outbound": map[string]any{"allow_no_ticket": true}, "callback_append_window": 45})
	e.putSettings(map[string]any{"callback_append_window": 45}) // no change
	logs := e.auditLogs(e.asAdmin(), "filter[action]=settings_changed")
	if len(logs) != 1 {
		t.Fatalf("settings entries %v, want 1", logs)
	}
	d := logs[0]["change_description"].(string)
	if !strings.Contains(d, "outbound.allow_no_ticket: false → true") || !strings.Contains(d, "callback_append_window: ") ||
		!strings.Contains(d, "→ 45") || strings.Contains(d, "append_to_open_ticket") {
		t.Errorf("description %q: want the two changed keys, old → new, and no other", d)
	}
	if num(logs[0]["actor_id"]) != e.admin.ID || logs[0]["source_label"] != "Voice settings" {
		t.Errorf("entry %v", logs[0])
	}
}

// A requester change through PUT /tickets/{id} is listed on the ticket with both users'
// names, control characters in a name cleaned out of the description.
func TestAuditLogs_RequesterChangeThroughAPIIsListed(t *testing.T) {
	e := newEnv(t)
	a := e.newUser("Ann")
	b := e.newUser("Bob")
	ctx := context.Background()
	if _, err := e.store.Pool().Exec(ctx, `UPDATE users SET name = $2 WHERE id = $1`, b, "Bob\x1b[2J\nEvil\u202egnp.exe"); err != nil {
		t.Fatal(err)
	}
	tk := e.newTicket(a, nil)
	must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/tickets/%d", tk), map[string]any{"ticket": map[string]any{"requester_id": b}}), http.StatusOK)
	logs := e.auditLogs(e.asAgent(), "filter[action]=requester_changed")
	if len(logs) != 1 || num(logs[0]["source_id"]) != tk || num(logs[0]["actor_id"]) != e.agent.ID {
		t.Fatalf("requester entries %v", logs)
	}
	d := logs[0]["change_description"].(string)
	if !strings.Contains(d, fmt.Sprintf("Ann (user #%d)", a)) || !strings.Contains(d, fmt.Sprintf("(user #%d)", b)) ||
		strings.ContainsAny(d, "\x1b\n\u202e") || !strings.Contains(logs[0]["source_label"].(string), fmt.Sprintf("Ticket #%d", tk)) {
		t.Errorf("description %q, label %v", d, logs[0]["source_label"])
	}
	if logs[0]["ip_address"] != "127.0.0.1" {
		t.Errorf("ip_address %v", logs[0]["ip_address"])
	}
}

// User merges (PUT /users/{id}/merge) and ticket merges (POST /tickets/{id}/merge) are listed:
// the merged user, each merged ticket and the target ticket, and the requester changes the
// user merge made (UM-3).
func TestAuditLogs_UserAndTicketMergesAreListed(t *testing.T) {
	e := newEnv(t)
	src, dst := e.newUser("Src"), e.newUser("Dst")
	tk := e.newTicket(src, nil)
	e.merge(src, dst, http.StatusOK)
	t1, t2 := e.newTicket(dst, nil), e.newTicket(dst, nil)
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", t1), map[string]any{"ids": []int64{t2}}), http.StatusOK)

	um := e.auditLogs(e.asAgent(), fmt.Sprintf("filter[source_type]=user&filter[source_id]=%d", src))
	if len(um) != 1 || um[0]["action"] != ticketing.AuditUserMerged || !strings.Contains(um[0]["change_description"].(string), fmt.Sprintf("(user #%d)", dst)) {
		t.Fatalf("user merge entries %v", um)
	}
	rc := e.auditLogs(e.asAgent(), fmt.Sprintf("filter[source_type]=ticket&filter[source_id]=%d", tk))
	if len(rc) != 1 || rc[0]["action"] != ticketing.AuditRequesterChanged || !strings.Contains(rc[0]["change_description"].(string), "user_merge") {
		t.Fatalf("moved ticket's entries %v", rc)
	}
	tm := auditOf(e.auditLogs(e.asAgent(), "filter[action]=ticket_merged&sort=created_at"), ticketing.AuditTicketMerged)
	if len(tm) != 2 || num(tm[0]["source_id"]) != t2 || tm[0]["change_description"] != fmt.Sprintf("Merged into ticket #%d", t1) ||
		num(tm[1]["source_id"]) != t1 || !strings.Contains(tm[1]["change_description"].(string), fmt.Sprintf("#%d", t2)) {
		t.Fatalf("ticket merge entries %v", tm)
	}
}

// PM-9: a shared number removed from its holders when create_user makes its new owner is
// listed on each holder, by the system (no actor), naming the number and the new owner.
func TestRule_PM9_RemovedSharedNumberIsListed(t *testing.T) {
	e := newEnv(t)
	const n = "+12125550191"
	owner := e.newUser("Owner", n)
	h1, h2 := e.newUser("H1", n), e.newUser("H2", n) // shared: the owner has it as direct line
	ids := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d/identities", owner), nil), http.StatusOK).list("identities")
	must(t, e.call(e.asAgent(), "DELETE", fmt.Sprintf("/users/%d/identities/%d", owner, num(ids[0]["id"])), nil), http.StatusNoContent)
	e.putSettings(map[string]any{"unowned_number_policy": "create_user"})
	res := e.resolve(n, ticketing.ResolveOptions{})
	for _, h := range []int64{h1, h2} {
		logs := e.auditLogs(e.asAdmin(), fmt.Sprintf("filter[source_type]=user&filter[source_id]=%d", h))
		if len(logs) != 1 || logs[0]["action"] != ticketing.AuditIdentityRemoved || logs[0]["actor_id"] != nil ||
			logs[0]["actor_name"] != "Switchboard" {
			t.Fatalf("holder %d: %v", h, logs)
		}
		d := logs[0]["change_description"].(string)
		if !strings.Contains(d, n) || !strings.Contains(d, fmt.Sprintf("(user #%d)", res.Requester.ID)) {
			t.Errorf("holder %d: description %q", h, d)
		}
	}
}

// CD-6: deleting a ticket's recordings (what DELETE /tickets/{id}/recordings has ticketing
// do, Store.MarkRecordingsDeleted) is listed on the ticket with who deleted which; retention's
// deletions (no ticket named, by the system) are listed on each ticket that carried them.
func TestRule_CD6_RecordingDeletionsAreListed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.newUser("Cy", "+12125550192")
	vm := e.voicemailTicket(u, "+12125550192", "rec-a")
	other := e.voicemailTicket(u, "+12125550192", "rec-b")
	if err := e.store.MarkRecordingsDeleted(ctx, vm, []string{"rec-a"}, e.admin.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.store.MarkRecordingsDeleted(ctx, 0, []string{"rec-b", "rec-unknown"}, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	a := e.auditLogs(e.asAdmin(), fmt.Sprintf("filter[source_type]=ticket&filter[source_id]=%d", vm))
	if len(a) != 1 || a[0]["action"] != ticketing.AuditRecordingDeleted || num(a[0]["actor_id"]) != e.admin.ID ||
		a[0]["change_description"] != "Recordings deleted: rec-a" {
		t.Fatalf("admin's deletion: %v", a)
	}
	b := e.auditLogs(e.asAdmin(), fmt.Sprintf("filter[source_type]=ticket&filter[source_id]=%d", other))
	if len(b) != 1 || b[0]["action"] != ticketing.AuditRecordingDeleted || b[0]["actor_id"] != nil || b[0]["change_description"] != "Recordings deleted: rec-b" {
		t.Fatalf("retention's deletion: %v", b)
	}
}

// The agent page's requester switch (PUT /calls/{id}/requester, PM-11) on a call whose ticket
// exists already changes the ticket's requester, and the trail lists it on the ticket as the
// agent's, from the agent's address.
func TestAuditLogs_RequesterSwitchDuringACallIsListed(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) { s.TicketCreationPoint = ticketing.CreateOnQueueEntry })
	owner := h.endUser("Owner", "+15557773010")
	holder := h.endUser("Holder", "+15557773010") // shared (PM-6)
	s := h.newCall(h.now).started("+15557773010", "+15550100").queued(1, "support")
	h.run(s.evs...)
	c := h.call(s.id)
	if c.TicketID == nil || c.RequesterID == nil || *c.RequesterID != owner.ID {
		t.Fatalf("call %+v: want a ticket (on_queue_entry) for the owner", c)
	}
	api := ticketing.NewAPI(h.store, ticketing.APIOptions{})
	mux := http.NewServeMux()
	api.Register(mux, "/api/v2")
	api.RegisterCalls(mux, "/api/v2", nil, nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	do := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, srv.URL+"/api/v2"+path, strings.NewReader(body))
		req.SetBasicAuth("agent1@example.com", "password1")
		req.Header.Set("Content-Type", "application/json")
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	if code, b := do("PUT", "/calls/"+s.id+"/requester", fmt.Sprintf(`{"call":{"requester_id":%d}}`, holder.ID)); code != 200 {
		t.Fatalf("switch: %d %s", code, b)
	}
	code, b := do("GET", fmt.Sprintf("/audit_logs?filter[source_type]=ticket&filter[source_id]=%d", *c.TicketID), "")
	var out struct {
		AuditLogs []ticketing.AuditLog `json:"audit_logs"`
	}
	if err := json.Unmarshal(b, &out); code != 200 || err != nil {
		t.Fatalf("audit logs: %d %s", code, b)
	}
	var found bool
	for _, l := range out.AuditLogs {
		if l.Action == ticketing.AuditRequesterChanged && l.ActorID != nil && *l.ActorID == h.agent1.ID &&
			l.IPAddress != nil && *l.IPAddress == "127.0.0.1" &&
			strings.Contains(l.ChangeDescription, fmt.Sprintf("Owner (user #%d) to Holder (user #%d)", owner.ID, holder.ID)) {
			found = true
		}
	}
	if !found {
		t.Errorf("no requester change by agent1 from Owner to Holder on ticket %d: %s", *c.TicketID, b)
	}
}
