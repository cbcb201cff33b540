package ticketing

import (
	"context"
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Comment types.
const (
	TypeComment      = "Comment"
	TypeVoiceComment = "VoiceComment"
)

// Comment is a ticket comment in the shape of the API (docs/api.md). Voice is set for a
// VoiceComment only, and its fields then appear in the JSON beside the others. TicketID is
// the ticket the comment was written on: a comment of a merged source shows its source (TM-1).
//
// Zendesk's fields: PlainBody is the body, HTMLBody the body as escaped HTML (a client's
// html_body is read as text: no client's markup reaches another client), Attachments the files
// uploaded with it (POST /uploads, comment.uploads; a call's audio is its recording, not an
// attachment), Via is how the comment came (voice for a call) and Data,
// for a voice comment, the call's details as Zendesk Talk writes them.
type Comment struct {
	ID          int64        `json:"id"`
	TicketID    int64        `json:"ticket_id"`
	Type        string       `json:"type"`
	Body        string       `json:"body"`
	PlainBody   string       `json:"plain_body"`
	HTMLBody    string       `json:"html_body"`
	Public      bool         `json:"public"`
	AuthorID    *int64       `json:"author_id"`
	Attachments []Attachment `json:"attachments"`
	Via         Via          `json:"via"`
	Data        *VoiceData   `json:"data,omitempty"`
	CreatedAt   Time         `json:"created_at"`
	*Voice
}

// VoiceData is a voice comment's data object, as Zendesk Talk fills it.
type VoiceData struct {
	CallID       string  `json:"call_id"`
	From         string  `json:"from"`
	To           string  `json:"to"`
	RecordingURL *string `json:"recording_url"`
	CallDuration *int64  `json:"call_duration"`
	AnsweredByID *int64  `json:"answered_by_id"`
	Location     *string `json:"location"`
	StartedAt    *Time   `json:"started_at"`
}

// Voice is what a VoiceComment records about one call (CD-1 … CD-6).
type Voice struct {
	CallID       string     `json:"call_id"`
	From         string     `json:"from"`
	To           string     `json:"to"`
	StartedAt    *Time      `json:"started_at"`
	Duration     *int64     `json:"duration"`
	AnsweredByID *int64     `json:"answered_by_id"`
	Location     *string    `json:"location"`
	Recording    *Recording `json:"recording"`
}

// Recording is a call recording on a voice comment; DeletedAt is set once its audio is gone.
type Recording struct {
	ID        string  `json:"id"`
	URL       *string `json:"url"`
	DeletedAt *Time   `json:"deleted_at"`
}

const commentSelect = `SELECT id, ticket_id, type, body, public, author_id, created_at, call_id, from_number, to_number,
	started_at, duration, answered_by_id, location, recording_id, recording_url, recording_deleted_at, via_channel
	FROM ticket_comments `

func scanComment(r pgx.Row) (Comment, error) {
	var c Comment
	var v Voice
	var callID, from, to, recID *string
	var recURL *string
	var recDeleted *Time
	var via *string
	err := r.Scan(&c.ID, &c.TicketID, &c.Type, &c.Body, &c.Public, &c.AuthorID, &c.CreatedAt, &callID, &from, &to,
		&v.StartedAt, &v.Duration, &v.AnsweredByID, &v.Location, &recID, &recURL, &recDeleted, &via)
	if err != nil {
		return c, err
	}
	c.PlainBody = c.Body
	c.HTMLBody = plainToHTML(c.Body)
	c.Attachments = []Attachment{}
	c.Via = Via{Channel: deref(via)}
	if c.Via.Channel == "" {
		c.Via.Channel = ChannelAPI
	}
	if c.Type == TypeVoiceComment {
		v.CallID, v.From, v.To = deref(callID), deref(from), deref(to)
		c.Via = Via{Channel: ChannelVoice, From: v.From, To: v.To}
		d := &VoiceData{CallID: v.CallID, From: v.From, To: v.To, CallDuration: v.Duration,
			AnsweredByID: v.AnsweredByID, Location: v.Location, StartedAt: v.StartedAt}
		if recID != nil {
			v.Recording = &Recording{ID: *recID, URL: recURL, DeletedAt: recDeleted}
			if recDeleted == nil {
				d.RecordingURL = recURL
			}
		}
		c.Voice, c.Data = &v, d
	}
	return c, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// plainToHTML is a plain-text body as Zendesk's html_body: escaped, lines kept.
func plainToHTML(body string) string {
	return `<div class="zd-comment"><p>` + strings.ReplaceAll(html.EscapeString(body), "\n", "<br>") + `</p></div>`
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func insertComment(ctx context.Context, tx pgx.Tx, actor Actor, ticketID int64, c NewComment) (Comment, error) {
	body := strings.TrimSpace(c.Body)
	if body == "" {
		return Comment{}, invalidField("comment.body", "is required")
	}
	author := actorArg(actor)
	if c.AuthorID != 0 {
		if err := checkUserIDs(ctx, tx, "comment.author_id", c.AuthorID); err != nil {
			return Comment{}, err
		}
		author = &c.AuthorID
	}
	out, err := scanComment(tx.QueryRow(ctx, `INSERT INTO ticket_comments (ticket_id, type, body, public, author_id, via_channel)
		VALUES ($1, 'Comment', $2, $3, $4, $5) RETURNING `+commentSelect[len("SELECT "):strings.Index(commentSelect, "\n\tFROM")],
		ticketID, body, c.Public, author, nonEmpty(c.Channel)))
	if err != nil {
		return Comment{}, dbError("add comment", err)
	}
	if out.Attachments, err = attachUploads(ctx, tx, out.ID, c.Uploads); err != nil {
		return Comment{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE tickets SET updated_at = clock_timestamp() WHERE id = $1 AND status <> 'closed'`, ticketID); err != nil {
		return Comment{}, dbError("add comment", err)
	}
	return out, nil
}

// AddComment adds a plain comment to ticket id (not followed through merges: a merged ticket
// is closed and takes no comment, 409).
func (s *Store) AddComment(ctx context.Context, actor Actor, ticketID int64, c NewComment) (Comment, error) {
	var out Comment
	err := s.inTx(ctx, actor, "add_comment", func(tx pgx.Tx) error {
		t, err := getTicket(ctx, tx, ticketID, true)
		if err != nil {
			return err
		}
		if t.Status == StatusClosed {
			return conflictField("status", "ticket %d is closed; no comment can be added", ticketID)
		}
		out, err = insertComment(ctx, tx, actor, ticketID, c)
		return err
	})
	return out, err
}

// MakeCommentPrivate turns comment commentID of ticket ticketID (or of a ticket merged into it:
// the comments the ticket lists) into an internal note (Zendesk's make_private); a comment already private stays so (no change, no event). Any comment can be
// made private, a voice comment too, on a ticket in any status: hiding what the requester should
// not see is no update of the ticket, and a closed ticket's comments may need it most. With a
// webhook active, the change writes a comment_made_private ticket event (migration 033's
// trigger). ErrNotFound names the ticket, or the comment when the ticket has no such one.
func (s *Store) MakeCommentPrivate(ctx context.Context, actor Actor, ticketID, commentID int64) error {
	return s.inTx(ctx, actor, "make_comment_private", func(tx pgx.Tx) error {
		// The comments GET /tickets/{id}/comments lists: the ticket's and those of the tickets
		// merged into it (Comments).
		tag, err := tx.Exec(ctx, `WITH RECURSIVE fam(id) AS (
				SELECT $2::bigint UNION SELECT t.id FROM tickets t JOIN fam ON t.merged_into_id = fam.id
			) UPDATE ticket_comments SET public = false WHERE id = $1 AND ticket_id IN (SELECT id FROM fam)`, commentID, ticketID)
		if err != nil {
			return dbError("make comment private", err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tickets WHERE id = $1)`, ticketID).Scan(&exists); err != nil {
			return dbError("make comment private", err)
		}
		if !exists {
			return notFound("ticket %d not found", ticketID)
		}
		return notFound("ticket %d has no comment %d", ticketID, commentID)
	})
}

// VoiceComment is what AppendVoiceComment writes about one call.
type VoiceComment struct {
	Body         string
	Public       bool
	AuthorID     int64
	CallID       string
	From         string
	To           string
	StartedAt    time.Time
	Duration     *int64
	AnsweredByID *int64
	Location     string
	RecordingID  string
	RecordingURL string
}

// AppendVoiceComment adds a voice comment to ticket id, or to the ticket it was merged into,
// following the chain A→B→C (TU-6), and returns the comment, whose TicketID says where it
// landed. A closed live ticket refuses it (409).
func (s *Store) AppendVoiceComment(ctx context.Context, ticketID int64, v VoiceComment) (Comment, error) {
	var out Comment
	err := s.inTx(ctx, SystemActor, "voice_comment", func(tx pgx.Tx) error {
		live, err := liveTicketID(ctx, tx, ticketID)
		if err != nil {
			return err
		}
		t, err := getTicket(ctx, tx, live, true)
		if err != nil {
			return err
		}
		if t.Status == StatusClosed {
			return conflictField("status", "ticket %d is closed; no call can be added", live)
		}
		var started *time.Time
		if !v.StartedAt.IsZero() {
			started = &v.StartedAt
		}
		var author *int64
		if v.AuthorID != 0 {
			author = &v.AuthorID
		}
		out, err = scanComment(tx.QueryRow(ctx, `INSERT INTO ticket_comments (ticket_id, type, body, public, author_id,
			call_id, from_number, to_number, started_at, duration, answered_by_id, location, recording_id, recording_url)
			VALUES ($1, 'VoiceComment', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			RETURNING `+commentSelect[len("SELECT "):strings.Index(commentSelect, "\n\tFROM")],
			live, v.Body, v.Public, author, nonEmpty(v.CallID), nonEmpty(v.From), nonEmpty(v.To), started, v.Duration,
			v.AnsweredByID, nonEmpty(v.Location), nonEmpty(v.RecordingID), nonEmpty(v.RecordingURL)))
		if err != nil {
			return dbError("append voice comment", err)
		}
		_, err = tx.Exec(ctx, `UPDATE tickets SET updated_at = clock_timestamp() WHERE id = $1`, live)
		return dbError("append voice comment", err)
	})
	return out, err
}

// Comments returns the comments of ticket id and of every ticket merged into it, directly or
// through a chain (TM-1), in the order they were written.
func (s *Store) Comments(ctx context.Context, ticketID int64) ([]Comment, error) {
	if _, err := getTicket(ctx, s.pool, ticketID, false); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE fam(id) AS (
			SELECT $1::bigint UNION SELECT t.id FROM tickets t JOIN fam ON t.merged_into_id = fam.id
		) `+commentSelect+`WHERE ticket_id IN (SELECT id FROM fam) ORDER BY id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("ticketing: comments: %w", err)
	}
	cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Comment, error) { return scanComment(r) })
	if err != nil {
		return nil, fmt.Errorf("ticketing: comments: %w", err)
	}
	ids := make([]int64, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	files, err := attachmentsOf(ctx, s.pool, ids)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		if f := files[cs[i].ID]; f != nil {
			cs[i].Attachments = f
		}
	}
	return cs, nil
}
