package ticketing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// Ticket statuses (Zendesk's). Unsolved means new, open, pending or hold.
const (
	StatusNew     = "new"
	StatusOpen    = "open"
	StatusPending = "pending"
	StatusHold    = "hold"
	StatusSolved  = "solved"
	StatusClosed  = "closed"
)

// Via channels of a ticket.
const (
	ChannelAPI       = "api"
	ChannelVoice     = "voice"
	ChannelVoicemail = "voicemail"
)

// Via is where a ticket came from: channel voice with source inbound or outbound, voicemail,
// or api. In JSON it is Zendesk's shape, {"channel", "source": {"from", "to", "rel"}}: rel is
// Source ("inbound", "outbound"; null when empty) and, for a call, from and to are the numbers
// of the ticket's first call as Zendesk Talk writes them ({"phone", "formatted_phone"}).
type Via struct {
	Channel string
	Source  string
	// From and To are the caller's and the called number of the ticket's first call, when
	// it has one (read from its first voice comment; never written).
	From, To string
}

// viaParty is one end of a via source: a phone number as Zendesk Talk fills it.
type viaParty struct {
	Phone          string `json:"phone,omitempty"`
	FormattedPhone string `json:"formatted_phone,omitempty"`
}

type viaSource struct {
	From viaParty `json:"from"`
	To   viaParty `json:"to"`
	Rel  *string  `json:"rel"`
}

// MarshalJSON writes Zendesk's via object.
func (v Via) MarshalJSON() ([]byte, error) {
	out := struct {
		Channel string    `json:"channel"`
		Source  viaSource `json:"source"`
	}{Channel: v.Channel, Source: viaSource{From: party(v.From), To: party(v.To), Rel: nonEmpty(v.Source)}}
	return json.Marshal(out)
}

func party(phone string) viaParty { return viaParty{Phone: phone, FormattedPhone: phone} }

// CustomFields are the call fields of CF-1/CF-2; durations are whole seconds. In a patch a nil
// field stays as it is.
type CustomFields struct {
	SessionType  *string `json:"session_type"`
	CallerNumber *string `json:"caller_number"`
	CallDuration *int64  `json:"call_duration"`
	WaitTime     *int64  `json:"wait_time"`
	QueueName    *string `json:"queue_name"`
	CallID       *string `json:"call_id"`
	HoldDuration *int64  `json:"hold_duration"`
	CSAT         *int    `json:"csat"`
}

// Ticket is a ticket in the shape of the API (docs/api.md), Zendesk's with the call fields
// added. OriginPhone is the number that created it (CD-7); DisplayPhone the number shown at its
// top, which only TM-2 changes. Description is its first comment's text (read only, as in
// Zendesk); Priority, Type, ExternalID, CollaboratorIDs, DueAt and IsPublic are stored and
// returned as the client set them. URL is filled in by the API.
type Ticket struct {
	ID              int64        `json:"id"`
	URL             string       `json:"url"`
	ExternalID      *string      `json:"external_id"`
	Subject         string       `json:"subject"`
	Description     string       `json:"description"`
	Status          string       `json:"status"`
	Priority        *string      `json:"priority"`
	Type            *string      `json:"type"`
	RequesterID     int64        `json:"requester_id"`
	SubmitterID     *int64       `json:"submitter_id"`
	AssigneeID      *int64       `json:"assignee_id"`
	GroupID         *int64       `json:"group_id"`
	CollaboratorIDs []int64      `json:"collaborator_ids"`
	DueAt           *Time        `json:"due_at"`
	IsPublic        bool         `json:"is_public"`
	Via             Via          `json:"via"`
	OriginPhone     *string      `json:"origin_phone"`
	DisplayPhone    *string      `json:"display_phone"`
	Tags            []string     `json:"tags"`
	CustomFields    CustomFields `json:"custom_fields"`
	// Fields are the ticket fields filled from calls' custom data by
	// settings.custom_data_fields (CF-4), by field name: text and digits as strings,
	// integers as numbers.
	Fields       map[string]any `json:"fields"`
	MergedIntoID *int64         `json:"merged_into_id"`
	CreatedAt    Time           `json:"created_at"`
	UpdatedAt    Time           `json:"updated_at"`
}

