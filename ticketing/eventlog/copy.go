package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The binary COPY format (PostgreSQL's documentation, "COPY", File Formats → Binary Format): a
// signature, a flags word and a header extension length; per row a field count and, per
// field, its length and its bytes in the type's binary form (its receive function's input);
// a field count of -1 at the end. The columns and their types are those of copyEvents
// (migrations/003_call_events.sql): id uuid, call_id text, seq bigint, type text,
// at timestamptz, body jsonb.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// copyRowOverhead is what a row adds beside its strings' bytes: the field count, six lengths,
// the uuid, the bigint, the timestamptz and the jsonb version byte.
const copyRowOverhead = 2 + 6*4 + 16 + 8 + 8 + 1

// pgEpochMicros is 2000-01-01 00:00:00 UTC in microseconds since the Unix epoch: a
// timestamptz's binary form counts microseconds from there.
const pgEpochMicros = 946684800 * 1000000

// jsonbVersion is the first byte of jsonb's binary form (jsonb_recv accepts version 1 only),
// followed by the JSON text.
const jsonbVersion = 1

func appendCopyHeader(b []byte) []byte {
	b = append(b, copySignature...)
	b = binary.BigEndian.AppendUint32(b, 0) // flags: no OIDs
	return binary.BigEndian.AppendUint32(b, 0)
}

func appendCopyTrailer(b []byte) []byte {
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

// appendCopyRow appends one call_events row. Strings go as they are: PostgreSQL checks them
// (text_recv and jsonb_recv verify the encoding and refuse a NUL, jsonb parses the body), so a
// refusal is the server's (class 22), as with the INSERT. The time is cut to microseconds as
// PostgreSQL stores it (toward the past, like pgx's own encoder).
func appendCopyRow(b []byte, id [16]byte, callID string, seq int64, typ string, at time.Time, body []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, 6)
	b = binary.BigEndian.AppendUint32(b, 16)
	b = append(b, id[:]...)
	b = appendCopyText(b, callID)
	b = binary.BigEndian.AppendUint32(b, 8)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = appendCopyText(b, typ)
	b = binary.BigEndian.AppendUint32(b, 8)
	b = binary.BigEndian.AppendUint64(b, uint64(at.Unix()*1000000+int64(at.Nanosecond())/1000-pgEpochMicros))
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(body)))
	b = append(b, jsonbVersion)
	return append(b, body...)
}

func appendCopyText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// copyFresh sends data (header, rows, trailer) as one COPY on a pooled connection: one round
// trip, one implicit transaction. The pool's tracer, when it traces COPYs, sees it as it saw
// pgx's CopyFrom.
func copyFresh(ctx context.Context, pool *pgxpool.Pool, data []byte) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	conn := c.Conn()
	tr, _ := conn.Config().Tracer.(pgx.CopyFromTracer)
	if tr != nil {
		ctx = tr.TraceCopyFromStart(ctx, conn, pgx.TraceCopyFromStartData{TableName: pgx.Identifier{"call_events"},
			ColumnNames: []string{"id", "call_id", "seq", "type", "at", "body"}})
	}
	tag, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(data), copyEvents)
	if tr != nil {
		tr.TraceCopyFromEnd(ctx, conn, pgx.TraceCopyFromEndData{CommandTag: tag, Err: err})
	}
	return err
}
