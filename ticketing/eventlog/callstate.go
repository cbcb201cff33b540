package eventlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// RecordNode records that the gateway node name runs version against this database (the
// nodes table: name, version, when it last started). The event log owns the table: nodes are
// the producers of the events it keeps, and its dead letters name the node they came from
// (Options.Node). It is called once the database answers and its schema is up to date. A new
// node's row starts with a heartbeat; a node that comes back is alive again from its first
// beat (NodeWatch), not from here: until then the calls its last run left are still for a
// survivor to close, while the calls this run takes come after its first beat.
func RecordNode(ctx context.Context, pool *pgxpool.Pool, name, version string) error {
	_, err := pool.Exec(ctx, `INSERT INTO nodes (name, version) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, started_at = now()`, name, version)
	if err != nil {
		return fmt.Errorf("eventlog: record node %s: %w", name, err)
	}
	return nil
}

// CallState reports the highest seq the log holds for callID (0 when it holds none) and
// whether one of those events is a call.ended, so that whoever closes a call after a crash
// knows the seq that comes next and whether the call was closed already.
//
// It sees every event whose Emit returned nil: those in call_events and those still waiting
// in the spool (read from the replay offset on, so it costs a scan of what waits there —
// nothing once the spool drained). It does not see an event still on its way through Emit,
// nor one set aside as a dead letter. It needs the database: with the database away it
// returns the error, since the answer would miss what is stored.
func (l *Log) CallState(ctx context.Context, callID string) (lastSeq int64, ended bool, err error) {
	// The spool first, then the table: an event the replay moves in between is then seen in
	// the table, never missed.
	lastSeq, ended, err = l.spoolCallState(callID)
	if err != nil {
		return 0, false, err
	}
	var seq int64
	var stored bool
	err = l.opts.Pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0), coalesce(bool_or(type = $2), false)
		FROM call_events WHERE call_id = $1`, callID, callevent.EventEnded).Scan(&seq, &stored)
	if err != nil {
		return 0, false, fmt.Errorf("eventlog: call state of %s: %w", callID, err)
	}
	return max(lastSeq, seq), ended || stored, nil
}

// spoolCallState scans the spool's events waiting for replay for callID's. The spool is read
// without the lock (below its end it only grows, as for the replayer); when the replayer
// emptied it meanwhile (spoolGen changed), what was read is discarded: it is all in the table.
func (l *Log) spoolCallState(callID string) (lastSeq int64, ended bool, err error) {
	l.mu.Lock()
	off, end, gen := l.off, l.spool.size, l.spoolGen
	l.mu.Unlock()
	if end <= off {
		return 0, false, nil
	}
	// A line can hold the call only if it holds its id as JSON writes it (escapes and all):
	// a cheap filter before decoding.
	needle, err := json.Marshal(callID)
	if err != nil {
		return 0, false, fmt.Errorf("eventlog: call state of %s: %w", callID, err)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(l.spool.f, off, end-off), 64*1024)
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' && bytes.Contains(line, needle) {
			if r := decodeRec(line, 0); r.bad == nil && r.ev.CallID == callID {
				lastSeq = max(lastSeq, r.ev.Seq)
				ended = ended || r.ev.Type == callevent.EventEnded
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return 0, false, fmt.Errorf("eventlog: call state of %s: read the spool: %w", callID, rerr)
		}
	}
	l.mu.Lock()
	emptied := l.spoolGen != gen
	l.mu.Unlock()
	if emptied {
		return 0, false, nil
	}
	return lastSeq, ended, nil
}
