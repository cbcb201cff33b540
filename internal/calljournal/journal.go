// Package calljournal keeps, on the node's local disk, the calls this gateway has open, so that
// after a crash (kill -9, OOM kill, power loss of the process) the next start can close every
// one of them — even while PostgreSQL is unreachable.
//
// Every call lifecycle event the node emits is appended to the journal before it is handed to
// the event log: its call, seq, type and time, and what it says about the outcome (answered,
// voicemail, abandoned). call.ended is written with its whole body, then a tombstone once the
// event log acknowledged it (durable in PostgreSQL or in the fsync'd spool); a call with a
// tombstone is over. Dialog state of answered legs may be attached (opaque JSON) so that the
// next start can send them BYE. While calls are open an "alive" mark is written every
// MarkInterval: the last moment the process is known to have run with them.
//
// Writes are plain write(2) calls without fsync: a kill -9 loses nothing the kernel's page cache
// already holds, which is what a process crash leaves; only a machine crash (power loss, kernel
// panic) can lose the last records, and then the calls' legs are gone too. A torn last line is
// skipped. The file is rewritten (compacted) at Open and whenever it grew past CompactBytes,
// keeping only the open calls; the rewrite is a new file renamed over the old, fsync'd.
//
// One Journal per node and file: two processes must not share a file.
package calljournal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("calljournal: closed")

// Options configure Open. Zero values take the defaults noted.
type Options struct {
	// Path is the journal file. Required; its directory is created.
	Path string
	// MarkInterval is how often an alive mark is written while calls are open (default 1 s).
	// It bounds how far the crash time of a call can be from the real one.
	MarkInterval time.Duration
	// CompactBytes: the file is rewritten with only the open calls once it grew by this much
	// since the last rewrite (default 4 MiB).
	CompactBytes int64
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// OnError, when set, is told each failed write (a metric); the journal keeps going.
	OnError func(error)
}

// OpenCall is a call an earlier process left open: what the journal knows about it.
type OpenCall struct {
	CallID string
	// LastSeq is the highest seq handed to the event log; the closing event comes after it.
	LastSeq int64
	// LastAt is the time of the call's last event; AliveAt the last alive mark written while
	// the call was open (zero when none). The crash happened after both.
	LastAt, AliveAt time.Time
	// What the events said: a person answered (call.answered), a message was left
	// (call.voicemail), the caller left (call.abandoned, Where).
	Answered  bool
	Voicemail bool
	Abandoned string
	// Ending is a call.ended that was journaled but whose acknowledgement was not: it may or may
	// not be durable, so it is emitted again as is (same id and seq: a no-op if it was).
	Ending *callevent.Event
	// Legs are the dialog states attached with Leg, in order.
	Legs []json.RawMessage
}

// EndedAt is the best known time the call ended: the later of its last event and the last
// alive mark.
func (o OpenCall) EndedAt() time.Time {
	if o.AliveAt.After(o.LastAt) {
		return o.AliveAt
	}
	return o.LastAt
}

// record is one line of the journal.
type record struct {
	CallID    string           `json:"c,omitempty"`
	Seq       int64            `json:"s,omitempty"`
	Type      string           `json:"t,omitempty"`
	At        int64            `json:"at,omitempty"` // unix ms
	Answered  bool             `json:"a,omitempty"`
	Voicemail bool             `json:"v,omitempty"`
	Abandoned string           `json:"ab,omitempty"`
	Ending    *callevent.Event `json:"end,omitempty"`
	Done      bool             `json:"done,omitempty"`
	Leg       json.RawMessage  `json:"leg,omitempty"`
	Alive     int64            `json:"alive,omitempty"` // unix ms: every call open now was live then
	// In a rewrite: the call's last alive mark, and that it belongs to a process that died
	// (later marks, of a later process, do not extend it).
	CallAlive int64 `json:"ca,omitempty"`
	Dead      bool  `json:"x,omitempty"`
}

// state is what the journal holds about one open call.
type state struct {
	lastSeq   int64
	lastAt    int64
	answered  bool
	voicemail bool
	abandoned string
	ending    *callevent.Event
	legs      []json.RawMessage
	alive     int64 // unix ms of the last alive mark while the call was open
	dead      bool  // left open by an earlier process: its end is fixed
}

// Journal is the node's journal of open calls. It is safe for concurrent use; mu guards the
// file and the map, and nothing outside the package is called with it held.
type Journal struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	f       *os.File
	calls   map[string]*state
	written int64 // bytes since the last rewrite
	closed  bool

	stop chan struct{}
	done chan struct{}
}

