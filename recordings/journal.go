package recordings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The metadata journal: a recording never waits for PostgreSQL.
//
// Every change of a recording's metadata row (start, pause, resume, finish, discard) is first
// made durable in this node's journal — a line of this process's log under
// Dir/.pending/<node>/, fsynced together with the changes of the same moment (journallog.go) —
// and then handed in memory to one background goroutine, the metadata writer, which upserts
// the rows and moves the log's watermark over them once the database holds what they say. The
// log is the record: the in-memory queue is bounded (Options.MetadataQueue); when it is full,
// or while the database does not answer, the writer instead rescans the journal — at its
// start, and after each failed attempt with a backoff up to Options.MetadataRetry — so a
// database outage of any length costs a line per change on disk (and an id per recording in
// memory, for Pending), and the rows appear complete once the database answers again. A
// restart picks the journal up the same way (the segments a dead process left); the upsert is
// keyed by the recording id, so nothing is ever inserted twice.
//
// Locks: Service.jmu guards the per-recording files of the journal (<id>.json: a version
// before session 12, or a refused row renamed back) and the counts of pending rows, and is
// held only for local file operations, never across a database call. The log has its own
// lock (jlog.mu); foreignMu serialises the taking over of dead processes' segments (the
// writer's scan, Repair) and is held across their database writes. The writer goroutine owns
// the outage state, the backoff and the watermark.

const (
	journalDirName = ".pending"
	journalExt     = ".json"
	refusedExt     = ".refused" // a row the database refused for good, kept for the operator
	tmpExt         = ".tmp"
	// metadataTimeout bounds one attempt to write one row.
	metadataTimeout = 5 * time.Second
)

// journalDir is this node's journal directory.
func (s *Service) journalDir() string {
	return filepath.Join(s.opts.Dir, journalDirName, safeName(s.opts.Node))
}

func (s *Service) journalPath(id string) string {
	return filepath.Join(s.journalDir(), safeName(id)+journalExt)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// journalRead returns a journal file's bytes; nil when there is none (already written).
func (s *Service) journalRead(id string) ([]byte, error) {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	b, err := os.ReadFile(s.journalPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// journalRemoveIf removes a journal file if it still holds b (a change written meanwhile stays
// for the next pass) or, for a refused row, renames it to <id>.json.refused.
func (s *Service) journalRemoveIf(id string, b []byte, refused bool) {
	path := s.journalPath(id)
	s.jmu.Lock()
	defer s.jmu.Unlock()
	cur, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(cur, b) {
		return
	}
	if refused {
		err = os.Rename(path, path+refusedExt)
	} else {
		err = os.Remove(path)
	}
	if err == nil {
		s.addPendingLocked(-1)
	}
}

// addPendingLocked moves the count of per-recording journal files; the caller holds jmu.
func (s *Service) addPendingLocked(d int) {
	s.pending += d
	s.metrics().setPending(s.pending + len(s.pendingIDs))
	s.notifyLocked()
}

// notifyLocked wakes Flush once everything known is written. The caller holds jmu.
func (s *Service) notifyLocked() {
	if s.pending+len(s.pendingIDs) == 0 && s.scanned {
		select {
		case <-s.jzero:
		default:
			close(s.jzero)
		}
	} else {
		select {
		case <-s.jzero:
			s.jzero = make(chan struct{})
		default:
		}
	}
}

// enqueue hands a durable entry to the metadata writer without ever blocking: with the queue
// full the entry waits on disk and the writer rescans the journal.
func (s *Service) enqueue(e *entry) {
	if !s.ensureWriter() {
		return // closed: the journal keeps it for the next start
	}
	select {
	case s.queue <- e:
	default:
		s.requestScan()
	}
}

func (s *Service) requestScan() {
	s.needScan.Store(true)
	select {
	case s.scanKick <- struct{}{}:
	default:
	}
}

// ensureWriter starts the metadata writer goroutine once; false after Close.
func (s *Service) ensureWriter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.wdone == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.wcancel, s.wdone = cancel, make(chan struct{})
		s.needScan.Store(true) // first of all, what a previous process left in the journal
		go s.metadataWriter(ctx, s.wdone)
	}
	return true
}

// Pending is how many recordings' metadata rows wait for the database (recordings with a change
// in the journal known to this process; before the first scan, those a previous process left
// are not counted).
func (s *Service) Pending() int {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	return s.pending + len(s.pendingIDs)
}

// Flush waits until the database holds every metadata change of this node's recordings —
// those of this process and those a previous one left in the journal — or ctx ends (its error
// is returned, with how many rows still wait). It starts the metadata writer if need be. For
// tests and a clean shutdown; nothing on a call's path calls it.
func (s *Service) Flush(ctx context.Context) error {
	if !s.ensureWriter() {
		return errors.New("recordings: flush: closed")
	}
	for {
		s.jmu.Lock()
		n := s.pending + len(s.pendingIDs)
		done := n == 0 && s.scanned
		ch := s.jzero
		s.jmu.Unlock()
		if done {
			s.logSeal(false) // everything written: the log's file goes
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("recordings: flush: %d metadata rows wait for the database: %w", n, context.Cause(ctx))
		}
	}
}

// Close stops the metadata writer. What it had not written stays in the journal, for the next
// start (or Repair) to write. Recordings may still be finished after Close (their rows then
// wait in the journal). Idempotent.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	cancel, done := s.wcancel, s.wdone
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	s.logSeal(true) // its lock released: the next process takes over what is left
}

