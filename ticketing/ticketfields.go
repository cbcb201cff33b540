package ticketing

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// TicketField is one of the call fields (CF-1, CF-2) as Zendesk's ticket field object, listed
// by GET /ticket_fields: custom_fields carries [{"id", "value"}] and an integration finds a
// field's id here by its key (Zendesk integrations look fields up by title or key the same
// way). The ids are fixed: they never change between installations or versions.
type TicketField struct {
	ID          int64  `json:"id"`
	URL         string `json:"url"`
	Key         string `json:"key"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Active      bool   `json:"active"`
	Required    bool   `json:"required"`
	Removable   bool   `json:"removable"`
	Position    int    `json:"position"`
	CreatedAt   Time   `json:"created_at"`
	UpdatedAt   Time   `json:"updated_at"`
}

// ticketFieldDefs are the call fields in custom_fields order; ids are their positions
// (1 … 8) and must never be reused for another field.
var ticketFieldDefs = [...]struct {
	id               int64
	key, kind, title string
	description      string
}{
	{1, "session_type", "text", "Session type", "How the agent took the call: webrtc (the softphone) or sip (a desk phone)"},
	{2, "caller_number", "text", "Caller number", "The caller's number in E.164"},
	{3, "call_duration", "integer", "Call duration", "Seconds from the call's start to its end"},
	{4, "wait_time", "integer", "Wait time", "Seconds the caller waited in queue"},
	{5, "queue_name", "text", "Queue", "The queue that took the call"},
	{6, "call_id", "text", "Call ID", "The call's id (GET /calls/{id})"},
	{7, "hold_duration", "integer", "Hold duration", "Seconds the caller spent on hold"},
	{8, "csat", "integer", "CSAT", "The caller's satisfaction score (0-100)"},
}

// TicketFields returns the call fields as Zendesk ticket fields (without url).
func TicketFields() []TicketField {
	out := make([]TicketField, len(ticketFieldDefs))
	for i, d := range ticketFieldDefs {
		out[i] = TicketField{ID: d.id, Key: d.key, Type: d.kind, Title: d.title, Description: d.description,
			Active: true, Position: i + 1}
	}
	return out
}

// TicketFieldID returns the id of the call field named key ("call_id"), or 0.
func TicketFieldID(key string) int64 {
	for _, d := range ticketFieldDefs {
		if d.key == key {
			return d.id
		}
	}
	return 0
}

func ticketFieldKey(id int64) string {
	for _, d := range ticketFieldDefs {
		if d.id == id {
			return d.key
		}
	}
	return ""
}

// FieldValue is one entry of Zendesk's custom_fields list.
type FieldValue struct {
	ID    int64 `json:"id"`
	Value any   `json:"value"`
}

// MarshalJSON writes the call fields as Zendesk's custom_fields, [{"id", "value"}] in the
// order of GET /ticket_fields, unset ones with a null value (as Zendesk lists every field).
func (c CustomFields) MarshalJSON() ([]byte, error) {
	vals := map[string]any{
		"session_type": c.SessionType, "caller_number": c.CallerNumber, "call_duration": c.CallDuration,
		"wait_time": c.WaitTime, "queue_name": c.QueueName, "call_id": c.CallID, "hold_duration": c.HoldDuration,
		"csat": c.CSAT,
	}
	out := make([]FieldValue, 0, len(ticketFieldDefs))
	for _, d := range ticketFieldDefs {
		out = append(out, FieldValue{ID: d.id, Value: vals[d.key]})
	}
	return json.Marshal(out)
}

// Get returns the value of the call field named key ("call_id") as the JSON would carry it:
// a string, an int64, or nil when unset or unknown.
func (c CustomFields) Get(key string) any {
	switch key {
	case "session_type":
		return derefAny(c.SessionType)
	case "caller_number":
		return derefAny(c.CallerNumber)
	case "call_duration":
		return derefAny(c.CallDuration)
	case "wait_time":
		return derefAny(c.WaitTime)
	case "queue_name":
		return derefAny(c.QueueName)
	case "call_id":
		return derefAny(c.CallID)
	case "hold_duration":
		return derefAny(c.HoldDuration)
	case "csat":
		if c.CSAT == nil {
			return nil
		}
		return int64(*c.CSAT)
	}
	return nil
}

func derefAny[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// changedFrom drops the fields of z that t already holds (a client may PUT back the ticket it
// read, and a closed ticket takes that as no change).
func (z ZendeskFields) changedFrom(t Ticket) ZendeskFields {
	eq := func(a, b *string) bool { return deref(a) == deref(b) }
	if z.Priority != nil && eq(z.Priority, t.Priority) {
		z.Priority = nil
	}
	if z.Type != nil && eq(z.Type, t.Type) {
		z.Type = nil
	}
	if z.ExternalID != nil && eq(z.ExternalID, t.ExternalID) {
		z.ExternalID = nil
	}
	if z.SubmitterID != nil && t.SubmitterID != nil && *z.SubmitterID == *t.SubmitterID {
		z.SubmitterID = nil
	}
	if z.CollaboratorIDs != nil && slices.Equal(*z.CollaboratorIDs, t.CollaboratorIDs) {
		z.CollaboratorIDs = nil
	}
	if z.DueAt != nil && t.DueAt != nil && z.DueAt.Equal(t.DueAt.Time) {
		z.DueAt = nil
	}
	if z.ClearDueAt && t.DueAt == nil {
		z.ClearDueAt = false
	}
	if z.IsPublic != nil && *z.IsPublic == t.IsPublic {
		z.IsPublic = nil
	}
	if z.GroupID != nil && t.GroupID != nil && *z.GroupID == *t.GroupID {
		z.GroupID = nil
	}
	if z.ClearGroup && t.GroupID == nil {
		z.ClearGroup = false
	}
	return z
}

// updateZendeskFields writes the Zendesk fields z changes on ticket id.
func updateZendeskFields(ctx context.Context, tx pgx.Tx, id int64, z ZendeskFields) error {
	if z.empty() {
		return nil
	}
	if err := checkUserIDs(ctx, tx, "submitter_id", z.SubmitterID); err != nil {
		return err
	}
	var collaborators []int64
	if z.CollaboratorIDs != nil {
		collaborators = *z.CollaboratorIDs
		if err := checkUserIDs(ctx, tx, "collaborator_ids", collaborators...); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `UPDATE tickets SET
		priority = CASE WHEN $2::text IS NULL THEN priority ELSE nullif($2, '') END,
		type = CASE WHEN $3::text IS NULL THEN type ELSE nullif($3, '') END,
		submitter_id = coalesce($4, submitter_id),
		external_id = CASE WHEN $5::text IS NULL THEN external_id ELSE nullif($5, '') END,
		collaborator_ids = coalesce($6, collaborator_ids),
		due_at = CASE WHEN $8 THEN NULL ELSE coalesce($7, due_at) END,
		is_public = coalesce($9, is_public),
		group_id = CASE WHEN $11 THEN NULL ELSE coalesce($10, group_id) END,
		updated_at = clock_timestamp()
		WHERE id = $1`, id, z.Priority, z.Type, z.SubmitterID, z.ExternalID, collaborators, z.DueAt, z.ClearDueAt, z.IsPublic,
		z.GroupID, z.ClearGroup)
	return dbError("update ticket", err)
}

// checkUserIDs verifies that every id is a user (live or merged; not deleted): a 422 on field.
func checkUserIDs[T int64 | *int64](ctx context.Context, q querier, field string, ids ...T) error {
	var want []int64
	for _, v := range ids {
		switch x := any(v).(type) {
		case int64:
			want = append(want, x)
		case *int64:
			if x != nil {
				want = append(want, *x)
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	var missing []int64
	err := q.QueryRow(ctx, `SELECT coalesce(array_agg(w ORDER BY w), '{}') FROM unnest($1::bigint[]) w
		WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = w AND u.deleted_at IS NULL)`, want).Scan(&missing)
	if err != nil {
		return fmt.Errorf("ticketing: check %s: %w", field, err)
	}
	if len(missing) > 0 {
		return invalidField(field, "user %d not found", missing[0])
	}
	return nil
}

// changedFrom drops the fields of c that cur already holds, so that a ticket read and sent
// back whole (custom_fields included) is no change — and a closed ticket accepts it.
func (c CustomFields) changedFrom(cur CustomFields) CustomFields {
	same := func(a, b any) bool { return a != nil && b != nil && a == b }
	if same(c.Get("session_type"), cur.Get("session_type")) {
		c.SessionType = nil
	}
	if same(c.Get("caller_number"), cur.Get("caller_number")) {
		c.CallerNumber = nil
	}
	if same(c.Get("call_duration"), cur.Get("call_duration")) {
		c.CallDuration = nil
	}
	if same(c.Get("wait_time"), cur.Get("wait_time")) {
		c.WaitTime = nil
	}
	if same(c.Get("queue_name"), cur.Get("queue_name")) {
		c.QueueName = nil
	}
	if same(c.Get("call_id"), cur.Get("call_id")) {
		c.CallID = nil
	}
	if same(c.Get("hold_duration"), cur.Get("hold_duration")) {
		c.HoldDuration = nil
	}
	if same(c.Get("csat"), cur.Get("csat")) {
		c.CSAT = nil
	}
	return c
}