// Open reads the journal an earlier process left, returns the calls it left open (oldest
// first) and starts a fresh journal holding just those, until Done is called for each.
func Open(opts Options) (*Journal, []OpenCall, error) {
	if opts.Path == "" {
		return nil, nil, errors.New("calljournal: Path is required")
	}
	if opts.MarkInterval <= 0 {
		opts.MarkInterval = time.Second
	}
	if opts.CompactBytes <= 0 {
		opts.CompactBytes = 4 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("calljournal: dir: %w", err)
	}
	calls, torn, err := load(opts.Path)
	if err != nil {
		return nil, nil, err
	}
	j := &Journal{opts: opts, log: opts.Logger, calls: calls, stop: make(chan struct{}), done: make(chan struct{})}
	if torn > 0 {
		j.log.Warn("calljournal: skipped torn lines", "path", opts.Path, "lines", torn)
	}
	open := make([]OpenCall, 0, len(calls))
	for id, st := range calls {
		o := OpenCall{CallID: id, LastSeq: st.lastSeq, LastAt: time.UnixMilli(st.lastAt).UTC(),
			Answered: st.answered, Voicemail: st.voicemail, Abandoned: st.abandoned, Ending: st.ending,
			Legs: append([]json.RawMessage(nil), st.legs...)}
		if st.alive > st.lastAt {
			o.AliveAt = time.UnixMilli(st.alive).UTC()
		}
		open = append(open, o)
	}
	sort.Slice(open, func(a, b int) bool {
		if !open[a].LastAt.Equal(open[b].LastAt) {
			return open[a].LastAt.Before(open[b].LastAt)
		}
		return open[a].CallID < open[b].CallID
	})
	j.mu.Lock()
	err = j.rewriteLocked()
	j.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	go j.marks()
	return j, open, nil
}

// load folds the file into the open calls and the last alive mark.
func load(path string) (map[string]*state, int, error) {
	calls := map[string]*state{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return calls, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("calljournal: open: %w", err)
	}
	defer f.Close()
	torn := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r record
		if err := json.Unmarshal(line, &r); err != nil {
			torn++ // the tail of a write the crash cut short
			continue
		}
		if r.Alive > 0 {
			for _, st := range calls {
				if !st.dead {
					st.alive = max(st.alive, r.Alive)
				}
			}
		}
		if r.CallID != "" {
			apply(calls, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("calljournal: read: %w", err)
	}
	for _, st := range calls {
		st.dead = true // the process that had them open is gone
	}
	return calls, torn, nil
}

// apply folds one call record into calls.
func apply(calls map[string]*state, r record) {
	if r.Done {
		delete(calls, r.CallID)
		return
	}
	st := calls[r.CallID]
	if st == nil {
		st = &state{}
		calls[r.CallID] = st
	}
	st.lastSeq = max(st.lastSeq, r.Seq)
	st.lastAt = max(st.lastAt, r.At)
	st.answered = st.answered || r.Answered
	st.voicemail = st.voicemail || r.Voicemail
	if r.Abandoned != "" {
		st.abandoned = r.Abandoned
	}
	if r.Ending != nil {
		st.ending = r.Ending
	}
	if len(r.Leg) > 0 {
		st.legs = append(st.legs, r.Leg)
	}
	st.alive = max(st.alive, r.CallAlive)
	st.dead = st.dead || r.Dead
}

// Record journals e, an event about to be handed to the event log. An error is also reported
// to OnError; the caller goes on with the event either way.
func (j *Journal) Record(e callevent.Event) error {
	r := record{CallID: e.CallID, Seq: e.Seq, Type: e.Type, At: e.At.UnixMilli()}
	switch e.Type {
	case callevent.EventAnswered:
		r.Answered = true
	case callevent.EventVoicemail:
		r.Voicemail = true
	case callevent.EventAbandoned:
		r.Abandoned = e.Where
		if r.Abandoned == "" {
			r.Abandoned = "ivr"
		}
	case callevent.EventEnded:
		ev := e
		r.Ending = &ev
	}
	return j.write(r)
}

// Done journals that the call's call.ended is durable: the call is over.
func (j *Journal) Done(callID string) error {
	return j.write(record{CallID: callID, Done: true})
}

// Leg attaches a leg's dialog state (opaque JSON) to an open call.
func (j *Journal) Leg(callID string, dialog json.RawMessage) error {
	return j.write(record{CallID: callID, Leg: dialog})
}

// Open reports how many calls the journal holds open.
func (j *Journal) Open() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.calls)
}

