package recordings

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/media"
)

// TestMain runs the crash test's child when asked to, and otherwise fails the package if any
// test leaves a goroutine behind (writers' goroutines end with Finish).
func TestMain(m *testing.M) {
	if os.Getenv(envCrashChild) != "" {
		os.Exit(crashChild())
	}
	if os.Getenv(envJournalChild) != "" {
		os.Exit(journalChild())
	}
	if n, _ := strconv.Atoi(os.Getenv(envPlaneChild)); n > 0 {
		os.Exit(planeChild(n))
	}
	goleak.VerifyTestMain(m)
}

// wait bounds every await in these tests.
const wait = 10 * time.Second

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// clock is a settable clock for tests that feed taps faster than real time. Its readings keep
// the monotonic reading of the base, like media's TapPacket.At.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// newService returns a Service on a fresh migrated database and a temporary directory, with
// metrics on a registry of its own.
func newService(t testing.TB, opts Options) *Service {
	t.Helper()
	if opts.DB == nil {
		opts.DB = pgtest.Pool(t)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Node == "" {
		opts.Node = "test-node"
	}
	if opts.Metrics == nil {
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		opts.Metrics = m
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// flush waits (bounded) until the database holds every metadata row of s.
func flush(t testing.TB, s *Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// sine returns n samples of freq Hz at about −6 dBFS starting at sample offset.
func sine(freq float64, offset, n int) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(16000 * math.Sin(2*math.Pi*freq*float64(offset+i)/SampleRate))
	}
	return pcm
}

// toneFrame encodes the 20 ms frame number k of a continuous freq Hz tone with codec c.
func toneFrame(c media.Codec, freq float64, k int) []byte {
	out := make([]byte, media.FrameSize)
	c.Encode(out, sine(freq, k*media.FrameSize, media.FrameSize))
	return out
}

// goertzel returns the power of freq in samples at 8 kHz, normalised by length.
func goertzel(samples []int16, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/SampleRate)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	if len(samples) == 0 {
		return 0
	}
	return (s1*s1 + s2*s2 - coeff*s1*s2) / float64(len(samples)*len(samples))
}

// energy is the mean square of samples.
func energy(samples []int16) float64 {
	var e float64
	for _, x := range samples {
		e += float64(x) * float64(x)
	}
	if len(samples) == 0 {
		return 0
	}
	return e / float64(len(samples))
}

// wavFileData is a parsed WAV file.
type wavFileData struct {
	h    Header
	size int64
	ch   [][]int16 // per channel
}

// readWAV parses a file with our own reader; only the samples the header declares are read.
func readWAV(t testing.TB, path string) wavFileData {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	end := min(h.DataOffset+int64(h.DataSize), int64(len(b)))
	data := b[h.DataOffset:end]
	d := wavFileData{h: h, size: int64(len(b)), ch: make([][]int16, h.Channels)}
	block := int(h.BlockAlign)
	for i := 0; i+block <= len(data); i += block {
		for c := range int(h.Channels) {
			d.ch[c] = append(d.ch[c], int16(binary.LittleEndian.Uint16(data[i+2*c:])))
		}
	}
	return d
}

// seconds is the audio length the header declares.
func (d wavFileData) duration() time.Duration {
	return time.Duration(d.h.Frames()) * time.Second / SampleRate
}

// segment returns channel c's samples in [from, to).
func (d wavFileData) segment(c int, from, to time.Duration) []int16 {
	a, b := int(from*SampleRate/time.Second), int(to*SampleRate/time.Second)
	s := d.ch[c]
	a, b = min(max(a, 0), len(s)), min(max(b, 0), len(s))
	return s[a:b]
}

// packet builds a tapped PCMU/PCMA packet.
func packet(flow media.Flow, pt uint8, seq uint16, ts, ssrc uint32, payload []byte, at time.Time) media.TapPacket {
	return media.TapPacket{Flow: flow, PayloadType: pt, Sequence: seq, Timestamp: ts, SSRC: ssrc, Payload: payload, At: at}
}
