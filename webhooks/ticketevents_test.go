package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/webhooks"
)

// Ticket writes become Zendesk's ticket events: a webhook subscribed to zen:event-type:ticket.*
// receives ticket.created and comment_added for a new ticket, then status_changed (NEW → OPEN),
// tags_changed (tags_added) and comment_added for an update, signed, in the order written, with
// Zendesk's envelope (subject zen:ticket:ID, detail the ticket with string ids and capital
// enums). A ticket written while no webhook was active writes no event rows at all (a system
// without webhooks pays nothing) and is never sent. Before issue 20's second wave ticket
// writes sent nothing.
func TestWebhookTicketEvents_CreatedStatusCommentInOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req, err := e.store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Caller", Role: ticketing.RoleEndUser})
	if err != nil {
		t.Fatal(err)
	}
	before, err := e.store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "before", RequesterID: req.ID,
		Comment: &ticketing.NewComment{Body: "unsent", Public: true}})
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM ticket_events`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("ticket_events with no webhook: %d rows (%v), want none", rows, err)
	}

	rcv := newReceiver(t, nil)
	_, secret := e.createHook(rcv.url, "zen:event-type:ticket.*")
	e.run(fast(e))
	tk, err := e.store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "Printer on fire", RequesterID: req.ID,
		Tags: []string{"a"}, Comment: &ticketing.NewComment{Body: "first words", Public: true}})
	if err != nil {
		t.Fatal(err)
	}
	open, tags := "open", []string{"a", "b"}
	if _, err := e.store.UpdateTicket(ctx, ticketing.SystemActor, tk.ID, ticketing.TicketPatch{Status: &open, Tags: &tags,
		Comment: &ticketing.NewComment{Body: "second words", Public: false}}); err != nil {
		t.Fatal(err)
	}
	got := rcv.wait(t, 5)
	type ev struct {
		Type    string          `json:"type"`
		Subject string          `json:"subject"`
		Detail  map[string]any  `json:"detail"`
		Event   json.RawMessage `json:"event"`
	}
	var evs []ev
	for _, d := range got {
		ts := d.header.Get(webhooks.HeaderTimestamp)
		if !webhooks.Verify(secret, ts, d.body, d.header.Get(webhooks.HeaderSignature)) {
			t.Errorf("delivery %s: bad signature", d.typ)
		}
		var x ev
		if err := json.Unmarshal(d.body, &x); err != nil {
			t.Fatal(err)
		}
		if x.Subject == fmt.Sprintf("zen:ticket:%d", before.ID) {
			t.Errorf("a ticket written before the webhook existed was sent: %s", d.body)
		}
		evs = append(evs, x)
	}
	subject := fmt.Sprintf("zen:ticket:%d", tk.ID)
	if evs[0].Type != "zen:event-type:ticket.created" || evs[1].Type != "zen:event-type:ticket.comment_added" {
		t.Fatalf("first events %s, %s; want ticket.created then ticket.comment_added", evs[0].Type, evs[1].Type)
	}
	if evs[0].Subject != subject || evs[0].Detail["id"] != fmt.Sprint(tk.ID) || evs[0].Detail["status"] != "NEW" ||
		evs[0].Detail["subject"] != "Printer on fire" || evs[0].Detail["requester_id"] != fmt.Sprint(req.ID) {
		t.Errorf("ticket.created: subject %s detail %v", evs[0].Subject, evs[0].Detail)
	}
	if !strings.Contains(string(evs[1].Event), `"body": "first words"`) && !strings.Contains(string(evs[1].Event), `"body":"first words"`) {
		t.Errorf("comment_added event: %s", evs[1].Event)
	}
	var update []string
	byType := map[string]ev{}
	for _, x := range evs[2:5] {
		update = append(update, strings.TrimPrefix(x.Type, "zen:event-type:ticket."))
		byType[x.Type] = x
	}
	sort.Strings(update)
	if fmt.Sprint(update) != "[comment_added status_changed tags_changed]" {
		t.Fatalf("the update's events: %v", update)
	}
	var status, tagsEv map[string]any
	_ = json.Unmarshal(byType["zen:event-type:ticket.status_changed"].Event, &status)
	_ = json.Unmarshal(byType["zen:event-type:ticket.tags_changed"].Event, &tagsEv)
	if status["previous"] != "NEW" || status["current"] != "OPEN" || byType["zen:event-type:ticket.status_changed"].Detail["status"] != "OPEN" {
		t.Errorf("status_changed: event %v detail %v", status, byType["zen:event-type:ticket.status_changed"].Detail)
	}
	if fmt.Sprint(tagsEv["tags_added"]) != "[b]" || fmt.Sprint(tagsEv["tags_removed"]) != "[]" {
		t.Errorf("tags_changed: %v", tagsEv)
	}
	if len(rcv.all()) != 5 {
		t.Errorf("%d deliveries, want 5", len(rcv.all()))
	}
}

// Making a comment private (PUT /tickets/{id}/comments/{comment_id}/make_private) is Zendesk's
// ticket.comment_made_private event: a webhook subscribed to that type alone receives it —
// the comment (is_public false, its body) and the ticket — and not the ticket's creation or
// its comment; making it private again changes nothing and writes no second event. A comment
// made public again by hand in the database is ticket.comment_made_public. Before migration
// 033 no privacy change wrote any event.
func TestWebhookTicketEvents_CommentMadePrivate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req, err := e.store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Caller", Role: ticketing.RoleEndUser})
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t, nil)
	e.createHook(rcv.url, "zen:event-type:ticket.comment_made_private", "zen:event-type:ticket.comment_made_public")
	e.run(fast(e))
	tk, err := e.store.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "Card number", RequesterID: req.ID,
		Comment: &ticketing.NewComment{Body: "my card is 4111", Public: true}})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := e.store.Comments(ctx, tk.ID)
	if err != nil || len(cs) != 1 {
		t.Fatalf("comments %v, %v", cs, err)
	}
	for range 2 {
		if err := e.store.MakeCommentPrivate(ctx, ticketing.SystemActor, tk.ID, cs[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.pool.Exec(ctx, `UPDATE ticket_comments SET public = true WHERE id = $1`, cs[0].ID); err != nil {
		t.Fatal(err)
	}
	got := rcv.wait(t, 2)
	type ev struct {
		Type    string         `json:"type"`
		Subject string         `json:"subject"`
		Detail  map[string]any `json:"detail"`
		Event   struct {
			Comment map[string]any `json:"comment"`
		} `json:"event"`
	}
	var evs []ev
	for _, d := range got {
		var x ev
		if err := json.Unmarshal(d.body, &x); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, x)
	}
	if evs[0].Type != "zen:event-type:ticket.comment_made_private" || evs[1].Type != "zen:event-type:ticket.comment_made_public" {
		t.Fatalf("events %s, %s; want comment_made_private then comment_made_public", evs[0].Type, evs[1].Type)
	}
	c := evs[0].Event.Comment
	if evs[0].Subject != fmt.Sprintf("zen:ticket:%d", tk.ID) || c["id"] != fmt.Sprint(cs[0].ID) || c["is_public"] != false ||
		c["body"] != "my card is 4111" || evs[0].Detail["id"] != fmt.Sprint(tk.ID) {
		t.Errorf("comment_made_private: subject %s comment %v detail id %v", evs[0].Subject, c, evs[0].Detail["id"])
	}
	if evs[1].Event.Comment["is_public"] != true {
		t.Errorf("comment_made_public: comment %v", evs[1].Event.Comment)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM ticket_events WHERE kind LIKE 'comment_made_%'`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d privacy events written (%v), want 2: the second make_private changed nothing", n, err)
	}
	if len(rcv.all()) != 2 {
		t.Errorf("%d deliveries, want 2 (the creation and its comment are not subscribed)", len(rcv.all()))
	}
}
