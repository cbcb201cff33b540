package eventlog

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The flush's own binary COPY encoder writes every row exactly as pgx's encoders (the ones its
// CopyFrom used) write the same values for the columns' types: uuid, text, int8, text,
// timestamptz, jsonb; any strings (invalid UTF-8 and NUL included: the server judges them),
// any seq, times before 2000 and with nanoseconds.
func FuzzAppendCopyRowEncodesAsPgx(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), "call-1", int64(1), "call.started", int64(1700000000123456789), `{"a":"b"}`)
	f.Add([]byte{}, "", int64(-1), "", int64(-1), "")
	f.Add([]byte{0xff, 0}, "tab\there\n\\\"'", int64(1<<62), "x\x00y", int64(-900000000999999999), "{\"ü\":\"\xff\"}")
	m := pgtype.NewMap()
	f.Fuzz(func(t *testing.T, idBytes []byte, callID string, seq int64, typ string, atNanos int64, body string) {
		var id [16]byte
		copy(id[:], idBytes)
		at := time.Unix(0, atNanos)
		got := appendCopyRow([]byte("prefix"), id, callID, seq, typ, at, []byte(body))
		want := binary.BigEndian.AppendUint16([]byte("prefix"), 6)
		for _, c := range []struct {
			oid uint32
			v   any
		}{{pgtype.UUIDOID, id}, {pgtype.TextOID, callID}, {pgtype.Int8OID, seq}, {pgtype.TextOID, typ},
			{pgtype.TimestamptzOID, at}, {pgtype.JSONBOID, body}} {
			enc, err := m.Encode(c.oid, pgtype.BinaryFormatCode, c.v, nil)
			if err != nil {
				t.Fatalf("pgx encode %T: %v", c.v, err)
			}
			want = binary.BigEndian.AppendUint32(want, uint32(len(enc)))
			want = append(want, enc...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("row\n got %x\nwant %x", got, want)
		}
	})
}

// The stream's frame is the binary COPY format's: signature, flags, header extension length,
// rows, and the -1 field count that ends it.
func TestCopyStreamFrame(t *testing.T) {
	b := appendCopyTrailer(appendCopyHeader(nil))
	want := []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff")
	if !bytes.Equal(b, want) {
		t.Fatalf("empty stream %x, want %x", b, want)
	}
}
