package recordings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/internal/uring"
)

// The journal's log: every change of a recording's metadata row, appended to one file of this
// process and fsynced in groups (session 12, issue 17).
//
// Until session 12 each change was a file of its own (<id>.json: written, fsynced, stat'ed and
// renamed; then read back twice and removed by the metadata writer): about twenty file system
// calls and two fsyncs a call. Now a change is a line of this process's current segment,
// Dir/.pending/<node>/<time>-<pid>.log:
//
//	<seq> <the whole row as JSON>\n
//
// Appenders (Start, Pause, Resume, Finish, Discard, on their callers' goroutines) add their
// line to the open batch; the first of them finding no write in progress becomes the batch's
// leader — group commit, no goroutine of its own —: it fsyncs the directories of the batch's
// new WAV files (a new file's directory entry must be durable before a row names it), writes
// every line with one write(2) and fsyncs the segment once; every appender of the batch then
// returns. The lines' sequence numbers are given by the leader, so a failed batch (its
// callers get the error, the segment is cut back) leaves no hole.
//
// Once durable, the batch's entries are handed to the metadata writer in memory, in sequence
// order (it never reads them back); it writes them in batches and moves the log's watermark
// (done: every entry up to it is in the database, or set aside) over them in order. A
// segment is removed once the watermark passed its last entry: segments are sealed at
// segmentSize, and Flush and Close remove the current one when everything in it is written, so
// in normal operation the directory holds one small file. When entries do not reach the writer
// (its queue full, the database unreachable) the writer rescans the log from the watermark
// instead: what the file says is the record, memory holds only what is queued.
//
// A crash keeps what it kept before: the line is durable before Start, Pause, Resume or Finish
// return (a SIGKILL keeps even more: the page cache), a segment of a dead process is read by
// the next one (its writer's scan, Repair), which writes each recording's last row and removes
// the segment once all are in the database; the upsert is keyed by the recording id, so a
// crash between the commit and the removal writes nothing twice. A torn last line (a power
// loss during the write) belongs to an append that never returned: it is skipped. Each
// process holds an flock on its open segment, so a segment is taken over only from a process
// that is gone.
//
// Per-recording files (<id>.json, left by a version before session 12, or a refused row the
// operator renamed back from <id>.json.refused) are still read and written as before.

const (
	logExt = ".log"
	newExt = ".new" // a segment being created (renamed to .log once locked)
	// segmentSize seals a segment: later entries go to a new one, and the old one is removed
	// once the watermark passed its last entry. About 2,000 calls' start and end rows.
	segmentSize = 1 << 20
)

// entry is one journaled change: its sequence number in this process's log and the row as it
// stands after the change.
type entry struct {
	seq uint64
	row Recording
}

// logBatch is the group of appends one leader writes with one write(2) and one fsync.
type logBatch struct {
	entries []*entry
	lines   [][]byte // each entry's row as JSON
	dirs    []string // directories to fsync before the lines are written
	done    bool     // under jlog.mu
	err     error
}

// segment is one file of this process's log.
type segment struct {
	name string
	f    *os.File // holding its flock until it is removed (or Close releases it)
	size int64    // bytes durable (under jlog.mu)
	last uint64   // sequence number of its last entry (under jlog.mu)
}

// jlog is this process's log. mu guards every field; the file is written only by the holder
// of flushing (a batch's leader, or Flush and Close sealing the open segment), without mu.
type jlog struct {
	mu       sync.Mutex
	cond     sync.Cond // on mu: a batch done, flushing released
	cur      *logBatch // the batch appends join; nil: none yet
	flushing bool
	next     uint64     // sequence number of the last durable entry (the first is 1)
	done     uint64     // the watermark: every entry up to it is written (the metadata writer's)
	segs     []*segment // this process's segments, oldest first
	open     *segment   // the segment appended to; nil: the next batch opens one
	buf      []byte     // the leader's write buffer
	writes   int        // batches written (tests: the group commit)
}

