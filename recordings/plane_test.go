//go:build linux

package recordings

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/bench/rtpgen"
	"github.com/switchboard-voice/switchboard/media"
)

// The media-plane profile (issue 18): N bridged calls on loopback, both legs of each fed
// 50 packets/s of PCMU by bench/rtpgen running in a child process (so its CPU is not ours),
// each call recorded as the gateway records it (one stereo Writer tapping the carrier leg).
// It measures what the media plane costs per packet and holds per call and writes pprof
// profiles. It is a measurement, not a test: it runs only when asked, never in `make test`.
//
//	SWITCHBOARD_PLANE_CALLS=500     calls (two endpoints each); unset: the test is skipped
//	SWITCHBOARD_PLANE_RECORD=0      recording off (default on)
//	SWITCHBOARD_PLANE_SECONDS=15    the measured window
//	SWITCHBOARD_PLANE_OUT=dir       write cpu.pprof, allocs.pprof and result.json there
//	SWITCHBOARD_PLANE_GEN_CPU=1     pin the generator child to that CPU (taskset)
//	SWITCHBOARD_PLANE_PERF=1        count system calls and context switches over the window with
//	                                perf stat (tracepoints, which work where hardware counters do
//	                                not): figures that do not depend on the machine's load
const (
	envPlanePerf   = "SWITCHBOARD_PLANE_PERF"
	envPlaneCalls  = "SWITCHBOARD_PLANE_CALLS"
	envPlaneRecord = "SWITCHBOARD_PLANE_RECORD"
	envPlaneSecs   = "SWITCHBOARD_PLANE_SECONDS"
	envPlaneOut    = "SWITCHBOARD_PLANE_OUT"
	envPlaneGenCPU = "SWITCHBOARD_PLANE_GEN_CPU"
	envPlaneChild  = "SWITCHBOARD_PLANE_GEN_CHILD" // the child: how many legs to play
)

// planeResult is what one run measured.
type planeResult struct {
	Calls             int     `json:"calls"`
	Record            bool    `json:"record"`
	WindowS           float64 `json:"window_s"`
	LoadAvg           string  `json:"loadavg"`
	PacketsForwarded  uint64  `json:"packets_forwarded"`
	CPUusPerPacket    float64 `json:"cpu_us_per_packet"`
	UserUsPerPacket   float64 `json:"user_us_per_packet"`
	SysUsPerPacket    float64 `json:"sys_us_per_packet"`
	CPUShare          float64 `json:"cpu_share"` // of one core
	AllocsPerPacket   float64 `json:"allocs_per_packet"`
	BytesPerPacket    float64 `json:"alloc_bytes_per_packet"`
	GoroutinesPerCall float64 `json:"goroutines_per_call"`
	FDsPerCall        float64 `json:"fds_per_call"`
	HeapKiBPerCall    float64 `json:"heap_inuse_kib_per_call"`
	StackKiBPerCall   float64 `json:"stack_inuse_kib_per_call"`
	RSSKiBPerCall     float64 `json:"rss_kib_per_call"`
	SoRcvbuf          int     `json:"so_rcvbuf"`
	SoSndbuf          int     `json:"so_sndbuf"`
	// CoreBusy is how busy the CPU this process is pinned to was in the window, from
	// /proc/stat: user + system + softirq + irq. The kernel accounts softirq time (loopback
	// delivery, the UDP receive path) to the CPU, not to the process: CPUShare leaves it out.
	// Zero unless the process runs on exactly one CPU.
	CoreBusy    float64 `json:"core_busy,omitempty"`
	CoreSoftirq float64 `json:"core_softirq,omitempty"`
	// SockDrops is the kernel's drops on the endpoints' sockets over the window
	// (/proc/net/udp's drops column of the allocator's ports): a receive queue overflowed.
	SockDrops  uint64  `json:"sock_drops"`
	SchedP50us float64 `json:"sched_latency_p50_us"`
	SchedP99us float64 `json:"sched_latency_p99_us"`
	// Per forwarded packet, from perf stat (SWITCHBOARD_PLANE_PERF).
	PerPacket    map[string]float64 `json:"per_packet,omitempty"`
	GenSent      uint64             `json:"gen_sent"`
	GenReceived  uint64             `json:"gen_received"`
	GenSeqLost   uint64             `json:"gen_seq_lost"`
	GenLateTicks uint64             `json:"gen_late_ticks"`
}