// metadataWriter is the goroutine that writes journaled rows to the database.
func (s *Service) metadataWriter(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	var delay time.Duration
	var failures int
	for {
		var err error
		if s.needScan.Swap(false) {
			err = s.syncJournal(ctx)
		} else {
			select {
			case <-ctx.Done():
				return
			case e := <-s.queue:
				err = s.syncEntries(ctx, s.gather(ctx, e))
			case <-s.scanKick:
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if failures > 0 {
				s.log.Info("recordings: the database answers again; pending metadata rows written",
					"failed_attempts", failures)
			}
			failures, delay = 0, 0
			continue
		}
		// Everything not written is in the journal: rescan it when the database answers.
		s.needScan.Store(true)
		failures++
		if failures == 1 {
			s.log.Warn("recordings: database unreachable; recordings go on, their metadata rows wait in the journal",
				"journal", s.journalDir(), "pending", s.Pending(), "err", err)
		}
		delay = min(max(2*delay, s.opts.MetadataRetry/10), s.opts.MetadataRetry)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// gather collects the entries queued within MetadataWindow of the first one, up to
// MetadataBatch distinct recordings, so that recordings changing together are written
// together.
func (s *Service) gather(ctx context.Context, first *entry) []*entry {
	es := []*entry{first}
	seen := map[string]bool{first.row.ID: true}
	t := time.NewTimer(s.opts.MetadataWindow)
	defer t.Stop()
	for len(seen) < s.opts.MetadataBatch {
		select {
		case e := <-s.queue:
			es = append(es, e)
			seen[e.row.ID] = true
		case <-t.C:
			return es
		case <-ctx.Done():
			return es
		}
	}
	return es
}

// syncJournal writes every journaled row of this node (in any order: rows are independent).
// It returns the first error that is not the row's fault (the database unreachable); rows the
// database refuses are set aside.
func (s *Service) syncJournal(ctx context.Context) error {
	// The ids queued so far are all in the journal: the scan covers them.
	for drained := false; !drained; {
		select {
		case <-s.queue:
		default:
			drained = true
		}
	}
	if err := s.syncOwnLog(ctx); err != nil {
		return err
	}
	if err := s.syncForeign(ctx); err != nil {
		return err
	}
	// Per-recording files last: a refused row the operator renamed back is the newest word.
	ids, err := s.journalList()
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		n := min(len(ids), s.opts.MetadataBatch)
		if err := s.syncIDs(ctx, ids[:n]); err != nil {
			return err
		}
		ids = ids[n:]
	}
	s.jmu.Lock()
	s.scanned = true
	s.notifyLocked()
	s.jmu.Unlock()
	return nil
}

// journalList lists the journal's per-recording files' ids, removes temporary files a crash
// left behind, and recounts the pending files.
func (s *Service) journalList() ([]string, error) {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	ents, err := os.ReadDir(s.journalDir())
	if errors.Is(err, fs.ErrNotExist) {
		s.pending = 0
		s.metrics().setPending(len(s.pendingIDs))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recordings: journal: %w", err)
	}
	var ids []string
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, tmpExt):
			// Writes happen under jmu: a temporary file seen here is a crash's leftover.
			_ = os.Remove(filepath.Join(s.journalDir(), name))
		case strings.HasSuffix(name, journalExt):
			ids = append(ids, strings.TrimSuffix(name, journalExt))
		}
	}
	s.pending = len(ids)
	s.metrics().setPending(s.pending + len(s.pendingIDs))
	return ids, nil
}

// syncID writes one journaled row. A nil error means done (or nothing to do, or refused and set
// aside); an error means the database did not answer and the row waits.
func (s *Service) syncID(ctx context.Context, id string) error {
	return s.syncIDs(ctx, []string{id})
}

