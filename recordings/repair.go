package recordings

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// headerScan is how much of a file RepairFile reads to find the data chunk.
const headerScan = 64 << 10

// RepairFile makes the WAV file at path consistent after a crash: the data chunk becomes
// everything from the data offset to the end of the file (cut to whole sample frames) and the
// RIFF size follows. It returns the header as it is now and whether it changed anything. A file
// without a readable PCM header is an error wrapping ErrBadWAV. It assumes the data chunk is
// the file's last chunk, as in every file this package writes.
func RepairFile(path string) (Header, bool, error) {
	return repairFile(OSFS{}, path)
}

func repairFile(fsys FS, path string) (Header, bool, error) {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Header{}, false, fmt.Errorf("recordings: repair %s: %w", path, err)
	}
	defer f.Close()
	h, changed, err := repairOpen(f)
	if err != nil {
		return h, false, fmt.Errorf("recordings: repair %s: %w", path, err)
	}
	return h, changed, nil
}

func repairOpen(f File) (Header, bool, error) {
	st, err := f.Stat()
	if err != nil {
		return Header{}, false, err
	}
	size := st.Size()
	buf := make([]byte, min(size, headerScan))
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return Header{}, false, err
	}
	h, err := ParseHeader(buf)
	if err != nil {
		return h, false, err
	}
	data, whole := fixedSizes(h, size)
	if h.Consistent(size) && whole == data {
		return h, false, nil
	}
	if data-whole < int64(h.BlockAlign) && whole != data {
		// A sample frame torn by the crash. (Audio beyond the 32-bit RIFF limit is kept on disk,
		// only not declared.)
		if err := f.Truncate(h.DataOffset + whole); err != nil {
			return h, false, err
		}
	}
	h.DataSize, h.RIFFSize = uint32(whole), uint32(h.DataOffset+whole-8)
	var b [4]byte
	if _, err := f.WriteAt(binary.LittleEndian.AppendUint32(b[:0], h.RIFFSize), 4); err != nil {
		return h, false, err
	}
	if _, err := f.WriteAt(binary.LittleEndian.AppendUint32(b[:0], h.DataSize), h.DataOffset-4); err != nil {
		return h, false, err
	}
	if err := f.Sync(); err != nil {
		return h, false, err
	}
	return h, true, nil
}

// fixedSizes returns the audio bytes a file of size holds after h.DataOffset, and that count cut
// to whole sample frames within the 32-bit RIFF limit.
func fixedSizes(h Header, size int64) (data, whole int64) {
	data = max(size-h.DataOffset, 0)
	block := int64(h.BlockAlign)
	limit := int64(maxDataSize) - h.DataOffset + headerSize
	whole = min(data, limit)
	return data, whole - whole%block
}

// Repaired is one recording Repair completed or one file whose header it fixed.
type Repaired struct {
	Result
	// WasRecording: the metadata said recording, so the process died while writing it. With
	// State ready the gateway emits call.recording_ready {recording_id: ID, seconds: Seconds};
	// with State failed (file missing or unreadable) it notes the failure.
	WasRecording bool
	// Kind is the recording's kind with WasRecording: "call", or KindVoicemail for a
	// voicemail message the process died recording (the gateway then delivers the part on
	// disk as the call's voicemail).
	Kind string
	// HeaderFixed: the header's sizes disagreed with the file and were rewritten.
	HeaderFixed bool
	// Err says why a recording could not be recovered (State failed).
	Err error
}

