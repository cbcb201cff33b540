package eventlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// lineFile is an append-only file of JSON lines in which every append is all or nothing: the
// bytes of a write or fsync that failed (disk full, EIO), even a short write, are cut off
// again before anything else is appended, so that no later line is glued to a torn one. The
// caller serialises appends and truncations (Log.mu, Log.deadMu).
type lineFile struct {
	f    *os.File
	path string
	// size is the end of the last complete, fsync'd append: everything before it is whole lines.
	size int64
	// torn is set when a failed append could not be cut off; the next append cuts first.
	torn bool
}

func openLineFile(path string) (*lineFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("eventlog: open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eventlog: stat %s: %w", path, err)
	}
	return &lineFile{f: f, path: path, size: st.Size()}, nil
}

// append writes b (whole lines) and fsyncs. On any error the file is cut back to where it was,
// and the caller must treat b as not written.
func (lf *lineFile) append(b []byte) error {
	if lf.torn {
		if err := lf.truncate(lf.size); err != nil {
			return fmt.Errorf("eventlog: %s still holds a torn write that cannot be cut off: %w", lf.path, err)
		}
	}
	_, err := lf.f.Write(b)
	if err == nil {
		err = lf.f.Sync()
	}
	if err != nil {
		if terr := lf.truncate(lf.size); terr != nil {
			lf.torn = true
		}
		return fmt.Errorf("eventlog: append to %s: %w", lf.path, err)
	}
	lf.size += int64(len(b))
	return nil
}

// truncate cuts the file to n bytes, durably. With O_APPEND the next write goes to the new end.
func (lf *lineFile) truncate(n int64) error {
	if err := lf.f.Truncate(n); err != nil {
		return fmt.Errorf("eventlog: truncate %s: %w", lf.path, err)
	}
	if err := lf.f.Sync(); err != nil {
		return fmt.Errorf("eventlog: fsync %s: %w", lf.path, err)
	}
	lf.size, lf.torn = n, false
	return nil
}

func (lf *lineFile) close() error { return lf.f.Close() }

// scanLines reads the whole lines of lf from off on, streaming, calling fn (when set) with each
// non-blank line and the offset just past it, and returns the number of non-blank lines and the
// end of the last whole line. Bytes after the last newline are a write a crash interrupted:
// they were never acknowledged.
func (lf *lineFile) scanLines(off int64, fn func(line []byte, end int64)) (lines int, end int64, err error) {
	br := bufio.NewReaderSize(io.NewSectionReader(lf.f, off, lf.size-off), 256*1024)
	end = off
	pos := off
	var long []byte
	for {
		chunk, rerr := br.ReadSlice('\n')
		pos += int64(len(chunk))
		if errors.Is(rerr, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			continue
		}
		if rerr != nil {
			if rerr == io.EOF {
				return lines, end, nil
			}
			return lines, end, fmt.Errorf("eventlog: read %s: %w", lf.path, rerr)
		}
		line := chunk
		if long != nil {
			line = append(long, chunk...)
			long = nil
		}
		end = pos
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		lines++
		if fn != nil {
			fn(line, end)
		}
	}
}

// rec is one event on its way through the log: its JSON line (the body stored in call_events
// and the spool line, without the newline), and where it ends in the spool when it was read
// from there. bad is set for an event that cannot be stored whatever the database does: it
// could not be encoded, or its spool line does not decode.
type rec struct {
	ev   callevent.Event
	line []byte
	end  int64
	bad  error
}

func encodeRec(e callevent.Event) rec {
	b, err := json.Marshal(&e)
	if err != nil {
		return rec{ev: e, line: []byte(fmt.Sprintf("%+v", e)), bad: fmt.Errorf("eventlog: encode: %w", err)}
	}
	return rec{ev: e, line: b}
}

// decodeRec reads a spool line back. Only the fields that become columns of call_events are
// decoded (the line itself is the stored body): a replay of a large spool is bound by this.
func decodeRec(line []byte, end int64) rec {
	line = bytes.TrimSpace(line)
	r := rec{line: bytes.Clone(line), end: end}
	var cols struct {
		ID     string    `json:"id"`
		CallID string    `json:"call_id"`
		Seq    int64     `json:"seq"`
		Type   string    `json:"type"`
		At     time.Time `json:"at"`
	}
	if err := json.Unmarshal(line, &cols); err != nil {
		r.bad = fmt.Errorf("eventlog: spool line is not a call event: %w", err)
	}
	r.ev = callevent.Event{ID: cols.ID, CallID: cols.CallID, Seq: cols.Seq, Type: cols.Type, At: cols.At}
	return r
}

// readRecs reads up to max events of the spool between off and end (a whole line's end).
// consumed is the end of the last line read (blank lines included).
func (lf *lineFile) readRecs(off, end int64, max int) (recs []rec, consumed int64, err error) {
	br := bufio.NewReaderSize(io.NewSectionReader(lf.f, off, end-off), 64*1024)
	consumed = off
	for len(recs) < max {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil {
			if rerr == io.EOF {
				// end always ends a whole line; a tail without newline is not ours to read.
				return recs, consumed, nil
			}
			return recs, consumed, fmt.Errorf("eventlog: read %s: %w", lf.path, rerr)
		}
		consumed += int64(len(line))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		recs = append(recs, decodeRec(line, consumed))
	}
	return recs, consumed, nil
}

// offsetFile persists the replay offset of the spool: the bytes before it are in the database,
// so that a restart resumes there instead of inserting them again (which would be harmless,
// inserting is idempotent, but slow for a large spool). It is written in place, at a fixed
// width, so that updating it needs no new disk space even when the disk is full.
type offsetFile struct {
	f    *os.File
	path string
}

const offsetWidth = 20

func openOffsetFile(path string) (*offsetFile, int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("eventlog: open %s: %w", path, err)
	}
	of := &offsetFile{f: f, path: path}
	buf := make([]byte, offsetWidth+1)
	n, _ := f.ReadAt(buf, 0)
	off, perr := strconv.ParseInt(string(bytes.TrimSpace(buf[:n])), 10, 64)
	if n < offsetWidth+1 || perr != nil || off < 0 {
		// New, or not ours: start at 0 and claim the file's space now.
		off = 0
		if err := of.store(0); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	return of, off, nil
}

func (of *offsetFile) store(off int64) error {
	b := fmt.Appendf(nil, "%0*d\n", offsetWidth, off)
	if _, err := of.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("eventlog: write %s: %w", of.path, err)
	}
	if err := of.f.Sync(); err != nil {
		return fmt.Errorf("eventlog: fsync %s: %w", of.path, err)
	}
	return nil
}

func (of *offsetFile) close() error { return of.f.Close() }

// mark remembers when the spool bytes up to end were appended, for the age of the oldest
// event waiting. Appends within a second share a mark, so there is at most one a second.
type mark struct {
	end int64
	at  time.Time
}
