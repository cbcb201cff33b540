package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// refused reports whether err is PostgreSQL refusing the data itself: SQLSTATE class 22 (data
// exception: a NUL in text or jsonb, 22021 / 22P05, a value out of range) or class 23
// (integrity constraint violation). The same rows are refused every time, so retrying cannot
// help; anything else (connection lost, timeout, the server shutting down, disk full on the
// server) may pass on a later try.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// deadLetter is an event set aside: a row of call_events_dead, or a line of the dead-letter
// file while the database is away.
type deadLetter struct {
	EventID  string    `json:"event_id"`
	CallID   string    `json:"call_id"`
	Seq      int64     `json:"seq"`
	Type     string    `json:"type"`
	Raw      []byte    `json:"raw"` // base64 in the file: it may hold anything
	Error    string    `json:"error"`
	SQLState string    `json:"sqlstate"`
	Node     string    `json:"node"`
	Stage    string    `json:"stage"`
	FailedAt time.Time `json:"failed_at"`
}

// clean makes s storable in a text column whatever it holds: invalid UTF-8 and NUL, which
// PostgreSQL refuses, become U+FFFD. The raw bytes are kept as they were in raw.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

func (l *Log) newDeadLetter(r rec, cause error, stage string) deadLetter {
	return deadLetter{
		EventID: clean(r.ev.ID), CallID: clean(r.ev.CallID), Seq: r.ev.Seq, Type: clean(r.ev.Type),
		Raw: r.line, Error: clean(cause.Error()), SQLState: sqlState(cause), Node: clean(l.opts.Node),
		Stage: stage, FailedAt: l.opts.Now().UTC(),
	}
}

// setAside moves one event the database refused (or that cannot be stored at all) out of the
// way: into call_events_dead, or, when that fails (the database went away meanwhile), into
// the dead-letter file, which is moved into the table once the database answers. An error
// means it is in neither, and the event must stay where it was.
func (l *Log) setAside(r rec, cause error, stage string) error {
	d := l.newDeadLetter(r, cause, stage)
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.WriteTimeout)
	err := insertDead(ctx, l.opts.Pool, []deadLetter{d})
	cancel()
	where := "call_events_dead"
	if err != nil {
		b, jerr := json.Marshal(&d)
		if jerr != nil {
			return fmt.Errorf("eventlog: encode dead letter: %w", jerr)
		}
		l.deadMu.Lock()
		ferr := l.dead.append(append(b, '\n'))
		if ferr == nil {
			l.deadFileLines++
		}
		l.deadMu.Unlock()
		if ferr != nil {
			return fmt.Errorf("eventlog: set aside event %s: table: %w; file: %w", d.EventID, err, ferr)
		}
		where = l.dead.path
	}
	l.deadTotal.Inc()
	l.log.Error("eventlog: event refused by the database, set aside as a dead letter; the events around it go on",
		"event_id", d.EventID, "call_id", d.CallID, "seq", d.Seq, "type", d.Type, "sqlstate", d.SQLState,
		"err", d.Error, "stage", stage, "in", where)
	return nil
}

// importDeadFile moves the dead letters kept in the file while the database was away into
// call_events_dead, and empties the file. Called once the database answers. deadMu is not
// held across the insert: a line appended meanwhile keeps the file for the next import, which
// inserts the earlier lines again as no-ops (unique on the raw event).
func (l *Log) importDeadFile() {
	l.deadMu.Lock()
	if l.deadFileLines == 0 {
		l.deadMu.Unlock()
		return
	}
	size := l.dead.size
	var ds []deadLetter
	_, _, err := l.dead.scanLines(0, func(line []byte, _ int64) {
		var d deadLetter
		if err := json.Unmarshal(bytes.TrimSpace(line), &d); err != nil {
			// Not one of ours: keep its bytes as the raw of a dead letter rather than lose them.
			d = deadLetter{Raw: bytes.Clone(line), Error: "dead-letter file line does not decode: " + clean(err.Error()),
				Node: clean(l.opts.Node), FailedAt: l.opts.Now().UTC()}
		}
		d.Stage = "file"
		ds = append(ds, d)
	})
	l.deadMu.Unlock()
	if err != nil {
		l.log.Error("eventlog: read dead-letter file", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.replayTimeout())
	err = insertDead(ctx, l.opts.Pool, ds)
	cancel()
	if err != nil {
		l.log.Warn("eventlog: dead letters stay in their file for now", "file", l.dead.path, "events", len(ds), "err", err)
		return
	}
	l.deadMu.Lock()
	defer l.deadMu.Unlock()
	if l.dead.size != size {
		return
	}
	if err := l.dead.truncate(0); err != nil {
		l.log.Error("eventlog: empty dead-letter file", "err", err)
		return
	}
	l.deadFileLines = 0
	l.log.Info("eventlog: dead letters moved from their file into call_events_dead", "events", len(ds))
}

// insertDead stores dead letters; the same raw event twice is one row.
func insertDead(ctx context.Context, pool *pgxpool.Pool, ds []deadLetter) error {
	n := len(ds)
	var (
		ids, calls, types, errs, states, nodes, stages = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqs = make([]int64, n)
		raws = make([][]byte, n)
		ats  = make([]time.Time, n)
	)
	for i, d := range ds {
		ids[i], calls[i], seqs[i], types[i], raws[i] = clean(d.EventID), clean(d.CallID), d.Seq, clean(d.Type), d.Raw
		errs[i], states[i], nodes[i], stages[i], ats[i] = clean(d.Error), clean(d.SQLState), clean(d.Node), d.Stage, d.FailedAt
		if raws[i] == nil {
			raws[i] = []byte{}
		}
	}
	_, err := pool.Exec(ctx, `
		INSERT INTO call_events_dead (event_id, call_id, seq, type, raw, error, sqlstate, node, stage, failed_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::timestamptz[])
		ON CONFLICT DO NOTHING`, ids, calls, seqs, types, raws, errs, states, nodes, stages, ats)
	if err != nil {
		return fmt.Errorf("eventlog: insert dead letters: %w", err)
	}
	return nil
}