// journalAppend makes r durable in the log (with the directories in dirs, for a new file) and
// hands it to the metadata writer. Only local disk I/O, shared with the appends of the same
// moment: it never waits on the database.
func (s *Service) journalAppend(r Recording, dirs []string) error {
	if r.Pauses == nil {
		r.Pauses = []Pause{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("recordings: journal %s: %w", r.ID, err)
	}
	s.pendingAdd(r.ID, 1)
	if err := s.logAppend(&entry{row: r}, b, dirs); err != nil {
		s.pendingAdd(r.ID, -1)
		return fmt.Errorf("recordings: journal %s: %w", r.ID, err)
	}
	s.jmu.Lock()
	if s.pendingIDs[r.ID] > 0 { // not written meanwhile
		s.unwritten[r.ID] = r
	}
	s.jmu.Unlock()
	return nil
}

// unwrittenRow returns the row this process journaled last for recording id while the
// database has not been given it yet.
func (s *Service) unwrittenRow(id string) (Recording, bool) {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	r, ok := s.unwritten[id]
	return r, ok
}

// logAppend adds e to the open batch and returns once the batch is durable (or failed),
// leading the write itself when no other is in progress.
func (s *Service) logAppend(e *entry, line []byte, dirs []string) error {
	l := &s.jl
	l.mu.Lock()
	if l.cond.L == nil {
		l.cond.L = &l.mu
	}
	if l.cur == nil {
		l.cur = &logBatch{}
	}
	b := l.cur
	b.entries = append(b.entries, e)
	b.lines = append(b.lines, line)
	for _, d := range dirs {
		if !slices.Contains(b.dirs, d) {
			b.dirs = append(b.dirs, d)
		}
	}
	for !b.done {
		if l.flushing {
			l.cond.Wait()
			continue
		}
		l.flushing = true
		fb := l.cur
		l.cur = nil
		first := l.next + 1
		l.mu.Unlock()
		n, err := s.logWrite(fb, first)
		l.mu.Lock()
		if err == nil {
			l.writes++
			l.open.size += n
			l.open.last = first + uint64(len(fb.entries)) - 1
			l.next = l.open.last
			if l.open.size >= segmentSize {
				l.open = nil // sealed: removed once the watermark passes it
			}
			// Handed over in order, before the next leader may write: the writer's watermark
			// relies on it.
			l.mu.Unlock()
			for _, e := range fb.entries {
				s.enqueue(e)
			}
			l.mu.Lock()
		}
		fb.done, fb.err = true, err
		l.flushing = false
		l.cond.Broadcast()
	}
	err := b.err
	l.mu.Unlock()
	return err
}

// logWrite writes a batch (its leader, holding flushing): the new files' directories fsynced,
// then every line with one write(2), then one fsync. On failure the segment is cut back to
// what was durable, so the lines of callers told of the failure never come back.
func (s *Service) logWrite(b *logBatch, first uint64) (int64, error) {
	l := &s.jl
	if l.open == nil {
		seg, err := s.openSegment()
		if err != nil {
			return 0, err
		}
		l.mu.Lock()
		seg.last = l.next
		l.segs = append(l.segs, seg)
		l.open = seg
		l.mu.Unlock()
	}
	for _, d := range b.dirs {
		syncDir(d) // as before session 12, a directory that cannot be fsynced is no error
	}
	buf := l.buf[:0]
	for i, line := range b.lines {
		b.entries[i].seq = first + uint64(i)
		buf = strconv.AppendUint(buf, b.entries[i].seq, 10)
		buf = append(buf, ' ')
		buf = append(buf, line...)
		buf = append(buf, '\n')
	}
	l.buf = buf
	if cap(l.buf) > 1<<20 {
		l.buf = nil // a burst's buffer is not kept
	}
	f := l.open.f
	_, err := f.Write(buf)
	if err == nil {
		err = syncFile(f)
	}
	if err != nil {
		l.mu.Lock()
		size := l.open.size
		l.mu.Unlock()
		_ = f.Truncate(size)
		return 0, err
	}
	return int64(len(buf)), nil
}

// openSegment creates a new segment of this process's log, locked, its directory entry durable.
// It is created under a name no scan reads (.new) and renamed once locked, so that no scan —
// of this process (Repair, while a batch opens a segment) or of another — ever takes a live
// segment for a dead process's.
func (s *Service) openSegment() (*segment, error) {
	dir := s.journalDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		name := fmt.Sprintf("%019d-%d%s", time.Now().UnixNano()+int64(i), os.Getpid(), logExt)
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path+newExt, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
		if errors.Is(err, fs.ErrExist) && i < 100 {
			continue
		}
		if err != nil {
			return nil, err
		}
		fail := func(err error) (*segment, error) {
			f.Close()
			_ = os.Remove(path + newExt)
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
			return fail(fmt.Errorf("lock %s: %w", name, err))
		} // another error: a filesystem without locks (the segment is then as before session 12: unguarded)
		if _, err := os.Stat(path); err == nil {
			return fail(fmt.Errorf("journal segment %s exists", name))
		}
		if err := os.Rename(path+newExt, path); err != nil {
			return fail(err)
		}
		if err := syncDir(dir); err != nil {
			f.Close()
			_ = os.Remove(path)
			return nil, err
		}
		return &segment{name: name, f: f}, nil
	}
}

