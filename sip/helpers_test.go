package sip

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// fakeSink records events in memory; tests await them with waitEnded.
type fakeSink struct {
	mu     sync.Mutex
	events []callevent.Event
	ch     chan callevent.Event
}

func newFakeSink() *fakeSink { return &fakeSink{ch: make(chan callevent.Event, 4096)} }

func (f *fakeSink) Emit(_ context.Context, e callevent.Event) error {
	f.mu.Lock()
	f.events = append(f.events, e)
	f.mu.Unlock()
	select {
	case f.ch <- e:
	default:
	}
	return nil
}

// waitEnded waits for the next call.ended and returns every event of that call.
func (f *fakeSink) waitEnded(t *testing.T, timeout time.Duration) []callevent.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-f.ch:
			if e.Type == callevent.EventEnded {
				return f.callEvents(e.CallID)
			}
		case <-deadline:
			t.Fatalf("no call.ended within %s; events: %+v", timeout, f.all())
			return nil
		}
	}
}

func (f *fakeSink) callEvents(id string) []callevent.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []callevent.Event
	for _, e := range f.events {
		if e.CallID == id {
			out = append(out, e)
		}
	}
	return out
}

func (f *fakeSink) all() []callevent.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]callevent.Event(nil), f.events...)
}

func eventTypes(evs []callevent.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func lastOf(evs []callevent.Event, typ string) *callevent.Event {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == typ {
			return &evs[i]
		}
	}
	return nil
}

// testGateway is a Server started on free loopback ports with an in-memory sink.
type testGateway struct {
	s       *Server
	sink    *fakeSink
	reg     *prometheus.Registry
	summary chan CallSummary
}

// rtpRange picks a free block of 200 ports for the gateway's RTP allocator, below the
// ephemeral range and above the peers' band (see internal/testport).
func rtpRange(t *testing.T) (int, int) {
	base := testport.FreeRange(t, 20000, 32000, 200)
	return base, base + 199
}

func startGateway(t *testing.T, mod func(*Options)) *testGateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	mm, err := media.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := rtpRange(t)
	ports, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	port := testport.FreeUDP(t)
	g := &testGateway{sink: newFakeSink(), reg: reg, summary: make(chan CallSummary, 1024)}
	// The defaults, as a gateway without configuration runs (zero would turn limits off).
	opts := DefaultOptions()
	opts.UDPAddr = fmt.Sprintf("127.0.0.1:%d", port)
	opts.TCPAddr = fmt.Sprintf("127.0.0.1:%d", port)
	opts.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, CallerID: "+15550100"}}
	opts.Ports = ports
	opts.MediaMetrics = mm
	opts.Sink = g.sink
	opts.Registerer = reg
	opts.T1 = 100 * time.Millisecond
	opts.OnCallEnd = func(s CallSummary) { g.summary <- s }
	if os.Getenv("SIP_TEST_DEBUG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if os.Getenv("SIP_TEST_DEBUG") == "all" {
			slog.SetLogLoggerLevel(slog.LevelDebug) // sipgo's own layers log through slog.Default
		}
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		s.Close()
	})
	g.s = s
	return g
}

func (g *testGateway) port() int { return int(g.s.Addr("udp").Port()) }

func (g *testGateway) counter(name string, labels ...string) float64 {
	mfs, err := g.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			}
			if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
			if m.Histogram != nil {
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
		return sum
	}
	return 0
}

var _ = testutil.ToFloat64

// requireSipp returns the sipp path, failing when SWITCHBOARD_REQUIRE_PEERS is set and sipp is
// missing, skipping otherwise.
func requireSipp(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
			t.Fatalf("sipp not installed and SWITCHBOARD_REQUIRE_PEERS is set: %v", err)
		}
		t.Skip("sipp not installed (apt-get install sip-tester)")
	}
	return p
}

// sippProc is a running SIPp.
type sippProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	name string
	errf string // SIPp's -error_file: every unexpected message and timeout, shown on failure
}

