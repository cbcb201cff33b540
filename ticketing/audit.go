package ticketing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// The audit trail (docs/api.md, GET /audit_logs): every audited action writes one row of the
// audits table (migrations 002 and 008) in the transaction of the change it records — the
// store's own writes through audit, the requester changes through the tickets trigger — and
// the API lists them. The row's source is what the action was about (a ticket, a user, the
// voice settings); migration 008's trigger fills source, description and client address for
// the writers that leave them out.

// Kinds of audit entry (the API's "action"), beside AuditIdentityRemoved, AuditUserMerged,
// AuditTicketMerged, AuditRequesterChanged (store.go) and AuditRecordingDeleted.
const (
	AuditSettingsChanged = "settings_changed" // PUT /settings/voice changed these keys
	// TU-9: what an agent did with a voicemail, on its ticket.
	AuditVoicemailRead       = "voicemail_read"        // its message was fetched (GET /recordings/{id}, from the start)
	AuditVoicemailClosed     = "voicemail_closed"      // its ticket was set solved or closed
	AuditVoicemailCalledBack = "voicemail_called_back" // POST /calls with its ticket_id was dialled
)

// auditActions are the values of filter[action], each with the label the API writes beside it.
var auditActions = map[string]string{
	AuditRecordingDeleted:    "Recordings deleted",
	AuditIdentityRemoved:     "Shared number removed",
	AuditRequesterChanged:    "Requester changed",
	AuditUserMerged:          "User merged",
	AuditTicketMerged:        "Ticket merged",
	AuditSettingsChanged:     "Settings changed",
	AuditVoicemailRead:       "Voicemail read",
	AuditVoicemailClosed:     "Voicemail closed",
	AuditVoicemailCalledBack: "Voicemail called back",
	AuditAgentChanged:        "Agent changed",
	AuditQueueChanged:        "Queue changed",
	AuditCallSupervised:      "Call supervised",
}