// Unsolved reports whether the ticket is new, open, pending or hold.
func (t Ticket) Unsolved() bool {
	switch t.Status {
	case StatusNew, StatusOpen, StatusPending, StatusHold:
		return true
	}
	return false
}

// ticketSelect reads a ticket (ticketCols, scanned by scanTicket) from tickets.
const ticketSelect = `SELECT ` + ticketCols + ` FROM tickets `

// ticketCols are the columns scanTicket reads, in its order; the description and the numbers
// of via come from its first comment and first voice comment (scalar subqueries, so that FOR
// UPDATE can follow).
const ticketCols = `id, subject, status, requester_id, assignee_id, via_channel, via_source, origin_phone, display_phone,
	tags, session_type, caller_number, call_duration, wait_time, queue_name, call_id, hold_duration, csat,
	merged_into_id, created_at, updated_at, fields, priority, type, submitter_id, external_id, collaborator_ids, due_at, is_public, group_id,
	coalesce((SELECT c.body FROM ticket_comments c WHERE c.ticket_id = tickets.id ORDER BY c.id LIMIT 1), ''),
	(SELECT ARRAY[coalesce(c.from_number, ''), coalesce(c.to_number, '')] FROM ticket_comments c
		WHERE c.ticket_id = tickets.id AND c.type = 'VoiceComment' ORDER BY c.id LIMIT 1)`

// scanTicket reads the columns of ticketCols, then extra.
func scanTicket(r pgx.Row, extra ...any) (Ticket, error) {
	var t Ticket
	var voice []string
	c := &t.CustomFields
	err := r.Scan(append([]any{&t.ID, &t.Subject, &t.Status, &t.RequesterID, &t.AssigneeID, &t.Via.Channel, &t.Via.Source,
		&t.OriginPhone, &t.DisplayPhone, &t.Tags, &c.SessionType, &c.CallerNumber, &c.CallDuration, &c.WaitTime,
		&c.QueueName, &c.CallID, &c.HoldDuration, &c.CSAT, &t.MergedIntoID, &t.CreatedAt, &t.UpdatedAt, &t.Fields,
		&t.Priority, &t.Type, &t.SubmitterID, &t.ExternalID, &t.CollaboratorIDs, &t.DueAt, &t.IsPublic,
		&t.GroupID, &t.Description, &voice}, extra...)...)
	if t.Tags == nil {
		t.Tags = []string{}
	}
	if t.CollaboratorIDs == nil {
		t.CollaboratorIDs = []int64{}
	}
	if t.Fields == nil {
		t.Fields = map[string]any{}
	}
	if len(voice) == 2 {
		t.Via.From, t.Via.To = voice[0], voice[1]
	}
	return t, err
}