// syncDir fsyncs a directory (its entries: new files, removals).
func syncDir(dir string) error {
	d, err := uring.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = uring.Fsync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// logExclusive runs f holding flushing (no batch is written meanwhile).
func (s *Service) logExclusive(f func()) {
	l := &s.jl
	l.mu.Lock()
	if l.cond.L == nil {
		l.cond.L = &l.mu
	}
	for l.flushing {
		l.cond.Wait()
	}
	l.flushing = true
	l.mu.Unlock()
	f()
	l.mu.Lock()
	l.flushing = false
	l.cond.Broadcast()
	l.mu.Unlock()
}

// logSeal removes the open segment when every entry in it is written (Flush: the directory is
// empty again in normal operation); with release (Close) it also seals it and releases the
// locks of every segment left, so that a next process may take them over.
func (s *Service) logSeal(release bool) {
	s.logExclusive(func() {
		l := &s.jl
		l.mu.Lock()
		defer l.mu.Unlock()
		if seg := l.open; seg != nil && (release || seg.last <= l.done) {
			l.open = nil
		}
		s.removeSegments(l.passedLocked())
		if !release {
			return
		}
		for _, seg := range l.segs {
			if seg.f != nil {
				seg.f.Close()
				seg.f = nil
			}
		}
	})
}

// logAdvance moves the watermark over the written entries es (in sequence order; an entry
// after a hole — entries the writer never got — waits for the scan that covers the hole),
// counts them no longer pending and removes the sealed segments the watermark passed. Only the
// metadata writer calls it.
func (s *Service) logAdvance(es []*entry) {
	l := &s.jl
	var ids []string
	l.mu.Lock()
	for _, e := range es {
		if e.seq == l.done+1 {
			l.done = e.seq
			ids = append(ids, e.row.ID)
		}
	}
	// Removed under mu (rarely: a sealed segment), so that no scan takes a segment this
	// process is done with for a dead process's.
	s.removeSegments(l.passedLocked())
	l.mu.Unlock()
	for _, id := range ids {
		s.pendingAdd(id, -1)
	}
}

// passedLocked takes the sealed segments the watermark passed out of segs. The caller holds mu.
func (l *jlog) passedLocked() []*segment {
	var gone []*segment
	l.segs = slices.DeleteFunc(l.segs, func(seg *segment) bool {
		if seg != l.open && seg.last <= l.done {
			gone = append(gone, seg)
			return true
		}
		return false
	})
	return gone
}

// removeSegments removes written segments, then releases their locks.
func (s *Service) removeSegments(segs []*segment) {
	for _, seg := range segs {
		if err := os.Remove(filepath.Join(s.journalDir(), seg.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("recordings: remove a written journal segment", "file", seg.name, "err", err)
		}
		if seg.f != nil {
			seg.f.Close()
			seg.f = nil
		}
	}
}

// pendingAdd counts a journaled change of id waiting for the database (d = 1) or written
// (d = -1): Pending counts the recordings with at least one.
func (s *Service) pendingAdd(id string, d int) {
	s.jmu.Lock()
	n := s.pendingIDs[id] + d
	if n <= 0 {
		delete(s.pendingIDs, id)
		delete(s.unwritten, id)
	} else {
		s.pendingIDs[id] = n
	}
	s.metrics().setPending(s.pending + len(s.pendingIDs))
	s.notifyLocked()
	s.jmu.Unlock()
}

// logLine is one line of a segment read back.
type logLine struct {
	seq uint64
	row Recording
}

// parseSegment reads a segment's lines. A line that cannot be read is skipped (the last one:
// torn by a power loss during its append, which never returned; another: logged).
func (s *Service) parseSegment(name string, data []byte) []logLine {
	var out []logLine
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // torn: its append never returned
		}
		line := data[:i]
		data = data[i+1:]
		sp := bytes.IndexByte(line, ' ')
		var ll logLine
		var err error
		if sp < 0 {
			err = errors.New("no sequence number")
		} else if ll.seq, err = strconv.ParseUint(string(line[:sp]), 10, 64); err == nil {
			err = json.Unmarshal(line[sp+1:], &ll.row)
		}
		if err == nil && ll.row.ID == "" {
			err = errors.New("no recording id")
		}
		if err != nil {
			if len(data) > 0 { // not the last line: worth a look
				s.metrics().addError()
				s.log.Error("recordings: unreadable journal line skipped", "file", name, "err", err)
			}
			continue
		}
		out = append(out, ll)
	}
	return out
}