// live counts the open calls of this process (not those an earlier one left).
func (j *Journal) live() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, st := range j.calls {
		if !st.dead {
			n++
		}
	}
	return n
}

func (j *Journal) write(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return j.failed(fmt.Errorf("calljournal: encode: %w", err))
	}
	b = append(b, '\n')
	j.mu.Lock()
	err = j.writeLocked(r, b)
	j.mu.Unlock()
	if errors.Is(err, ErrClosed) {
		return err // shutting down: the calls left were hung up, nothing to keep
	}
	if err != nil {
		return j.failed(err)
	}
	return nil
}

func (j *Journal) writeLocked(r record, b []byte) error {
	if j.closed {
		return ErrClosed
	}
	if r.CallID != "" {
		if r.Done || r.Type == callevent.EventRecordingReady {
			if _, ok := j.calls[r.CallID]; !ok {
				// Nothing open: no tombstone needed; and call.recording_ready comes after the
				// call's call.ended, whose tombstone may be written already: it must not open
				// the call again (the next start would end it a second time).
				return nil
			}
		}
		apply(j.calls, r)
	}
	if r.Alive > 0 {
		for _, st := range j.calls {
			if !st.dead {
				st.alive = max(st.alive, r.Alive)
			}
		}
	}
	if j.f == nil {
		// An earlier write error left no file: try to start over with the open calls.
		if err := j.rewriteLocked(); err != nil {
			return err
		}
		if r.Done || r.CallID == "" {
			return nil // the rewrite already reflects it
		}
	}
	// One write(2) per record, no fsync: see the package comment.
	if _, err := j.f.Write(b); err != nil {
		// A short write leaves a torn line; the next start skips it. Start a clean file on
		// the next write so later records are not glued to the torn one.
		_ = j.f.Close()
		j.f = nil
		return fmt.Errorf("calljournal: write: %w", err)
	}
	j.written += int64(len(b))
	if j.written >= j.opts.CompactBytes {
		if err := j.rewriteLocked(); err != nil {
			return err
		}
	}
	return nil
}

func (j *Journal) failed(err error) error {
	j.log.Error("calljournal: write failed; calls open now may not be closed after a crash", "err", err)
	if j.opts.OnError != nil {
		j.opts.OnError(err)
	}
	return err
}

// rewriteLocked replaces the file with one holding only the open calls, fsync'd and renamed
// into place (so a crash during the rewrite leaves the old file or the new, never half).
func (j *Journal) rewriteLocked() error {
	tmp := j.opts.Path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("calljournal: rewrite: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	ids := make([]string, 0, len(j.calls))
	for id := range j.calls {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		st := j.calls[id]
		recs := []record{{CallID: id, Seq: st.lastSeq, At: st.lastAt, Answered: st.answered, Voicemail: st.voicemail,
			Abandoned: st.abandoned, Ending: st.ending, CallAlive: st.alive, Dead: st.dead}}
		for _, l := range st.legs {
			recs = append(recs, record{CallID: id, Leg: l})
		}
		for _, r := range recs {
			if err = enc.Encode(r); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.opts.Path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("calljournal: rewrite: %w", err)
	}
	if d, err := os.Open(filepath.Dir(j.opts.Path)); err == nil {
		_ = d.Sync() // the rename itself survives a machine crash
		d.Close()
	}
	nf, err := os.OpenFile(j.opts.Path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("calljournal: reopen: %w", err)
	}
	if j.f != nil {
		_ = j.f.Close()
	}
	j.f, j.written = nf, 0
	return nil
}

// marks writes an alive mark every MarkInterval while calls are open.
func (j *Journal) marks() {
	defer close(j.done)
	t := time.NewTicker(j.opts.MarkInterval)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
		}
		if j.live() == 0 {
			continue
		}
		_ = j.write(record{Alive: j.opts.Now().UnixMilli()})
	}
}

// Close stops the alive marks and closes the file. Calls still open stay in it for the next
// start. It is idempotent.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	f := j.f
	j.f = nil
	j.mu.Unlock()
	close(j.stop)
	<-j.done
	if f != nil {
		return f.Close()
	}
	return nil
}

var _ io.Closer = (*Journal)(nil)
