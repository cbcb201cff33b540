package recordings

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/media"
)

// The crash test runs this test binary again as a child that records until it is killed.
const (
	envCrashChild = "RECORDINGS_CRASH_CHILD"
	envCrashDB    = "RECORDINGS_CRASH_DB"
	envCrashDir   = "RECORDINGS_CRASH_DIR"
	crashNode     = "crash-node"
	crashFrames   = 1500 // the child gives up after 30 s: the parent kills it long before
)

// crashChild records a stereo call (440 Hz left, 880 Hz right) in real time, printing its
// progress, until it is killed.
func crashChild() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(envCrashDB))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := New(Options{Dir: os.Getenv(envCrashDir), DB: pool, Node: crashNode})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w, err := s.Start(ctx, "call-crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("started %s\n", w.ID())
	left, right := w.CallerTap(), w.AgentTap()
	tick := time.NewTicker(20 * time.Millisecond)
	for k := range crashFrames {
		<-tick.C
		now := time.Now()
		left(packet(media.Received, 0, uint16(k), uint32(k*media.FrameSize), 1, toneFrame(media.PCMU, 440, k), now))
		right(packet(media.Received, 0, uint16(k), uint32(k*media.FrameSize), 2, toneFrame(media.PCMU, 880, k), now))
		if k%5 == 0 {
			fmt.Printf("sent %d\n", k)
		}
	}
	return 3
}

// Rule (issue 8): after SIGKILL mid-call the file is still a valid WAV — a consistent header
// (RIFF = data + 36, the data within the file) declaring the audio its last periodic fsync
// covered (since session 12 the header is rewritten with each fsync, every SyncInterval, not
// after every write) — the file holds the audio up to about a second before the kill, and
// Repair at the next start-up makes the header cover all of it exactly, marks the recording
// ready and returns it for call.recording_ready. The kill comes after the first periodic
// fsync (5 s), so the header declares audio.
func TestCrashSIGKILLLeavesValidWAVAndRepairCompletesIt(t *testing.T) {
	url := pgtest.URL(t)
	dir := t.TempDir()
	var id string
	var started, kill time.Time
	sigkillChild(t, []string{envCrashChild + "=1", envCrashDB + "=" + url, envCrashDir + "=" + dir}, func(f []string) bool {
		if len(f) == 2 && f[0] == "started" {
			id, started = f[1], time.Now()
		}
		if len(f) == 2 && f[0] == "sent" {
			if k, _ := strconv.Atoi(f[1]); k >= 325 { // 6.5 s recorded: past the first periodic fsync
				kill = time.Now()
				return true
			}
		}
		return false
	})
	recorded := kill.Sub(started)
	ctx := ctxTimeout(t) // from the kill: the child recorded 6.5 s of the bound before it

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := newService(t, Options{Dir: dir, DB: pool, Node: crashNode})
	rec, err := s.Recording(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != StateRecording {
		t.Fatalf("state %s after the kill, want recording", rec.State)
	}
	path := filepath.Join(dir, filepath.FromSlash(rec.Path))

	d := readWAV(t, path)
	if d.h.Channels != 2 || int64(d.h.RIFFSize) != int64(d.h.DataSize)+36 || d.h.DataOffset+int64(d.h.DataSize) > d.size {
		t.Fatalf("header after the kill %+v, file %d bytes", d.h, d.size)
	}
	before := d.duration()
	t.Logf("recorded %v before the kill; header declares %v, file holds %v", recorded, before,
		time.Duration((d.size-headerSize)/4)*time.Second/SampleRate)
	// The header was rewritten with the last periodic fsync: it lags the audio by at most
	// SyncInterval + writeInterval + Delay + one visit of the clock (5.9 s), plus scheduling
	// on a loaded machine; it never declares more than the file holds.
	held := time.Duration((d.size-headerSize)/4) * time.Second / SampleRate
	if before <= 0 || before < recorded-DefaultSyncInterval-1800*time.Millisecond || before > held {
		t.Errorf("header declares %v of audio; %v was recorded before the kill, the file holds %v", before, recorded, held)
	}
	end := d.duration() - 100*time.Millisecond
	if seg := d.segment(0, 100*time.Millisecond, end); goertzel(seg, 440) < 100*goertzel(seg, 880) {
		t.Errorf("left channel is not the 440 Hz tone")
	}
	if seg := d.segment(1, 100*time.Millisecond, end); goertzel(seg, 880) < 100*goertzel(seg, 440) {
		t.Errorf("right channel is not the 880 Hz tone")
	}

	reps, err := s.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].ID != id || !reps[0].WasRecording || reps[0].State != StateReady || reps[0].Err != nil {
		t.Fatalf("repair returned %+v", reps)
	}
	d = readWAV(t, path)
	if !d.h.Consistent(d.size) {
		t.Fatalf("header after repair %+v, file %d bytes", d.h, d.size)
	}
	// The file itself lags by as much: writeInterval + Delay + one visit of the clock (0.9 s),
	// plus scheduling.
	if d.duration() < recorded-1300*time.Millisecond || d.duration() < before {
		t.Errorf("after repair %v of audio; %v recorded", d.duration(), recorded)
	}
	if reps[0].Duration != d.duration() || reps[0].Seconds != int64((d.duration()+time.Second/2)/time.Second) {
		t.Errorf("repair result %v / %d s, file %v", reps[0].Duration, reps[0].Seconds, d.duration())
	}
	rec, err = s.Recording(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != StateReady || rec.DurationMS != d.duration().Milliseconds() || rec.SizeBytes != d.size {
		t.Errorf("metadata after repair %+v", rec)
	}
	if sox, err := exec.LookPath("sox"); err == nil {
		out, err := exec.Command(sox, "--i", "-D", path).CombinedOutput()
		if err != nil {
			t.Fatalf("sox --i: %v: %s", err, out)
		}
		secs, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil || time.Duration(secs*float64(time.Second)).Round(time.Millisecond) != d.duration().Round(time.Millisecond) {
			t.Errorf("sox --i -D says %q, our reader %v", out, d.duration())
		}
	}
	if again, err := s.Repair(ctx); err != nil || len(again) != 0 {
		t.Errorf("second repair: %+v, %v", again, err)
	}
}

// sigkillChild runs this test binary again as a child with env added, hands each line it
// prints (split in fields) to line, and SIGKILLs it when line returns true; it fails the test
// if the child ended before that or did not die of the kill. A child left running by a failed
// test is killed at cleanup.
func sigkillChild(t *testing.T, env []string, line func([]string) bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if line(strings.Fields(lines.Text())) {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	if !killed {
		t.Fatalf("the child ended before it was killed: %v", lines.Err())
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v, want killed", err)
	}
}