func getTicket(ctx context.Context, q querier, id int64, lock bool) (Ticket, error) {
	sql := ticketSelect + `WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	t, err := scanTicket(q.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Ticket{}, notFound("ticket %d not found", id)
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("ticketing: get ticket %d: %w", id, err)
	}
	return t, nil
}

// Ticket returns ticket id as stored (a merged ticket is closed, with MergedIntoID set).
func (s *Store) Ticket(ctx context.Context, id int64) (Ticket, error) {
	return getTicket(ctx, s.pool, id, false)
}

// LiveTicketID follows merges from ticket id (A→B→C) to the ticket that now carries its
// writes (TU-6); an unmerged ticket is its own live ticket.
func (s *Store) LiveTicketID(ctx context.Context, id int64) (int64, error) {
	return liveTicketID(ctx, s.pool, id)
}

func liveTicketID(ctx context.Context, q querier, id int64) (int64, error) {
	var live int64
	err := q.QueryRow(ctx, `WITH RECURSIVE chain(id, merged_into_id, depth) AS (
			SELECT id, merged_into_id, 0 FROM tickets WHERE id = $1
			UNION ALL
			SELECT t.id, t.merged_into_id, c.depth + 1 FROM tickets t JOIN chain c ON t.id = c.merged_into_id WHERE c.depth < 1000
		) SELECT id FROM chain WHERE merged_into_id IS NULL`, id).Scan(&live)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound("ticket %d not found", id)
	}
	if err != nil {
		return 0, fmt.Errorf("ticketing: live ticket %d: %w", id, err)
	}
	return live, nil
}

// NewTicket is what CreateTicket takes. Status defaults to new (open when assigned).
// OriginPhone is the number that created the ticket and its first displayed number (CD-7).
type NewTicket struct {
	Subject      string
	Status       string
	RequesterID  int64
	AssigneeID   *int64
	Via          Via
	OriginPhone  string
	Tags         []string
	CustomFields CustomFields
	// Zendesk's fields, stored and returned (ZendeskFields).
	Zendesk ZendeskFields
	// Comment, when set, is the ticket's first comment.
	Comment *NewComment
}

// ZendeskFields are the ticket fields of Zendesk's API that Switchboard stores and returns
// without acting on them (yet): nil leaves a field as it is (or unset at creation).
// SubmitterID defaults to the acting user at creation.
type ZendeskFields struct {
	Priority        *string
	Type            *string
	SubmitterID     *int64
	ExternalID      *string
	CollaboratorIDs *[]int64
	DueAt           *time.Time
	ClearDueAt      bool
	IsPublic        *bool
	// GroupID sets the ticket's group (it must exist: a 422 on group_id); ClearGroup removes it.
	GroupID    *int64
	ClearGroup bool
}

func (z ZendeskFields) empty() bool {
	return z.Priority == nil && z.Type == nil && z.SubmitterID == nil && z.ExternalID == nil &&
		z.CollaboratorIDs == nil && z.DueAt == nil && !z.ClearDueAt && z.IsPublic == nil && z.GroupID == nil && !z.ClearGroup
}

// check validates the values Zendesk constrains (priority, type).
func (z ZendeskFields) check() error {
	if z.Priority != nil && *z.Priority != "" {
		switch *z.Priority {
		case "urgent", "high", "normal", "low":
		default:
			return invalidField("priority", "%q is not a priority; use urgent, high, normal or low", *z.Priority)
		}
	}
	if z.Type != nil && *z.Type != "" {
		switch *z.Type {
		case "problem", "incident", "question", "task":
		default:
			return invalidField("type", "%q is not a ticket type; use problem, incident, question or task", *z.Type)
		}
	}
	return nil
}

// NewComment is a plain comment; AuthorID zero means the acting user (or none for the system).
type NewComment struct {
	Body     string
	Public   bool
	AuthorID int64
	// Channel is the comment's via channel ("api" when empty).
	Channel string
	// Uploads are upload tokens (POST /uploads) whose files become the comment's attachments.
	Uploads []string
}

func checkStatus(st string) error {
	switch st {
	case StatusNew, StatusOpen, StatusPending, StatusHold, StatusSolved, StatusClosed:
		return nil
	}
	return invalidField("status", "%q is not a status; use new, open, pending, hold, solved or closed", st)
}

// normalizeTags lower-cases, de-duplicates and checks tags (Zendesk tags have no spaces).
func normalizeTags(tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	seen := map[string]bool{}
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			return nil, invalidField("tags", "a tag must not be empty")
		}
		if strings.IndexFunc(t, unicode.IsSpace) >= 0 {
			return nil, invalidField("tags", "tag %q has a space; tags are single words", t)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// checkAssignee verifies that id is a live agent or admin.
func checkAssignee(ctx context.Context, q querier, id int64) error {
	var role string
	var merged *int64
	err := q.QueryRow(ctx, `SELECT role, merged_into_id FROM users WHERE id = $1 AND deleted_at IS NULL`, id).Scan(&role, &merged)
	if errors.Is(err, pgx.ErrNoRows) {
		return invalidField("assignee_id", "user %d not found", id)
	}
	if err != nil {
		return fmt.Errorf("ticketing: check assignee: %w", err)
	}
	if role == RoleEndUser {
		return invalidField("assignee_id", "user %d is an end user; only agents and admins can be assignees", id)
	}
	return nil
}

// liveRequester follows a requester's merge redirect (UM-5); unknown is a 422 on requester_id.
func liveRequester(ctx context.Context, q querier, id int64) (int64, error) {
	u, err := liveUser(ctx, q, id, false)
	if errors.Is(err, ErrNotFound) {
		return 0, invalidField("requester_id", "user %d not found", id)
	}
	if err != nil {
		return 0, err
	}
	return u.ID, nil
}

// CreateTicket creates a ticket and its first comment in one transaction. The requester is
// followed through merges; the assignee must be an agent or admin; solved needs an assignee;
// a ticket cannot be created closed.
func (s *Store) CreateTicket(ctx context.Context, actor Actor, in NewTicket) (Ticket, error) {
	if in.Status == "" {
		in.Status = StatusNew
	}
	if err := checkStatus(in.Status); err != nil {
		return Ticket{}, err
	}
	if in.Status == StatusClosed {
		return Ticket{}, invalidField("status", "a ticket cannot be created closed")
	}
	if in.RequesterID == 0 {
		return Ticket{}, invalidField("requester_id", "is required")
	}
	if in.Via.Channel == "" {
		in.Via.Channel = ChannelAPI
	}
	tags, err := normalizeTags(in.Tags)
	if err != nil {
		return Ticket{}, err
	}
	if err := in.Zendesk.check(); err != nil {
		return Ticket{}, err
	}
	var origin *string
	if in.OriginPhone != "" {
		origin = &in.OriginPhone
	}
	var out Ticket
	err = s.inTx(ctx, actor, "create_ticket", func(tx pgx.Tx) error {
		req, err := liveRequester(ctx, tx, in.RequesterID)
		if err != nil {
			return err
		}
		if in.AssigneeID != nil {
			if err := checkAssignee(ctx, tx, *in.AssigneeID); err != nil {
				return err
			}
		}
		c := in.CustomFields
		z := in.Zendesk
		if z.SubmitterID == nil {
			z.SubmitterID = actorArg(actor)
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
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO tickets (subject, status, requester_id, assignee_id, via_channel, via_source,
			origin_phone, display_phone, tags, session_type, caller_number, call_duration, wait_time, queue_name, call_id,
			hold_duration, csat, priority, type, submitter_id, external_id, collaborator_ids, due_at, is_public, group_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
			nullif($17, ''), nullif($18, ''), $19, nullif($20, ''), coalesce($21, '{}'::bigint[]), $22, coalesce($23, true), $24) RETURNING id`,
			strings.TrimSpace(in.Subject), in.Status, req, in.AssigneeID, in.Via.Channel, in.Via.Source, origin, tags,
			c.SessionType, c.CallerNumber, c.CallDuration, c.WaitTime, c.QueueName, c.CallID, c.HoldDuration, c.CSAT,
			z.Priority, z.Type, z.SubmitterID, z.ExternalID, collaborators, z.DueAt, z.IsPublic, z.GroupID).Scan(&id)
		if err != nil {
			return dbError("create ticket", err)
		}
		if in.Comment != nil {
			if _, err := insertComment(ctx, tx, actor, id, *in.Comment); err != nil {
				return err
			}
		}
		out, err = getTicket(ctx, tx, id, false)
		return err
	})
	return out, err
}

