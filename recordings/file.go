package recordings

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/uring"
)

// wavFile is a WAV file growing at its end. Its header is written with zero sizes at creation
// and rewritten with the current sizes by sync, which also fsyncs: after a SIGKILL the file
// holds every byte written (the page cache survives the process) and a header at most one sync
// behind, which Repair makes exact; after a power loss it holds what the last fsync made durable.
// Owned by one goroutine.
type wavFile struct {
	f        File
	path     string
	channels int
	size     int64 // audio bytes written
	hdr      []byte
	closed   bool // under the Writer's fileMu once the Writer has it
}

// createWAV creates path (and its directories) exclusively and writes an empty header. It
// fsyncs nothing (session 12): the caller's journal entry makes the new directory entry durable
// (dirs: the file's directory, and the directories created for it, for the entry's group
// commit to fsync) before any row names the file; the header becomes durable with the file's
// first fsync (every SyncInterval, and at the close), and a power loss before that leaves the
// file empty or without its header, which Repair gives back (restoreHeader).
func createWAV(fsys FS, path string, channels int) (*wavFile, []string, error) {
	dirs := []string{filepath.Dir(path)}
	f, err := fsys.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, fs.ErrNotExist) {
		// A new day: its directories first (their own entries made durable as the file's).
		for d := filepath.Dir(filepath.Dir(path)); ; d = filepath.Dir(d) {
			if _, serr := os.Stat(d); serr == nil || d == filepath.Dir(d) {
				dirs = append(dirs, d)
				break
			}
			dirs = append(dirs, d)
		}
		if err := fsys.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, nil, fmt.Errorf("recordings: create %s: %w", path, err)
		}
		f, err = fsys.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recordings: create %s: %w", path, err)
	}
	w := &wavFile{f: f, path: path, channels: channels, hdr: make([]byte, 0, headerSize)}
	if _, err := f.Write(appendHeader(w.hdr[:0], channels, 0)); err != nil {
		f.Close()
		_ = fsys.Remove(path)
		return nil, nil, fmt.Errorf("recordings: write header of %s: %w", path, err)
	}
	return w, dirs, nil
}

// write appends audio. A short write counts what reached the file.
func (w *wavFile) write(b []byte) error {
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("recordings: write %s: %w", w.path, err)
	}
	return nil
}

// dataSize is the header's data size: whole sample frames, within the 32-bit RIFF limit.
func (w *wavFile) dataSize() uint32 {
	block := int64(w.channels * BitsPerSample / 8)
	return uint32(min(w.size-w.size%block, maxDataSize-maxDataSize%block))
}

// writeHeader rewrites the header's sizes (in the page cache: a SIGKILL keeps it).
func (w *wavFile) writeHeader() error {
	if _, err := w.f.WriteAt(appendHeader(w.hdr[:0], w.channels, w.dataSize()), 0); err != nil {
		return fmt.Errorf("recordings: write header of %s: %w", w.path, err)
	}
	return nil
}

// fsync makes what was written durable (a power loss keeps it). It only reads f, so the
// sync worker may call it while the clock writes (under the Writer's fileMu, never after close).
//
// The sync worker's periodic fsyncs (one per live recording every Options.SyncInterval: 200 a
// second at 1,000 calls) are made directly, holding the P: handed to the file ring (syncFile)
// they cost the media plane 13 points of its core at 1,000 recorded calls in the same runs
// (84 % → 97 %; BENCHMARKS.md, session 13). No call waits for them.
func (w *wavFile) fsync() error {
	return w.syncWith(w.f.Sync)
}

// syncWith fsyncs with sync, naming the file in its error.
func (w *wavFile) syncWith(sync func() error) error {
	if err := sync(); err != nil {
		return fmt.Errorf("recordings: sync %s: %w", w.path, err)
	}
	return nil
}

// close rewrites the header's sizes, fsyncs and closes; the file is then a complete WAV file.
// Its fsync goes through the file ring (syncFile): the call's end waits for it.
func (w *wavFile) close() error {
	w.closed = true
	err := w.writeHeader()
	if err == nil {
		err = w.syncWith(func() error { return syncFile(w.f) })
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("recordings: close %s: %w", w.path, cerr)
	}
	return err
}

// safeName keeps a call id usable as a file name: letters, digits, '-', '_', '.', others '_'.
func safeName(callID string) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, callID)
	s = strings.TrimLeft(s, ".")
	if len(s) > 120 {
		s = s[:120]
	}
	if s == "" {
		s = "call"
	}
	return s
}

// maxNameTries bounds the search for a free file name when a call is recorded more than once.
const maxNameTries = 100

// createUnique creates dir/YYYY/MM/DD/<call id><suffix>.wav, or -2, -3, … when taken, and
// returns the file, its path relative to dir and the directories to fsync (createWAV).
func createUnique(fsys FS, dir, callID, suffix string, at time.Time, channels int) (*wavFile, string, []string, error) {
	day := at.UTC().Format("2006/01/02")
	base := safeName(callID) + suffix
	for i := 1; i <= maxNameTries; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		rel := filepath.Join(filepath.FromSlash(day), name+".wav")
		w, dirs, err := createWAV(fsys, filepath.Join(dir, rel), channels)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return w, filepath.ToSlash(rel), dirs, err
	}
	return nil, "", nil, fmt.Errorf("recordings: create %s in %s: %d names taken", base, day, maxNameTries)
}

// syncFile fsyncs f: an *os.File through an io_uring worker where the kernel allows
// (uring.Fsync), so that the goroutine waiting for the disk holds no P of the Go runtime
// (with GOMAXPROCS=1, every call's goroutines would wait behind it); another File (a test's)
// by its Sync.
func syncFile(f File) error {
	if of, ok := f.(*os.File); ok {
		return uring.Fsync(of)
	}
	return f.Sync()
}