// TestMediaPlaneProfile is the harness (see above).
func TestMediaPlaneProfile(t *testing.T) {
	calls, _ := strconv.Atoi(os.Getenv(envPlaneCalls))
	if calls <= 0 {
		t.Skipf("%s not set: the media-plane profile runs only when asked", envPlaneCalls)
	}
	record := os.Getenv(envPlaneRecord) != "0"
	window := 15 * time.Second
	if s, err := strconv.Atoi(os.Getenv(envPlaneSecs)); err == nil && s > 0 {
		window = time.Duration(s) * time.Second
	}
	outDir := os.Getenv(envPlaneOut)

	// The generator child: 2 legs per call.
	args := []string{os.Args[0], "-test.run=^$"}
	if cpu := os.Getenv(envPlaneGenCPU); cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), envPlaneChild+"="+strconv.Itoa(2*calls))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	if !lines.Scan() {
		t.Fatal("generator child said nothing")
	}
	var legPorts []int
	for _, f := range strings.Fields(lines.Text()) {
		p, _ := strconv.Atoi(f)
		legPorts = append(legPorts, p)
	}
	if len(legPorts) != 2*calls {
		t.Fatalf("generator child bound %d legs, want %d", len(legPorts), 2*calls)
	}

	var svc *Service
	if record {
		svc = newService(t, Options{})
	}
	mm, err := media.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := media.NewPortAllocator(loopbackAddr, 30000, 30000+4*calls+400)
	if err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	before := sampleMem()
	type call struct {
		a, b *media.Endpoint
		w    *Writer
	}
	cs := make([]call, calls)
	gwPorts := make([]string, 0, 2*calls)
	for i := range cs {
		var eps [2]*media.Endpoint
		for j := range eps {
			ep, err := media.NewEndpoint(media.EndpointOptions{Allocator: alloc, Metrics: mm,
				MediaTimeout: media.DefaultMediaTimeout, HoldTimeout: media.DefaultHoldTimeout,
				RTCPInterval: media.DefaultRTCPInterval, LearningWindow: media.DefaultLearningWindow,
				SignalSource: loopbackAddr})
			if err != nil {
				t.Fatal(err)
			}
			ep.SetCodec(0, media.PCMU)
			ep.SetDTMFPayloadType(101)
			ep.SetRemote(netip.AddrPortFrom(loopbackAddr, uint16(legPorts[2*i+j])))
			eps[j] = ep
			gwPorts = append(gwPorts, strconv.Itoa(int(ep.LocalAddr().Port())))
		}
		cs[i].a, cs[i].b = eps[0], eps[1]
		if _, err := media.Bridge(eps[0], eps[1]); err != nil {
			t.Fatal(err)
		}
		if record {
			w, err := svc.Start(ctxTimeout(t), fmt.Sprintf("plane-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			cs[i].w = w
			eps[0].AddTap(w.Tap(Left, Right))
		}
	}
	defer func() {
		for _, c := range cs {
			c.a.Close()
			c.b.Close()
			if c.w != nil {
				c.w.Finish(context.Background())
			}
		}
	}()
	fmt.Fprintln(stdin, strings.Join(gwPorts, " "))

	// Every leg latched and forwarding, then 3 s to settle.
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range cs {
		for c.a.Stats().PacketsSent == 0 || c.b.Stats().PacketsSent == 0 {
			if time.Now().After(deadline) {
				t.Fatal("not every leg forwards within 30 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(3 * time.Second)
	runtime.GC()
	held := sampleMem()
	if outDir != "" {
		if f, err := os.Create(filepath.Join(outDir, "heap.pprof")); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	fds := countFDs(t)

	var res planeResult
	res.Calls, res.Record, res.WindowS = calls, record, window.Seconds()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAvg = strings.TrimSpace(string(b))
	}
	n := float64(calls)
	res.GoroutinesPerCall = float64(held.goroutines-before.goroutines) / n
	res.FDsPerCall = float64(fds-before.fds) / n
	res.HeapKiBPerCall = float64(held.heapInuse-before.heapInuse) / 1024 / n
	res.StackKiBPerCall = float64(held.stackInuse-before.stackInuse) / 1024 / n
	res.RSSKiBPerCall = float64(held.rssKiB-before.rssKiB) / n
	res.SoRcvbuf, res.SoSndbuf = sockBufs(t)

	// The window.
	forwarded := func() uint64 {
		var s uint64
		for _, c := range cs {
			s += c.a.Stats().PacketsSent + c.b.Stats().PacketsSent
		}
		return s
	}
	var cpuProf *os.File
	if outDir != "" {
		if cpuProf, err = os.Create(filepath.Join(outDir, "cpu.pprof")); err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(cpuProf); err != nil {
			t.Fatal(err)
		}
	}
	var perf *perfStat
	if os.Getenv(envPlanePerf) != "" {
		perf = startPerf(t)
	}
	schedBefore := schedHist()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	core := pinnedCPU()
	drops0, st0 := udpDrops(30000, 30000+4*calls+400), cpuStat(core)
	ru0, p0, t0 := rusage(t), forwarded(), time.Now()
	time.Sleep(window)
	ru1, p1, t1 := rusage(t), forwarded(), time.Now()
	drops1, st1 := udpDrops(30000, 30000+4*calls+400), cpuStat(core)
	res.SockDrops = drops1 - drops0
	if core >= 0 && st1.total > st0.total {
		d := float64(st1.total - st0.total)
		res.CoreBusy = float64(st1.busy-st0.busy) / d
		res.CoreSoftirq = float64(st1.softirq-st0.softirq) / d
	}
	if perf != nil {
		res.PerPacket = perf.stop(t, float64(p1-p0))
	}
	runtime.ReadMemStats(&ms1)
	schedAfter := schedHist()
	if cpuProf != nil {
		pprof.StopCPUProfile()
		cpuProf.Close()
		f, err := os.Create(filepath.Join(outDir, "allocs.pprof"))
		if err != nil {
			t.Fatal(err)
		}
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
		f, err = os.Create(filepath.Join(outDir, "goroutines.txt"))
		if err != nil {
			t.Fatal(err)
		}
		pprof.Lookup("goroutine").WriteTo(f, 1)
		f.Close()
	}
	pk := float64(p1 - p0)
	user := float64(ru1.user - ru0.user)
	sys := float64(ru1.sys - ru0.sys)
	res.PacketsForwarded = p1 - p0
	res.UserUsPerPacket = user / 1e3 / pk
	res.SysUsPerPacket = sys / 1e3 / pk
	res.CPUusPerPacket = (user + sys) / 1e3 / pk
	res.CPUShare = (user + sys) / float64(t1.Sub(t0).Nanoseconds())
	res.AllocsPerPacket = float64(ms1.Mallocs-ms0.Mallocs) / pk
	res.BytesPerPacket = float64(ms1.TotalAlloc-ms0.TotalAlloc) / pk
	res.SchedP50us, res.SchedP99us = schedQuantiles(schedBefore, schedAfter)

	fmt.Fprintln(stdin, "stop")
	if lines.Scan() {
		var st rtpgen.Stats
		if err := json.Unmarshal(lines.Bytes(), &st); err == nil {
			res.GenSent, res.GenReceived, res.GenSeqLost, res.GenLateTicks = st.Sent, st.Received, st.SeqLost, st.LateTicks
		}
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("media plane profile:\n%s", out)
	if outDir != "" {
		os.WriteFile(filepath.Join(outDir, "result.json"), out, 0o644)
	}
}

var loopbackAddr = netip.MustParseAddr("127.0.0.1")

// planeChild is the generator: it binds n legs, prints their ports, reads the gateway's port
// of each, plays them all until told to stop, and prints its counters as JSON.
func planeChild(n int) int {
	g, err := rtpgen.New(rtpgen.Options{PortMin: 36000, PortMax: 60000}, n)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer g.Close()
	var ports []string
	for _, l := range g.Legs() {
		ports = append(ports, strconv.Itoa(l.Port()))
	}
	fmt.Println(strings.Join(ports, " "))
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	if !in.Scan() {
		return 2
	}
	g.Run()
	for i, f := range strings.Fields(in.Text()) {
		p, _ := strconv.Atoi(f)
		if err := g.Start(g.Legs()[i], netip.AddrPortFrom(loopbackAddr, uint16(p))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	in.Scan() // "stop" or EOF
	g.StopSending()
	b, _ := json.Marshal(g.Stats())
	fmt.Println(string(b))
	in.Scan()
	return 0
}

type memSample struct {
	goroutines, fds               int
	heapInuse, stackInuse, rssKiB uint64
}

func sampleMem() memSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{goroutines: runtime.NumGoroutine(), heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				s.rssKiB, _ = strconv.ParseUint(f[1], 10, 64)
			}
		}
	}
	if es, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.fds = len(es)
	}
	return s
}

func countFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// sockBufs reads SO_RCVBUF and SO_SNDBUF of a UDP socket opened as the allocator opens them
// (net.ListenUDP, no buffer options: the kernel's defaults, net.core.rmem_default/wmem_default).
func sockBufs(t *testing.T) (rcv, snd int) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopbackAddr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, _ := c.SyscallConn()
	raw.Control(func(fd uintptr) {
		rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	return rcv, snd
}

// pinnedCPU is the one CPU this process may run on, or -1.
func pinnedCPU() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return -1
}

type cpuTicks struct{ busy, softirq, total uint64 }

// cpuStat reads one CPU's line of /proc/stat (zero for cpu < 0).
func cpuStat(cpu int) cpuTicks {
	var c cpuTicks
	b, err := os.ReadFile("/proc/stat")
	if err != nil || cpu < 0 {
		return c
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 8 || f[0] != "cpu"+strconv.Itoa(cpu) {
			continue
		}
		var v [7]uint64 // user nice system idle iowait irq softirq
		for i := range v {
			v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
		c.busy = v[0] + v[1] + v[2] + v[5] + v[6]
		c.softirq = v[6]
		c.total = c.busy + v[3] + v[4]
	}
	return c
}

// udpDrops sums the kernel's drop counters of the IPv4 UDP sockets bound to ports [lo, hi].
func udpDrops(lo, hi int) uint64 {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0
	}
	var sum uint64
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 13 {
			continue
		}
		_, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil || int(p) < lo || int(p) > hi {
			continue
		}
		d, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
		sum += d
	}
	return sum
}

type cpuTimes struct{ user, sys int64 } // ns

func rusage(t *testing.T) cpuTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return cpuTimes{user: ru.Utime.Nano(), sys: ru.Stime.Nano()}
}

func schedHist() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	h := s[0].Value.Float64Histogram()
	return &metrics.Float64Histogram{Counts: append([]uint64(nil), h.Counts...), Buckets: h.Buckets}
}

// schedQuantiles returns p50 and p99 of the scheduler latencies recorded between a and b (µs,
// each the upper bound of its bucket).
func schedQuantiles(a, b *metrics.Float64Histogram) (p50, p99 float64) {
	d := make([]uint64, len(b.Counts))
	var total uint64
	for i := range d {
		d[i] = b.Counts[i] - a.Counts[i]
		total += d[i]
	}
	if total == 0 {
		return 0, 0
	}
	q := func(f float64) float64 {
		want := uint64(math.Ceil(f * float64(total)))
		var c uint64
		for i, n := range d {
			c += n
			if c >= want {
				return b.Buckets[i+1] * 1e6
			}
		}
		return math.Inf(1)
	}
	return q(0.5), q(0.99)
}

// perfEvents are what perf stat counts: every system call, those of the media plane by name,
// and the scheduler's context switches.
var perfEvents = []string{"raw_syscalls:sys_enter", "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_recvmmsg",
	"syscalls:sys_enter_sendto", "syscalls:sys_enter_epoll_pwait", "syscalls:sys_enter_futex",
	"syscalls:sys_enter_write", "syscalls:sys_enter_pwrite64", "syscalls:sys_enter_fsync", "syscalls:sys_enter_sendmmsg", "syscalls:sys_enter_io_uring_enter", "syscalls:sys_enter_nanosleep", "context-switches"}

type perfStat struct {
	cmd *exec.Cmd
	out string
}

// startPerf attaches perf stat to this process.
func startPerf(t *testing.T) *perfStat {
	out := filepath.Join(t.TempDir(), "perf.csv")
	cmd := exec.Command("perf", "stat", "-x,", "-o", out, "-e", strings.Join(perfEvents, ","), "-p", strconv.Itoa(os.Getpid()))
	if err := cmd.Start(); err != nil {
		t.Fatalf("perf stat: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // perf says nothing when it is attached: give it time
	return &perfStat{cmd: cmd, out: out}
}

// stop ends perf stat and returns each event's count ÷ packets (a short event name).
func (p *perfStat) stop(t *testing.T, packets float64) map[string]float64 {
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	b, err := os.ReadFile(p.out)
	if err != nil {
		t.Fatalf("perf stat: %v", err)
	}
	m := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ",")
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(f[2], "syscalls:sys_enter_"), "raw_syscalls:sys_enter")
		if name == "" {
			name = "syscalls"
		}
		m[name] = math.Round(v/packets*1e5) / 1e5
	}
	return m
}