// Repair runs at start-up, before this node records anything: it completes every recording
// this node (Options.Node) left in state recording — in its metadata journal (a recording
// started or finished while the database was unreachable: its row is inserted now, complete,
// once) or in the database — fixing its file's header, then marking it ready with the duration
// and size found, or failed when the file is gone or unreadable; writes the journal's finished
// rows; and then scans Options.Dir for WAV files whose header disagrees with their size (a
// crash while another row's state was already written, files no row knows) and fixes them.
// Recordings this process is writing are left alone. It returns what it touched; a recording
// is returned with WasRecording once, by the run that completed its row. It needs the
// database; when it fails, what is left stays in the journal and in state recording for the
// next run (and the metadata writer inserts journaled rows as they are meanwhile).
func (s *Service) Repair(ctx context.Context) ([]Repaired, error) {
	seen := map[string]bool{}
	out, err := s.repairJournal(ctx, seen)
	if err != nil {
		return out, err
	}
	rows, err := s.query(ctx, `SELECT `+recordingColumns+` FROM recordings WHERE state = 'recording' AND node = $1
		ORDER BY created_at, id`, s.opts.Node)
	if err != nil {
		return out, fmt.Errorf("recordings: repair: %w", err)
	}
	for _, r := range rows {
		seen[r.Path] = true
		if s.isActive(r.ID) {
			continue
		}
		if s.journalHas(r.ID) {
			// The journal holds a newer row for it (a recording of this process finished
			// meanwhile): the metadata writer brings the database up to date.
			continue
		}
		rep, ok, err := s.repairRow(ctx, r)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, rep)
		}
	}
	err = filepath.WalkDir(s.opts.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == s.opts.Dir && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".wav") {
			return nil
		}
		rel, err := filepath.Rel(s.opts.Dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if seen[rel] {
			return nil
		}
		rep, ok, err := s.repairStray(ctx, rel)
		if err != nil {
			return err
		}
		if ok {
			out = append(out, rep)
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("recordings: repair: scan %s: %w", s.opts.Dir, err)
	}
	return out, nil
}

// repairJournal completes the journal's recordings left in state recording by a process that
// died, and writes its finished rows.
func (s *Service) repairJournal(ctx context.Context, seen map[string]bool) ([]Repaired, error) {
	out, err := s.repairForeign(ctx, seen)
	if err != nil {
		return out, err
	}
	// This process's own log is the metadata writer's: its recordings are live, or their last
	// row is on its way. Their files are not strays.
	for _, p := range s.ownPaths() {
		seen[p] = true
	}
	ids, err := s.journalList()
	if err != nil {
		return out, fmt.Errorf("recordings: repair: %w", err)
	}
	for _, id := range ids {
		// Active first, the entry second: a recording of this process is active before its
		// entry exists and until its final entry is written, so an entry read after the check
		// says recording only when a dead process left it.
		if s.isActive(id) {
			if b, _ := s.journalRead(id); b != nil {
				var r Recording
				if json.Unmarshal(b, &r) == nil {
					seen[r.Path] = true
				}
			}
			continue
		}
		b, err := s.journalRead(id)
		if err != nil {
			return out, fmt.Errorf("recordings: repair: journal %s: %w", id, err)
		}
		if b == nil {
			continue // written meanwhile by the metadata writer
		}
		var r Recording
		if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
			s.refuse(id, b, fmt.Errorf("unreadable journal entry: %v", err))
			continue
		}
		seen[r.Path] = true
		if r.State != StateRecording {
			if err := s.syncID(ctx, id); err != nil {
				return out, fmt.Errorf("recordings: repair: %w", err)
			}
			continue
		}
		rep, row := s.repairedRow(r)
		actx, cancel := context.WithTimeout(ctx, metadataTimeout)
		_, applied, err := s.upsert(actx, row)
		cancel()
		if refusedForGood(err) {
			// Perhaps a race, not the row: the metadata writer inserting the same row meanwhile
			// (syncBatch). Once more, then set aside.
			actx, cancel := context.WithTimeout(ctx, metadataTimeout)
			_, applied, err = s.upsert(actx, row)
			cancel()
		}
		switch {
		case refusedForGood(err):
			s.refuse(id, b, err)
			continue
		case err != nil:
			return out, fmt.Errorf("recordings: repair %s: %w", r.ID, err)
		}
		s.journalRemoveIf(id, b, false)
		if applied {
			out = append(out, rep)
		}
	}
	return out, nil
}