// syncBuffer is SIPp's output: exec's copier goroutine writes it while a test's cleanup may
// read it (a failing test logs a peer's output while the peer still runs).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startSipp runs SIPp with scenario testdata/<scenario> in dir (a temp dir holding audio files)
// and bounded timeouts; cleanup kills it.
func startSipp(t *testing.T, dir, scenario string, args ...string) *sippProc {
	t.Helper()
	bin := requireSipp(t)
	sf, err := filepath.Abs(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	cp := testport.FreeUDP(t)
	errf := filepath.Join(t.TempDir(), fmt.Sprintf("sipp-%d-errors.log", cp))
	all := append([]string{"-sf", sf, "-nostdin", "-timeout", "60s", "-timeout_error", "-recv_timeout", "30s",
		"-cp", strconv.Itoa(cp), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-trace_err", "-error_file", errf}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	p := &sippProc{cmd: cmd, out: out, done: make(chan error, 1), name: scenario, errf: errf}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp: %v", err)
	}
	go func() { p.done <- cmd.Wait(); cancel() }()
	t.Cleanup(func() {
		// Always: reading cmd.ProcessState here raced with Wait's write of it in the goroutine
		// above; killing a process that has exited is a harmless error.
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
	return p
}

// wait waits for SIPp to exit and fails the test unless it exited 0 (every call succeeded).
func (p *sippProc) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			errs, _ := os.ReadFile(p.errf)
			t.Fatalf("sipp %s failed: %v\n%s%s\nits error file:\n%s", p.name, err, sippErrors(p.out.String()), tail(p.out.String(), 3000), head(string(errs), 4000))
		}
	case <-time.After(95 * time.Second):
		t.Fatalf("sipp %s did not exit", p.name)
	}
}

// sippErrors picks SIPp's own error lines ("Unable to bind …", scenario errors) out of its
// output: they come before the statistics screens, which fill the tail shown on failure.
func sippErrors(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "rror") || strings.Contains(l, "nable") || strings.Contains(l, "bind") {
			b.WriteString(l)
			b.WriteByte('\n')
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// writeULawWAV writes a WAV file of secs seconds of a 440 Hz tone in G.711 μ-law, for SIPp's
// rtp_stream.
func writeULawWAV(t *testing.T, path string, secs int) {
	t.Helper()
	writeULawWAVHz(t, path, secs, 440)
}

// writeULawWAVHz is writeULawWAV with a tone of hz.
func writeULawWAVHz(t *testing.T, path string, secs int, hz float64) {
	t.Helper()
	n := 8000 * secs
	data := make([]byte, n)
	for i := range data {
		v := int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/8000))
		data[i] = linearToULaw(v)
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+26+12+8+n))
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, uint32(18))
	binary.Write(&b, binary.LittleEndian, uint16(7)) // WAVE_FORMAT_MULAW
	binary.Write(&b, binary.LittleEndian, uint16(1))
	binary.Write(&b, binary.LittleEndian, uint32(8000))
	binary.Write(&b, binary.LittleEndian, uint32(8000))
	binary.Write(&b, binary.LittleEndian, uint16(1))
	binary.Write(&b, binary.LittleEndian, uint16(8))
	binary.Write(&b, binary.LittleEndian, uint16(0))
	b.WriteString("fact")
	binary.Write(&b, binary.LittleEndian, uint32(4))
	binary.Write(&b, binary.LittleEndian, uint32(n))
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(n))
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func linearToULaw(s int16) byte {
	const bias = 0x84
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v = -v
		sign = 0x80
	}
	if v > 32635 {
		v = 32635
	}
	v += bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^(sign | byte(exp<<4) | byte(mant))
}

// udpExchange sends a raw SIP message over UDP to the gateway and returns the first response
// (or "" when none arrives within wait).
func udpExchange(t *testing.T, port int, msg string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lp := c.LocalAddr().(*net.UDPAddr).Port
	msg = strings.ReplaceAll(msg, "LPORT", strconv.Itoa(lp))
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(wait)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		r := string(buf[:n])
		if strings.HasPrefix(r, "SIP/2.0 100") {
			continue
		}
		return r
	}
}

func statusCode(res string) int {
	if !strings.HasPrefix(res, "SIP/2.0 ") || len(res) < 11 {
		return 0
	}
	n, _ := strconv.Atoi(res[8:11])
	return n
}
