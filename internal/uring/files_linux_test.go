//go:build linux

package uring

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needFileRing skips where the kernel refuses io_uring: Fsync and OpenFile then make their
// system calls directly, which the recordings tests cover.
func needFileRing(t *testing.T) {
	t.Helper()
	if err := FileRingErr(); err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
}

// TestFileRingCreatesSyncsAndReportsErrors proves OpenFile and Fsync through the ring behave as
// os.OpenFile and (*os.File).Sync: O_EXCL refuses an existing name with fs.ErrExist, a missing
// directory gives fs.ErrNotExist, a directory can be fsynced, and a closed file is an error.
func TestFileRingCreatesSyncsAndReportsErrors(t *testing.T) {
	needFileRing(t)
	dir := t.TempDir()
	name := filepath.Join(dir, "a.wav")
	f, err := OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("RIFF")); err != nil {
		t.Fatal(err)
	}
	if err := Fsync(f); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	if st, err := f.Stat(); err != nil || st.Mode().Perm() != 0o640&^umask(t) {
		t.Fatalf("stat %v, %v: want mode %v", st, err, os.FileMode(0o640&^umask(t)))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Fsync(f); err == nil {
		t.Fatal("fsync of a closed file: no error")
	}
	if _, err := OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second O_EXCL create: %v, want fs.ErrExist", err)
	}
	if _, err := OpenFile(filepath.Join(dir, "no", "b.wav"), os.O_WRONLY|os.O_CREATE, 0o640); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("create in a missing directory: %v, want fs.ErrNotExist", err)
	}
	d, err := OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := Fsync(d); err != nil {
		t.Fatalf("fsync of the directory: %v", err)
	}
	b, err := os.ReadFile(name)
	if err != nil || string(b) != "RIFF" {
		t.Fatalf("read back %q, %v", b, err)
	}
}

// TestFileRingManyConcurrentRequests loops creates and fsyncs from many goroutines at once,
// more than the ring has entries (under -race: the waiters map, the slots, the reaper), and
// checks every one got its own answer.
func TestFileRingManyConcurrentRequests(t *testing.T) {
	needFileRing(t)
	dir := t.TempDir()
	const workers, each = 200, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := filepath.Join(dir, "f-"+strconv.Itoa(w)+"-"+strconv.Itoa(i))
				f, err := OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					errs <- err
					continue
				}
				if _, err := f.WriteString(name); err != nil {
					errs <- err
				}
				if err := Fsync(f); err != nil {
					errs <- err
				}
				f.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != workers*each {
		t.Fatalf("%d files, %v: want %d", len(ents), err, workers*each)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || string(b) != filepath.Join(dir, e.Name()) {
			t.Fatalf("%s holds %q, %v", e.Name(), b, err)
		}
	}
}

func umask(t *testing.T) os.FileMode {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(f, nil, 0o777); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	return 0o777 &^ st.Mode().Perm()
}

// TestFileRingReaperExitsWhenIdle proves the ring holds no goroutine once no request is in
// flight (the packages' goroutine-leak checks rely on it).
func TestFileRingReaperExitsWhenIdle(t *testing.T) {
	needFileRing(t)
	f, err := OpenFile(filepath.Join(t.TempDir(), "x"), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Fsync(f); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		files.mu.Lock()
		reaping, waiting := files.reaping, len(files.waiters)
		files.mu.Unlock()
		if !reaping && waiting == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reaper still running %v with %d waiters, 10 s after the last request", reaping, waiting)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFileRingWaiterParksInsteadOfHoldingTheP proves what the ring is for: a goroutine whose
// open(2) blocks in the kernel (a FIFO's read end waits for a writer) waits parked on a
// channel, not inside a system call holding a P of the runtime — so with GOMAXPROCS=1 the
// other goroutines run on (a direct os.OpenFile would show the goroutine "[syscall]").
func TestFileRingWaiterParksInsteadOfHoldingTheP(t *testing.T) {
	needFileRing(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := OpenFile(fifo, os.O_RDONLY, 0)
		done <- result{f, err}
	}()
	// Until a writer opens the FIFO the reader's open cannot return: find the goroutine
	// waiting in OpenFile and read its state.
	deadline := time.Now().Add(10 * time.Second)
	state := ""
	for time.Now().Before(deadline) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "uring.OpenFile") {
				state = strings.SplitN(g, "\n", 2)[0]
			}
		}
		if strings.Contains(state, "[chan receive") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(state, "[chan receive") {
		t.Errorf("the goroutine blocked in OpenFile is %q, want parked on its channel ([chan receive])", state)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("open of the FIFO's read end: %v", r.err)
		}
		r.f.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the FIFO's read end did not open within 10 s of its writer")
	}
}