// TicketPatch is what UpdateTicket changes; nil fields stay. ClearAssignee unassigns.
type TicketPatch struct {
	Subject       *string
	Status        *string
	RequesterID   *int64
	AssigneeID    *int64
	ClearAssignee bool
	Tags          *[]string
	CustomFields  CustomFields
	Comment       *NewComment
	Zendesk       ZendeskFields
}

func (p TicketPatch) onlyTags() bool {
	c := p.CustomFields
	return p.Subject == nil && p.Status == nil && p.RequesterID == nil && p.AssigneeID == nil && !p.ClearAssignee &&
		p.Comment == nil && c == (CustomFields{}) && p.Zendesk.empty()
}

// UpdateTicket changes ticket id in one transaction under the system rules: a closed ticket
// takes only tag changes (409 otherwise); a ticket never returns to new (422); a new ticket
// that gets an assignee becomes open; solved and closed need an assignee (422). A requester
// change is audited, and so is a voicemail ticket set solved or closed (TU-9).
func (s *Store) UpdateTicket(ctx context.Context, actor Actor, id int64, p TicketPatch) (Ticket, error) {
	if p.Status != nil {
		if err := checkStatus(*p.Status); err != nil {
			return Ticket{}, err
		}
	}
	var tags []string
	if p.Tags != nil {
		var err error
		if tags, err = normalizeTags(*p.Tags); err != nil {
			return Ticket{}, err
		}
	}
	if err := p.Zendesk.check(); err != nil {
		return Ticket{}, err
	}
	var out Ticket
	err := s.inTx(ctx, actor, "update_ticket", func(tx pgx.Tx) error {
		t, err := getTicket(ctx, tx, id, true)
		if err != nil {
			return err
		}
		p.Zendesk = p.Zendesk.changedFrom(t)
		p.CustomFields = p.CustomFields.changedFrom(t.CustomFields)
		// A field sent back unchanged is no change (a client may PUT the ticket it read).
		if p.Status != nil && *p.Status == t.Status {
			p.Status = nil
		}
		if p.Subject != nil && strings.TrimSpace(*p.Subject) == t.Subject {
			p.Subject = nil
		}
		if p.RequesterID != nil && *p.RequesterID == t.RequesterID {
			p.RequesterID = nil
		}
		if p.AssigneeID != nil && t.AssigneeID != nil && *p.AssigneeID == *t.AssigneeID {
			p.AssigneeID = nil
		}
		if p.ClearAssignee && t.AssigneeID == nil {
			p.ClearAssignee = false
		}
		if t.Status == StatusClosed && !p.onlyTags() {
			if t.MergedIntoID != nil {
				return conflictField("status", "ticket %d is closed (merged into ticket %d); only its tags can change", id, *t.MergedIntoID)
			}
			return conflictField("status", "ticket %d is closed; only its tags can change", id)
		}
		if p.Status != nil && *p.Status == StatusNew && t.Status != StatusNew {
			return invalidField("status", "a %s ticket cannot return to new", t.Status)
		}
		assignee := t.AssigneeID
		if p.AssigneeID != nil {
			if err := checkAssignee(ctx, tx, *p.AssigneeID); err != nil {
				return err
			}
			assignee = p.AssigneeID
		}
		if p.ClearAssignee {
			assignee = nil
		}
		status := t.Status
		if p.Status != nil {
			status = *p.Status
		}
		if (status == StatusSolved || status == StatusClosed) && assignee == nil && (p.Status != nil || p.ClearAssignee) {
			return invalidField("assignee_id", "a %s ticket needs an assignee", status)
		}
		requester := t.RequesterID
		if p.RequesterID != nil {
			if requester, err = liveRequester(ctx, tx, *p.RequesterID); err != nil {
				return err
			}
		}
		subject := t.Subject
		if p.Subject != nil {
			subject = strings.TrimSpace(*p.Subject)
		}
		if p.Tags != nil {
			t.Tags = tags
		}
		// A comment goes in before a closing status change: the trigger refuses comments on
		// closed tickets.
		if p.Comment != nil {
			if _, err := insertComment(ctx, tx, actor, id, *p.Comment); err != nil {
				return err
			}
		}
		c := p.CustomFields
		_, err = tx.Exec(ctx, `UPDATE tickets SET subject = $2, status = $3, requester_id = $4, assignee_id = $5, tags = $6,
			session_type = coalesce($7, session_type), caller_number = coalesce($8, caller_number),
			call_duration = coalesce($9, call_duration), wait_time = coalesce($10, wait_time),
			queue_name = coalesce($11, queue_name), call_id = coalesce($12, call_id),
			hold_duration = coalesce($13, hold_duration), csat = coalesce($14, csat)
			WHERE id = $1`, id, subject, status, requester, assignee, t.Tags,
			c.SessionType, c.CallerNumber, c.CallDuration, c.WaitTime, c.QueueName, c.CallID, c.HoldDuration, c.CSAT)
		if err != nil {
			return dbError("update ticket", err)
		}
		if err := updateZendeskFields(ctx, tx, id, p.Zendesk); err != nil {
			return err
		}
		// TU-9: closing a voicemail (its ticket set solved or closed) is audited.
		if t.Via.Channel == ChannelVoicemail && p.Status != nil && (status == StatusSolved || status == StatusClosed) {
			if err := auditVoicemailClosed(ctx, tx, actor, t, status); err != nil {
				return err
			}
		}
		out, err = getTicket(ctx, tx, id, false)
		return err
	})
	return out, err
}