// syncEntries writes entries handed over by the log (in sequence order) in one statement and
// moves the watermark over them. Entries the watermark passed already (a scan covered them)
// are skipped.
func (s *Service) syncEntries(ctx context.Context, es []*entry) error {
	l := &s.jl
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	var items []journaled
	var fresh []*entry
	idx := map[string]int{}
	for _, e := range es {
		if e.seq <= done {
			continue
		}
		fresh = append(fresh, e)
		if i, ok := idx[e.row.ID]; ok {
			items[i].r = e.row // the later change wins
			continue
		}
		idx[e.row.ID] = len(items)
		items = append(items, journaled{r: e.row})
	}
	if len(items) == 0 {
		return nil
	}
	if err := s.syncBatch(ctx, items); err != nil {
		return err
	}
	s.logAdvance(fresh)
	return nil
}

// syncOwnLog writes what this process's log holds beyond the watermark (read from the
// segments: entries the writer's queue could not take, or a batch that failed), in batches of
// MetadataBatch recordings, moving the watermark along.
func (s *Service) syncOwnLog(ctx context.Context) error {
	l := &s.jl
	type part struct {
		name string
		size int64
	}
	l.mu.Lock()
	done := l.done
	var parts []part
	for _, seg := range l.segs {
		if seg.last > done {
			parts = append(parts, part{seg.name, seg.size})
		}
	}
	l.mu.Unlock()
	var batch []*entry
	idx := map[string]int{}
	var items []journaled
	write := func() error {
		if len(items) == 0 {
			return nil
		}
		if err := s.syncBatch(ctx, items); err != nil {
			return err
		}
		s.logAdvance(batch)
		batch, items = batch[:0], items[:0]
		clear(idx)
		return nil
	}
	for _, p := range parts {
		data, err := os.ReadFile(filepath.Join(s.journalDir(), p.name))
		if err != nil {
			return fmt.Errorf("recordings: journal %s: %w", p.name, err)
		}
		data = data[:min(int64(len(data)), p.size)]
		for _, ll := range s.parseSegment(p.name, data) {
			if ll.seq <= done {
				continue
			}
			if _, ok := idx[ll.row.ID]; !ok && len(items) == s.opts.MetadataBatch {
				if err := write(); err != nil {
					return err
				}
			}
			batch = append(batch, &entry{seq: ll.seq, row: ll.row})
			if i, ok := idx[ll.row.ID]; ok {
				items[i].r = ll.row
				continue
			}
			idx[ll.row.ID] = len(items)
			items = append(items, journaled{r: ll.row})
		}
	}
	return write()
}