// repairForeign completes what the log segments of dead processes hold: each recording's last
// row, repaired from its file when it says recording (returned: announced once, by the run
// whose write changed the row), written as it is otherwise; the segments are removed once all
// are in the database.
func (s *Service) repairForeign(ctx context.Context, seen map[string]bool) ([]Repaired, error) {
	s.foreignMu.Lock()
	defer s.foreignMu.Unlock()
	fr, err := s.takeForeign()
	if err != nil {
		return nil, fmt.Errorf("recordings: repair: %w", err)
	}
	defer fr.release()
	var out []Repaired
	var plain []journaled
	for _, id := range fr.order {
		r := fr.last[id]
		seen[r.Path] = true
		if s.isActive(id) {
			continue // never a live recording of this process (its writer writes its rows)
		}
		if r.State != StateRecording {
			plain = append(plain, journaled{r: r})
			continue
		}
		rep, row := s.repairedRow(r)
		var applied bool
		for try := 0; try < 2; try++ { // a refusal may be a race with the metadata writer (syncBatch)
			actx, cancel := context.WithTimeout(ctx, metadataTimeout)
			_, applied, err = s.upsert(actx, row)
			cancel()
			if !refusedForGood(err) {
				break
			}
		}
		switch {
		case refusedForGood(err):
			s.setAside(row, err)
			continue
		case err != nil:
			return out, fmt.Errorf("recordings: repair %s: %w", r.ID, err)
		}
		if applied {
			out = append(out, rep)
		}
	}
	for len(plain) > 0 {
		n := min(len(plain), s.opts.MetadataBatch)
		if err := s.syncBatch(ctx, plain[:n]); err != nil {
			return out, fmt.Errorf("recordings: repair: %w", err)
		}
		plain = plain[n:]
	}
	s.finishForeign(fr)
	return out, nil
}

// ownPaths returns the files of this process's live recordings (their rows may not be written
// yet; finished ones have consistent headers).
func (s *Service) ownPaths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.active))
	for _, w := range s.active {
		out = append(out, w.rel)
	}
	return out
}

// restoreHeader gives a recording's file its header back when a power loss left it without one
// — shorter than a header, or a header of zero bytes: created (its directory entry durable,
// the journal's group commit saw to it) but never fsynced since (session 12: the file is no
// longer fsynced at its creation). What follows the header, if anything, is kept; Repair then
// declares it. A missing file stays missing (the recording fails, as before).
func restoreHeader(fsys FS, path string, channels int) bool {
	if channels != 1 && channels != 2 {
		return false
	}
	f, head, _, err := openHead(fsys, path, os.O_RDWR, headerSize)
	if err != nil {
		return false
	}
	defer f.Close()
	if len(head) == headerSize && slices.ContainsFunc(head, func(b byte) bool { return b != 0 }) {
		return false // a header (or something else: not ours to judge)
	}
	if _, err := f.WriteAt(appendHeader(nil, channels, 0), 0); err != nil {
		return false
	}
	return f.Sync() == nil
}

// repairedRow repairs the file of a recording the process died writing and returns the result
// and the row completed from it.
func (s *Service) repairedRow(r Recording) (Repaired, Recording) {
	rep := Repaired{WasRecording: true, Kind: r.Kind, Result: Result{ID: r.ID, CallID: r.CallID, Path: s.abs(r.Path),
		Channels: r.Channels, StartedAt: r.StartedAt, State: StateReady}}
	restored := restoreHeader(s.opts.FS, rep.Path, r.Channels)
	h, changed, err := repairFile(s.opts.FS, rep.Path)
	rep.HeaderFixed = changed || restored
	if err != nil {
		rep.State, rep.Err = StateFailed, err
	} else {
		rep.Duration = time.Duration(h.Frames()) * (time.Second / SampleRate)
		rep.Seconds = int64((rep.Duration + time.Second/2) / time.Second)
		rep.Bytes = h.DataOffset + int64(h.DataSize)
	}
	pauses := r.Pauses
	if n := len(pauses); n > 0 && pauses[n-1].ToMS == nil {
		ms := rep.Duration.Milliseconds()
		pauses[n-1].ToMS = &ms // paused until the crash
	}
	rep.Pauses = pauses
	r.State, r.DurationMS, r.SizeBytes, r.Pauses, r.Error = rep.State, rep.Duration.Milliseconds(), rep.Bytes, pauses, ""
	if rep.Err != nil {
		r.Error = "after a crash: " + rep.Err.Error()
	} else {
		t := s.now().UTC()
		r.ReadyAt = &t
	}
	return rep, r
}

