package ticketing

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ExportCursor is a position in an incremental export: the (updated_at, id) of the last record
// read. Records are read in (updated_at, id) order, so a record changed after it was read
// comes again later in the stream, as in Zendesk's exports.
type ExportCursor struct {
	At time.Time
	ID int64
}

// String is the cursor as the API writes it (after_cursor).
func (c ExportCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixMicro(), 10) + "." + strconv.FormatInt(c.ID, 10)))
}

// ParseExportCursor reads a cursor written by String.
func ParseExportCursor(s string) (ExportCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ExportCursor{}, fmt.Errorf("ticketing: export cursor: %w", err)
	}
	at, id, ok := strings.Cut(string(b), ".")
	us, err1 := strconv.ParseInt(at, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil || n < 0 {
		return ExportCursor{}, fmt.Errorf("ticketing: export cursor %q is malformed", s)
	}
	return ExportCursor{At: time.UnixMicro(us).UTC(), ID: n}, nil
}

// ExportTickets returns up to limit tickets changed after from, in (updated_at, id) order,
// and whether more follow.
func (s *Store) ExportTickets(ctx context.Context, from ExportCursor, limit int) ([]Ticket, bool, error) {
	rows, err := s.pool.Query(ctx, ticketSelect+`WHERE (updated_at, id) > ($1, $2) ORDER BY updated_at, id LIMIT $3`,
		from.At, from.ID, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: export tickets: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ticket, error) { return scanTicket(r) })
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: export tickets: %w", err)
	}
	more := len(ts) > limit
	if more {
		ts = ts[:limit]
	}
	return ts, more, nil
}

// ExportUsers returns up to limit users changed after from, in (updated_at, id) order, deleted
// ones included (active false) so that a synchronised copy learns of the deletion.
func (s *Store) ExportUsers(ctx context.Context, from ExportCursor, limit int) ([]User, bool, error) {
	rows, err := s.pool.Query(ctx, userSelect+`WHERE (u.updated_at, u.id) > ($1, $2) ORDER BY u.updated_at, u.id LIMIT $3`,
		from.At, from.ID, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: export users: %w", err)
	}
	us, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, false, fmt.Errorf("ticketing: export users: %w", err)
	}
	more := len(us) > limit
	if more {
		us = us[:limit]
	}
	return us, more, nil
}