// journaled is a journal entry to write: a per-recording file's id and bytes ("" and nil for
// an entry of the log) and its row.
type journaled struct {
	id string
	b  []byte
	r  Recording
}

// syncIDs writes journaled rows together: one statement (one transaction, one commit) for all
// of them. When the database refuses that statement for what one row holds, each row is
// written alone, so that only the refused one is set aside. A journal entry is removed only
// after the commit that holds it, and only if no later change replaced it meanwhile: a crash
// anywhere leaves the entry for the next scan (or Repair), which writes it again (the upsert
// is keyed by the recording's id). A nil error means done; an error means the database did
// not answer and the rows wait.
func (s *Service) syncIDs(ctx context.Context, ids []string) error {
	var items, later []journaled
	seen := map[string]bool{}
	for _, id := range ids {
		b, err := s.journalRead(id)
		if err != nil {
			return fmt.Errorf("recordings: journal %s: %w", id, err)
		}
		if b == nil {
			continue
		}
		var r Recording
		if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
			s.refuse(id, b, fmt.Errorf("unreadable journal entry: %v", err))
			continue
		}
		if seen[r.ID] {
			// Two entries naming one recording (a file renamed by hand): one statement may
			// not write a row twice, so the second goes alone after the others.
			later = append(later, journaled{id: id, b: b, r: r})
			continue
		}
		seen[r.ID] = true
		items = append(items, journaled{id: id, b: b, r: r})
	}
	if len(items) == 0 {
		return nil
	}
	if err := s.syncBatch(ctx, items); err != nil {
		return err
	}
	for _, it := range later {
		if err := s.syncOne(ctx, it); err != nil {
			return err
		}
	}
	return nil
}

// syncBatch writes journal entries of distinct recordings in one statement; see syncIDs.
func (s *Service) syncBatch(ctx context.Context, items []journaled) error {
	rows := make([]Recording, len(items))
	for i := range items {
		rows[i] = items[i].r
	}
	actx, cancel := context.WithTimeout(ctx, metadataTimeout)
	states, err := s.upsertRows(actx, rows)
	cancel()
	switch {
	case refusedForGood(err):
		// Row by row, so that only a row refused for what it holds is set aside. A lone row
		// gets this second attempt too: a refusal may be a race, not the row — the same
		// recording's row inserted meanwhile by another writer (Repair's, the metadata
		// writer's) makes the insert fail on the unique index of paths (ON CONFLICT arbitrates
		// only on the id) once that writer commits; tried again, the row is there and the
		// upsert updates it.
		for _, it := range items {
			if err := s.syncOne(ctx, it); err != nil {
				return err
			}
		}
		return nil
	case err != nil:
		return err
	}
	for _, it := range items {
		s.written(it, states[it.r.ID])
	}
	return nil
}

// syncOne writes one journaled row alone (a batch the database refused, row by row).
func (s *Service) syncOne(ctx context.Context, it journaled) error {
	actx, cancel := context.WithTimeout(ctx, metadataTimeout)
	st, _, err := s.upsert(actx, it.r)
	cancel()
	switch {
	case refusedForGood(err) && it.id == "":
		s.setAside(it.r, err)
		return nil
	case refusedForGood(err):
		s.refuse(it.id, it.b, err)
		return nil
	case err != nil:
		return err
	}
	s.written(it, st)
	return nil
}

// written finishes a journal entry whose row the database now holds in state st.
func (s *Service) written(it journaled, st State) {
	r := it.r
	if st == StateDeleted && (r.State == StateReady || r.State == StateFailed) {
		// Deleted (CD-6, by another node) while it was being written: the file — closed, its
		// row final — must not come back.
		if err := s.opts.FS.Remove(s.abs(r.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("recordings: remove a file deleted while recording", "recording_id", r.ID, "err", err)
		}
	}
	if it.id != "" {
		s.journalRemoveIf(it.id, it.b, false)
	}
}

// refusedForGood reports a refusal that retrying cannot change (SQLSTATE class 22 data
// exception, 23 integrity constraint violation): the row is set aside rather than retried.
func refusedForGood(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	return pe.Code[:2] == "22" || pe.Code[:2] == "23"
}

func (s *Service) refuse(id string, b []byte, err error) {
	s.metrics().addRefused()
	s.metrics().addError()
	s.log.Error("recordings: metadata row refused by the database; journal entry set aside",
		"recording_id", id, "file", s.journalPath(id)+refusedExt, "err", err)
	s.journalRemoveIf(id, b, true)
}