// repairRow completes one row left in state recording; ok is false when the row had moved on
// meanwhile (nothing to announce).
func (s *Service) repairRow(ctx context.Context, r Recording) (Repaired, bool, error) {
	rep, row := s.repairedRow(r)
	ok, err := s.complete(ctx, r.ID, rep.State, rep.Duration, rep.Bytes, s.now(), row.Pauses, row.Error)
	if err != nil {
		return rep, false, fmt.Errorf("recordings: repair %s: %w", r.ID, err)
	}
	return rep, ok, nil
}

// repairStray fixes a file found by the scan when its header disagrees with its size.
func (s *Service) repairStray(ctx context.Context, rel string) (Repaired, bool, error) {
	path := s.abs(rel)
	if s.activePath(rel) || !s.headerStale(path) {
		return Repaired{}, false, nil // ours and live (its row may not be written yet), or fine
	}
	var r Recording
	r, err := scanRecording(s.opts.DB.QueryRow(ctx, `SELECT `+recordingColumns+` FROM recordings
		WHERE path = $1 AND state <> 'deleted'`, rel))
	known := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Repaired{}, false, fmt.Errorf("recordings: repair %s: %w", rel, err)
	}
	if known && (r.State == StateRecording || s.isActive(r.ID)) {
		return Repaired{}, false, nil // another node's live recording, or ours
	}
	h, changed, err := repairFile(s.opts.FS, path)
	if err != nil || !changed {
		return Repaired{}, false, nil // not ours to judge: leave files we cannot read as they are
	}
	rep := Repaired{HeaderFixed: true, Result: Result{Path: path, Channels: int(h.Channels), State: r.State,
		Duration: time.Duration(h.Frames()) * (time.Second / SampleRate), Bytes: h.DataOffset + int64(h.DataSize)}}
	rep.Seconds = int64((rep.Duration + time.Second/2) / time.Second)
	if known {
		rep.ID, rep.CallID, rep.StartedAt = r.ID, r.CallID, r.StartedAt
		if _, err := s.opts.DB.Exec(ctx, `UPDATE recordings SET duration_ms = $2, size_bytes = $3 WHERE id = $1`,
			r.ID, rep.Duration.Milliseconds(), rep.Bytes); err != nil {
			return rep, true, fmt.Errorf("recordings: repair %s: %w", rel, err)
		}
	}
	return rep, true, nil
}

// headerStale reports whether the file's header disagrees with its size (false when unreadable).
func (s *Service) headerStale(path string) bool {
	f, buf, size, err := openHead(s.opts.FS, path, os.O_RDONLY, headerScan)
	if err != nil {
		return false
	}
	f.Close()
	h, err := ParseHeader(buf)
	if err != nil {
		return false
	}
	data, whole := fixedSizes(h, size)
	return !h.Consistent(size) || data != whole
}

// openHead opens path with flag and reads its first n bytes (fewer when the file is shorter);
// it returns the open file (the caller closes it), those bytes and the file's size.
func openHead(fsys FS, path string, flag int, n int64) (File, []byte, int64, error) {
	f, err := fsys.OpenFile(path, flag, 0)
	if err != nil {
		return nil, nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	head := make([]byte, min(st.Size(), n))
	if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, nil, 0, err
	}
	return f, head, st.Size(), nil
}