// TicketFilter selects tickets for ListTickets: by requester (0 for all; followed through
// merges), by status (empty for all), a page of at most Limit (1–100, default 100) tickets
// with IDs above AfterID, in ID order.
type TicketFilter struct {
	RequesterID int64
	Status      string
	AfterID     int64
	// BeforeID, when set, asks for the page just before it (Zendesk's page[before]): the
	// tickets are still returned in id order, and "more" then means more before them.
	BeforeID int64
	Limit    int
}

// ListTickets returns a page of tickets and whether more follow (in the direction asked).
func (s *Store) ListTickets(ctx context.Context, f TicketFilter) ([]Ticket, bool, error) {
	if f.Limit <= 0 || f.Limit > 100 {
		f.Limit = 100
	}
	if f.Status != "" {
		if err := checkStatus(f.Status); err != nil {
			return nil, false, err
		}
	}
	if f.RequesterID != 0 {
		u, err := s.LiveUser(ctx, f.RequesterID)
		if err != nil {
			return nil, false, err
		}
		f.RequesterID = u.ID
	}
	q := ticketSelect + `WHERE ($1 = 0 OR requester_id = $1) AND ($2 = '' OR status = $2) AND id > $3
		ORDER BY id LIMIT $4`
	bound := f.AfterID
	if f.BeforeID > 0 {
		q, bound = ticketSelect+`WHERE ($1 = 0 OR requester_id = $1) AND ($2 = '' OR status = $2) AND id < $3
		ORDER BY id DESC LIMIT $4`, f.BeforeID
	}
	rows, err := s.pool.Query(ctx, q, f.RequesterID, f.Status, bound, f.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: list tickets: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ticket, error) { return scanTicket(r) })
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: list tickets: %w", err)
	}
	more := len(ts) > f.Limit
	if more {
		ts = ts[:f.Limit]
	}
	if f.BeforeID > 0 {
		slices.Reverse(ts)
	}
	return ts, more, nil
}