// Source types of audit entries (the API's "source_type").
const (
	AuditSourceTicket  = "ticket"
	AuditSourceUser    = "user"
	AuditSourceSetting = "account_setting" // the voice settings; no source_id
)

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the address of the client a change comes from: the
// audit entries the change writes record it (the API's ip_address). The API sets it for
// its own requests; other packages serving /api/v2 (recordings, web) set it through wiring.
func WithClientAddr(ctx context.Context, addr netip.Addr) context.Context {
	if !addr.IsValid() {
		return ctx
	}
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

func clientAddrOf(ctx context.Context) string {
	if a, ok := ctx.Value(clientAddrKey{}).(netip.Addr); ok && a.IsValid() {
		return a.String()
	}
	return ""
}

// cleanAudit makes a string from outside fit a description: control characters, line and
// paragraph separators and bidirectional overrides become spaces (a description is shown on
// one line, and written to terminals; an override would make it read otherwise than it is
// stored), at most 200 runes. Migration 008's audit_clean does the same in SQL.
func cleanAudit(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar || r == '\u2028' || r == '\u2029' ||
			(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// auditEntry is one row of the trail as a writer gives it; an empty description is written
// by the database (audit_describe of migration 008) from kind and details.
type auditEntry struct {
	kind             string
	userID, ticketID *int64
	sourceType       string // empty: the ticket, else the user, else the settings
	details          map[string]any
	description      string
}

func writeAudit(ctx context.Context, q querier, actor Actor, e auditEntry) error {
	var st *string
	if e.sourceType != "" {
		st = &e.sourceType
	}
	var sourceID *int64
	switch {
	case e.sourceType == AuditSourceSetting:
	case e.sourceType == AuditSourceUser:
		sourceID = e.userID
	case e.sourceType == AuditSourceTicket || e.ticketID != nil:
		sourceID = e.ticketID
	default:
		sourceID = e.userID
	}
	if e.details == nil {
		e.details = map[string]any{}
	}
	_, err := q.Exec(ctx, `INSERT INTO audits (kind, actor_id, user_id, ticket_id, details, source_type, source_id, change_description)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		e.kind, actorArg(actor), e.userID, e.ticketID, e.details, st, sourceID, e.description)
	if err != nil {
		return fmt.Errorf("ticketing: audit %s: %w", e.kind, err)
	}
	return nil
}

// AuditLog is one entry of the audit trail as GET /audit_logs shows it (Zendesk's audit log
// shape). ActorID is null for the system; SourceID is null for the voice settings.
type AuditLog struct {
	ID                int64   `json:"id"`
	URL               string  `json:"url"`
	ActorID           *int64  `json:"actor_id"`
	ActorName         string  `json:"actor_name"`
	SourceID          *int64  `json:"source_id"`
	SourceType        string  `json:"source_type"`
	SourceLabel       string  `json:"source_label"`
	Action            string  `json:"action"`
	ActionLabel       string  `json:"action_label"`
	ChangeDescription string  `json:"change_description"`
	IPAddress         *string `json:"ip_address"`
	CreatedAt         Time    `json:"created_at"`
}

// AuditLogFilter selects audit entries (AuditLogs). Zero fields select everything.
type AuditLogFilter struct {
	SourceType string
	SourceID   int64
	ActorID    int64
	Action     string
	IPAddress  string
	// From and To bound created_at (inclusive); zero: unbounded.
	From, To time.Time
	// Descending lists newest first (sort=-created_at).
	Descending bool
	// After and Before are cursors (AuditCursor) from a page's ends; at most one is set.
	After, Before *AuditCursor
	// Limit is the page size, 1–100 (default 100).
	Limit int
}

// AuditCursor is a position in the trail: entries are ordered by (created_at, id).
type AuditCursor struct {
	At time.Time
	ID int64
}

// String encodes c for page[after] and page[before].
func (c AuditCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixMicro(), 10) + "." + strconv.FormatInt(c.ID, 10)))
}

// ParseAuditCursor reads a cursor String wrote.
func ParseAuditCursor(s string) (AuditCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return AuditCursor{}, errors.New("not a cursor")
	}
	at, id, ok := strings.Cut(string(b), ".")
	us, err1 := strconv.ParseInt(at, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil || n <= 0 {
		return AuditCursor{}, errors.New("not a cursor")
	}
	return AuditCursor{At: time.UnixMicro(us).UTC(), ID: n}, nil
}

const auditLogSelect = `SELECT a.id, a.actor_id, coalesce(u.name, ''), a.source_id, a.source_type,
	CASE a.source_type
		WHEN 'ticket' THEN 'Ticket #' || a.source_id || coalesce(': ' || nullif(t.subject, ''), '')
		WHEN 'user' THEN coalesce(su.name, 'User #' || a.source_id)
		ELSE 'Voice settings' END,
	a.kind, a.change_description, host(a.ip_address), a.created_at
	FROM audits a
	LEFT JOIN users u ON u.id = a.actor_id
	LEFT JOIN tickets t ON a.source_type = 'ticket' AND t.id = a.source_id
	LEFT JOIN users su ON a.source_type = 'user' AND su.id = a.source_id `

func scanAuditLog(r pgx.CollectableRow) (AuditLog, error) {
	var l AuditLog
	var actorName string
	err := r.Scan(&l.ID, &l.ActorID, &actorName, &l.SourceID, &l.SourceType, &l.SourceLabel, &l.Action,
		&l.ChangeDescription, &l.IPAddress, &l.CreatedAt)
	l.ActorName = "Switchboard" // the system: caller resolution, the events engine, retention
	if l.ActorID != nil {
		l.ActorName = cleanAudit(actorName)
	}
	l.SourceLabel = cleanAudit(l.SourceLabel)
	l.ActionLabel = auditActions[l.Action]
	return l, err
}

// AuditLogs returns a page of the audit trail and whether more entries follow in the page's
// direction (after it for After or no cursor, before it for Before).
func (s *Store) AuditLogs(ctx context.Context, f AuditLogFilter) ([]AuditLog, bool, error) {
	if f.Limit <= 0 || f.Limit > 100 {
		f.Limit = 100
	}
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	// The scan runs forward in the listing's order, or backward from a before cursor.
	desc := f.Descending
	var cur *AuditCursor
	if f.After != nil {
		cur = f.After
	} else if f.Before != nil {
		cur, desc = f.Before, !desc
	}
	cmp, order := ">", "ASC"
	if desc {
		cmp, order = "<", "DESC"
	}
	var curAt *time.Time
	var curID int64
	if cur != nil {
		curAt, curID = &cur.At, cur.ID
	}
	rows, err := s.pool.Query(ctx, auditLogSelect+`WHERE ($1 = '' OR a.source_type = $1) AND ($2 = 0 OR a.source_id = $2)
		AND ($3 = 0 OR a.actor_id = $3) AND ($4 = '' OR a.kind = $4) AND ($5 = '' OR a.ip_address = $5::inet)
		AND ($6::timestamptz IS NULL OR a.created_at >= $6) AND ($7::timestamptz IS NULL OR a.created_at <= $7)
		AND ($8::timestamptz IS NULL OR (a.created_at, a.id) `+cmp+` ($8, $9))
		ORDER BY a.created_at `+order+`, a.id `+order+` LIMIT $10`,
		f.SourceType, f.SourceID, f.ActorID, f.Action, f.IPAddress, from, to, curAt, curID, f.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: audit logs: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanAuditLog)
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: audit logs: %w", err)
	}
	more := len(out) > f.Limit
	if more {
		out = out[:f.Limit]
	}
	if f.Before != nil { // scanned backward: put the page in the listing's order
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, more, nil
}

// AuditLog returns one entry of the trail.
func (s *Store) AuditLog(ctx context.Context, id int64) (AuditLog, error) {
	rows, err := s.pool.Query(ctx, auditLogSelect+`WHERE a.id = $1`, id)
	if err != nil {
		return AuditLog{}, fmt.Errorf("ticketing: audit log: %w", err)
	}
	l, err := pgx.CollectExactlyOneRow(rows, scanAuditLog)
	if errors.Is(err, pgx.ErrNoRows) {
		return AuditLog{}, notFound("audit log %d not found", id)
	}
	if err != nil {
		return AuditLog{}, fmt.Errorf("ticketing: audit log: %w", err)
	}
	return l, nil
}

// AuditVoicemailRead records that actor fetched the voicemail message recordingID (TU-9), on
// the voicemail's ticket: the ticket whose voice comment carries the message. A recording that
// is on no voicemail ticket (a call recording, a voicemail that made no ticket) writes
// nothing.
func (s *Store) AuditVoicemailRead(ctx context.Context, actor Actor, recordingID string) error {
	return s.inTx(ctx, actor, AuditVoicemailRead, func(tx pgx.Tx) error {
		var ticketID int64
		err := tx.QueryRow(ctx, `SELECT t.id FROM ticket_comments c JOIN tickets t ON t.id = c.ticket_id
			WHERE c.recording_id = $1 AND c.type = 'VoiceComment' AND t.via_channel = 'voicemail' ORDER BY c.id LIMIT 1`,
			recordingID).Scan(&ticketID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return dbError("voicemail of recording", err)
		}
		return writeAudit(ctx, tx, actor, auditEntry{kind: AuditVoicemailRead, ticketID: &ticketID,
			details:     map[string]any{"rule": "TU-9", "recording_id": recordingID},
			description: "Voicemail message " + cleanAudit(recordingID) + " played"})
	})
}

// AuditVoicemailCallback records that actor dialled the ticket of a voicemail back (POST
// /calls with its ticket_id; TU-9) on the call callID. A ticket that is not a voicemail's
// writes nothing.
func (s *Store) AuditVoicemailCallback(ctx context.Context, actor Actor, ticketID int64, callID, to string) error {
	return s.inTx(ctx, actor, AuditVoicemailCalledBack, func(tx pgx.Tx) error {
		var channel string
		err := tx.QueryRow(ctx, `SELECT via_channel FROM tickets WHERE id = $1`, ticketID).Scan(&channel)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && channel != ChannelVoicemail) {
			return nil
		}
		if err != nil {
			return dbError("voicemail callback", err)
		}
		return writeAudit(ctx, tx, actor, auditEntry{kind: AuditVoicemailCalledBack, ticketID: &ticketID,
			details:     map[string]any{"rule": "TU-9", "call_id": callID, "to": to},
			description: "Caller called back at " + cleanAudit(to) + " (call " + cleanAudit(callID) + ")"})
	})
}

// auditVoicemailClosed records, in the transaction that changes its status, that a voicemail
// ticket was set solved or closed (TU-9).
func auditVoicemailClosed(ctx context.Context, q querier, actor Actor, t Ticket, status string) error {
	id := t.ID
	return writeAudit(ctx, q, actor, auditEntry{kind: AuditVoicemailClosed, ticketID: &id,
		details:     map[string]any{"rule": "TU-9", "from": t.Status, "to": status},
		description: "Voicemail ticket status changed from " + t.Status + " to " + status})
}

// secretSetting reports whether a settings key holds a secret, whose values the trail never
// shows (only that it changed).
func secretSetting(key string) bool {
	k := strings.ToLower(key)
	for _, w := range []string{"secret", "password", "token", "key", "credential"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// settingsChanges lists the keys of the voice settings that differ between old and new, in
// dotted form ("outbound.allow_new_ticket"), as "key: old → new" (values as JSON, cleaned;
// secrets as "changed").
func settingsChanges(old, new Settings) ([]string, []string, error) {
	flat := func(s Settings) (map[string]string, error) {
		raw, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		out := map[string]string{}
		var walk func(prefix string, v any)
		walk = func(prefix string, v any) {
			if o, ok := v.(map[string]any); ok && len(o) > 0 {
				for k, x := range o {
					walk(strings.TrimPrefix(prefix+"."+k, "."), x)
				}
				return
			}
			b, _ := json.Marshal(v)
			out[prefix] = string(b)
		}
		walk("", m)
		return out, nil
	}
	a, err := flat(old)
	if err != nil {
		return nil, nil, err
	}
	b, err := flat(new)
	if err != nil {
		return nil, nil, err
	}
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var changed, lines []string
	for k := range keys {
		if a[k] != b[k] {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	for _, k := range changed {
		if secretSetting(k) {
			lines = append(lines, k+": changed")
			continue
		}
		from, to := a[k], b[k]
		if from == "" {
			from = "(unset)"
		}
		if to == "" {
			to = "(unset)"
		}
		lines = append(lines, cleanAudit(k)+": "+cleanAudit(from)+" → "+cleanAudit(to))
	}
	return changed, lines, nil
}