// foreign is what the segments of dead processes hold: each recording's last row, in the
// order of their first change.
type foreign struct {
	files []*os.File // locked
	names []string
	order []string
	last  map[string]Recording
}

// takeForeign locks and reads the segments in the journal directory that are not this
// process's and that no live process holds (the caller holds foreignMu).
func (s *Service) takeForeign() (*foreign, error) {
	dir := s.journalDir()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return &foreign{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recordings: journal: %w", err)
	}
	s.jl.mu.Lock()
	own := map[string]bool{}
	for _, seg := range s.jl.segs {
		own[seg.name] = true
	}
	s.jl.mu.Unlock()
	fr := &foreign{last: map[string]Recording{}}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, logExt) || own[name] {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
		if err != nil {
			continue // removed meanwhile
		}
		if errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), syscall.EWOULDBLOCK) {
			f.Close() // a live process's open segment: its writer writes it
			continue
		}
		data, err := io.ReadAll(f)
		if err != nil {
			f.Close()
			fr.release()
			return nil, fmt.Errorf("recordings: journal %s: %w", name, err)
		}
		fr.files, fr.names = append(fr.files, f), append(fr.names, name)
		for _, ll := range s.parseSegment(name, data) {
			if _, ok := fr.last[ll.row.ID]; !ok {
				fr.order = append(fr.order, ll.row.ID)
			}
			fr.last[ll.row.ID] = ll.row
		}
	}
	return fr, nil
}

// release closes the segments (their locks go with them).
func (fr *foreign) release() {
	for _, f := range fr.files {
		f.Close()
	}
	fr.files = nil
}

// finish removes the segments once every row they hold is written, then releases them.
func (s *Service) finishForeign(fr *foreign) {
	for _, name := range fr.names {
		if err := os.Remove(filepath.Join(s.journalDir(), name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("recordings: remove a written journal segment", "file", name, "err", err)
		}
	}
	fr.release()
}

// syncForeign writes what dead processes' segments hold, each recording's last row as it is
// (a recording left in state recording stays so for Repair), in batches, and removes the
// segments.
func (s *Service) syncForeign(ctx context.Context) error {
	s.foreignMu.Lock()
	defer s.foreignMu.Unlock()
	fr, err := s.takeForeign()
	if err != nil {
		return err
	}
	defer fr.release()
	for _, id := range fr.order {
		s.pendingAdd(id, 1)
	}
	defer func() {
		for _, id := range fr.order {
			s.pendingAdd(id, -1) // written, or back on disk for the next scan
		}
	}()
	ids := fr.order
	for len(ids) > 0 {
		n := min(len(ids), s.opts.MetadataBatch)
		items := make([]journaled, n)
		for i, id := range ids[:n] {
			items[i] = journaled{r: fr.last[id]}
		}
		if err := s.syncBatch(ctx, items); err != nil {
			return err
		}
		ids = ids[n:]
	}
	s.finishForeign(fr)
	return nil
}

// setAside keeps a refused row of the log for the operator as <id>.json.refused (rename it to
// <id>.json to have it written again).
func (s *Service) setAside(r Recording, err error) {
	s.metrics().addRefused()
	s.metrics().addError()
	path := s.journalPath(r.ID) + refusedExt
	s.log.Error("recordings: metadata row refused by the database; journal entry set aside",
		"recording_id", r.ID, "file", path, "err", err)
	b, jerr := json.Marshal(r)
	if jerr == nil {
		jerr = writeSynced(path, b)
	}
	if jerr != nil {
		s.log.Error("recordings: could not set a refused row aside", "recording_id", r.ID, "err", jerr)
	}
}

// journalHas reports whether the journal holds a change of recording id not yet written.
func (s *Service) journalHas(id string) bool {
	s.jmu.Lock()
	n := s.pendingIDs[id]
	s.jmu.Unlock()
	if n > 0 {
		return true
	}
	b, err := s.journalRead(id)
	return err != nil || b != nil
}