// UnsolvedTickets returns the unsolved tickets of a requester (followed through merges),
// most recently updated first: what TU-1 and OB-1/OB-2 choose from.
func (s *Store) UnsolvedTickets(ctx context.Context, requesterID int64) ([]Ticket, error) {
	u, err := s.LiveUser(ctx, requesterID)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, ticketSelect+`WHERE requester_id = $1 AND status IN ('new', 'open', 'pending', 'hold')
		ORDER BY updated_at DESC, id DESC`, u.ID)
	if err != nil {
		return nil, fmt.Errorf("ticketing: unsolved tickets: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ticket, error) { return scanTicket(r) })
	if err != nil {
		return nil, fmt.Errorf("ticketing: unsolved tickets: %w", err)
	}
	return ts, nil
}

// TicketsByIDs returns the tickets among ids, in id order (unknown ids are left out).
func (s *Store) TicketsByIDs(ctx context.Context, ids []int64) ([]Ticket, error) {
	rows, err := s.pool.Query(ctx, ticketSelect+`WHERE id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return nil, fmt.Errorf("ticketing: tickets by ids: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ticket, error) { return scanTicket(r) })
	if err != nil {
		return nil, fmt.Errorf("ticketing: tickets by ids: %w", err)
	}
	return ts, nil
}
