//go:build linux

package rtpgen

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SlotLagBoundsUs are the upper bounds, in microseconds, of the buckets of Stats.SlotLagHist
// (the last bucket, one more than these, is everything above 100 ms): how late each slot of
// the sender began after its due time.
var SlotLagBoundsUs = []int64{50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000}

// stallUs is the lag from which a slot starts a stall (Stats.Stalls, Stats.RecentStalls).
const stallUs = 5_000

// Stall is one stretch of slots that began more than 5 ms late: when its first slot was due
// (milliseconds since Run) and the largest lag in it.
type Stall struct {
	AtMs     int64 `json:"at_ms"`
	MaxLagUs int64 `json:"max_lag_us"`
	Slots    int   `json:"slots"`
}

// lagStats is the sender's view of its own schedule, written by the sender, read by Stats.
type lagStats struct {
	hist   [12]atomic.Uint64 // len(SlotLagBoundsUs)+1
	maxUs  atomic.Int64
	stalls atomic.Uint64

	slowYields atomic.Uint64 // yields of the P that took more than 1 ms
	yieldMaxUs atomic.Int64

	mu     sync.Mutex // recent and cur (the sender takes it only at a stall's slots)
	recent []Stall    // the last 16 stalls
	cur    *Stall     // the stall in progress, nil between stalls
}

// note records that the slot due at due (since Run) began lag late (sender goroutine only).
func (s *lagStats) note(due, lag time.Duration) {
	us := max(lag.Microseconds(), 0)
	i := 0
	for i < len(SlotLagBoundsUs) && us > SlotLagBoundsUs[i] {
		i++
	}
	s.hist[i].Add(1)
	if us > s.maxUs.Load() {
		s.maxUs.Store(us)
	}
	if us <= stallUs {
		if s.cur != nil { // a stall ended: the sender is within 5 ms of its schedule again
			s.mu.Lock()
			s.cur = nil
			s.mu.Unlock()
		}
		return
	}
	s.mu.Lock()
	if s.cur == nil {
		s.stalls.Add(1)
		if len(s.recent) == 16 {
			copy(s.recent, s.recent[1:])
			s.recent = s.recent[:15]
		}
		s.recent = append(s.recent, Stall{AtMs: due.Milliseconds()})
		s.cur = &s.recent[len(s.recent)-1]
	}
	s.cur.Slots++
	s.cur.MaxLagUs = max(s.cur.MaxLagUs, us)
	s.mu.Unlock()
}

// yielded records how long one yield of the sender's P took (sender goroutine only).
func (s *lagStats) yielded(d time.Duration) {
	us := d.Microseconds()
	if us > 1000 {
		s.slowYields.Add(1)
	}
	if us > s.yieldMaxUs.Load() {
		s.yieldMaxUs.Store(us)
	}
}

func (s *lagStats) fill(st *Stats) {
	st.SlowYields, st.YieldMaxUs = s.slowYields.Load(), s.yieldMaxUs.Load()
	st.SlotLagHist = make([]uint64, len(s.hist))
	for i := range s.hist {
		st.SlotLagHist[i] = s.hist[i].Load()
	}
	st.SlotLagMaxUs = s.maxUs.Load()
	st.Stalls = s.stalls.Load()
	s.mu.Lock()
	st.RecentStalls = append([]Stall(nil), s.recent...)
	s.mu.Unlock()
}

// The sender's own thread (Options.Thread): while a Gen with one runs, the process has one
// more P than it had, so the sender can hold one for itself without taking it from the rest
// of the program (the benchmark's sbbench runs on one core: GOMAXPROCS 1 otherwise).
var (
	threadMu    sync.Mutex
	threadUsers int
	threadPrev  int
)

func addThreadP() {
	threadMu.Lock()
	defer threadMu.Unlock()
	if threadUsers == 0 {
		threadPrev = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(threadPrev + 1)
	}
	threadUsers++
}

func dropThreadP() {
	threadMu.Lock()
	defer threadMu.Unlock()
	threadUsers--
	if threadUsers == 0 {
		runtime.GOMAXPROCS(threadPrev)
	}
}

// senderThread is the sender's OS thread in Options.Thread mode (sender goroutine only).
type senderThread struct {
	tid    int
	prio   int
	policy string
	mono0  int64 // CLOCK_MONOTONIC at the schedule's start, ns
}

// lock pins the sender goroutine to its thread, names the thread (rtpgen-send, for perf and
// top), asks for a timer slack of 1 µs, and, with prio > 0, makes it SCHED_FIFO at prio: it
// then runs as soon as its sleep ends, ahead of every ordinary process on its core (it sleeps
// between slots, so they keep what it does not use; the kernel's real-time throttling keeps
// 5 % for them whatever happens). A refusal (no CAP_SYS_NICE, a container) leaves it an
// ordinary thread, and policy says so.
func (t *senderThread) lock(prio int) {
	runtime.LockOSThread()
	t.tid, t.prio = unix.Gettid(), prio
	name := []byte("rtpgen-send\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	t.policy = "thread"
	if prio > 0 {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
		if err := unix.SchedSetAttr(0, &attr, 0); err == nil {
			t.policy = "thread-fifo"
		}
	}
}

// yield lets the runtime run the P's other work and sysmon see the P move on. The goroutine
// stays locked: the runtime hands the P to another thread, which runs the scheduler and
// hands it back — an ordinary thread, which may wait its turn behind everything else on the
// core (Stats.SlowYields counts the yields that took more than 1 ms). Unlocking for the yield
// instead (the goroutine then usually goes on on its own thread) was tried and not kept: when
// another thread took the goroutine, the sender ran on an ordinary thread while its old,
// real-time one ran other goroutines, and a yield took up to 0.9 s on the loaded machine.
func (t *senderThread) yield() { runtime.Gosched() }

// unlock restores the thread's policy and name and unpins the goroutine.
func (t *senderThread) unlock() {
	if t.policy == "thread-fifo" {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}
		_ = unix.SchedSetAttr(0, &attr, 0)
	}
	runtime.UnlockOSThread()
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// sleepUntil sleeps until CLOCK_MONOTONIC reaches at (ns) in clock_nanosleep(2) itself, as a
// raw system call: the thread keeps its P, so no other goroutine's work and no scheduler
// hand-off stands between the kernel's timer and the slot (a signal — the runtime's
// preemption — ends the sleep early; the loop then sleeps the rest).
func sleepUntil(at int64) {
	ts := unix.NsecToTimespec(at)
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME,
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno != unix.EINTR {
			return
		}
	}
}

// threadSched is the sender thread's scheduling since it started: CPU time, time spent
// runnable but waiting for the core (schedstat's run_delay: other threads or processes had
// it), and involuntary context switches (preempted while runnable).
type threadSched struct {
	CPU, Wait time.Duration
	Preempted uint64
}

func readThreadSched(tid int) (threadSched, error) {
	var ts threadSched
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		return ts, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return ts, fmt.Errorf("rtpgen: schedstat %q", b)
	}
	run, err1 := strconv.ParseInt(f[0], 10, 64)
	wait, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return ts, fmt.Errorf("rtpgen: schedstat %q", b)
	}
	ts.CPU, ts.Wait = time.Duration(run), time.Duration(wait)
	st, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
	if err != nil {
		return ts, err
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
			ts.Preempted, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return ts, nil
}
