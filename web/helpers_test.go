package web

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

// TestMain fails the package if any test leaves a goroutine behind (a closed page frees
// everything).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every await of these tests.
const wait = 10 * time.Second

// fakeAuth knows agent1 (id 1) and agent2 (id 2), password agentpass.
type fakeAuth struct{}

func (fakeAuth) Login(_ context.Context, email, password string) (Agent, error) {
	if password != "agentpass" {
		return Agent{}, ErrBadCredentials
	}
	switch email {
	case "agent1@example.com":
		return Agent{ID: 1, Email: email, Name: "Agent One"}, nil
	case "agent2@example.com":
		return Agent{ID: 2, Email: email, Name: "Agent Two"}, nil
	}
	return Agent{}, ErrBadCredentials
}

// fakeACD records what the page asked for.
type fakeACD struct {
	mu      sync.Mutex
	states  map[int64]ivr.AgentState
	actions []string
	changed chan string // every action, for tests that await one
}

func newFakeACD() *fakeACD {
	return &fakeACD{states: map[int64]ivr.AgentState{}, changed: make(chan string, 256)}
}

func (f *fakeACD) record(a string) {
	f.mu.Lock()
	f.actions = append(f.actions, a)
	f.mu.Unlock()
	select {
	case f.changed <- a:
	default:
	}
}

func (f *fakeACD) SetState(id int64, st ivr.AgentState) (ivr.AgentStatus, error) {
	if id != 1 && id != 2 {
		return ivr.AgentStatus{}, ivr.ErrUnknownAgent
	}
	f.mu.Lock()
	f.states[id] = st
	f.mu.Unlock()
	f.record("state:" + string(st))
	return ivr.AgentStatus{Agent: ivr.Agent{ID: id}, State: st}, nil
}

func (f *fakeACD) Agent(id int64) (ivr.AgentStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.states[id]
	if !ok {
		st = ivr.StateOffline
	}
	return ivr.AgentStatus{Agent: ivr.Agent{ID: id}, State: st}, nil
}

func (f *fakeACD) Hold(_ context.Context, callID string) error {
	f.record("hold:" + callID)
	return nil
}

func (f *fakeACD) Resume(_ context.Context, callID string) error {
	f.record("resume:" + callID)
	return nil
}

func (f *fakeACD) Transfer(_ context.Context, callID string, to ivr.TransferTo) error {
	if to.Queue == "nowhere" {
		return ivr.ErrUnknownQueue
	}
	f.record("transfer:" + callID + ":" + to.Queue)
	return nil
}

// count is how many times the page asked for a.
func (f *fakeACD) count(a string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, x := range f.actions {
		if x == a {
			n++
		}
	}
	return n
}

func (f *fakeACD) did(a string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.actions {
		if x == a {
			return true
		}
	}
	return false
}

// testAllocator gives RTP ports on loopback from a random range.
func testAllocator(t testing.TB, pairs int) *media.PortAllocator {
	t.Helper()
	// Below Linux's ephemeral range (32768+), where other processes' sockets come and go, and
	// wide enough that the allocator, which skips ports in use, always finds a free pair.
	base := 21000 + 2*rand.IntN(5000)
	pairs = max(pairs, 32)
	a, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), base, base+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// harness is a Server on a loopback httptest server with the fakes.
type harness struct {
	srv  *Server
	acd  *fakeACD
	rtc  *media.WebRTC
	http *httptest.Server
	mux  *http.ServeMux
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 16)})
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessWith(t, opts, rtc)
}

// newHarnessWith is newHarness on rtc (closed at the end of the test).
func newHarnessWith(t *testing.T, opts Options, rtc *media.WebRTC) *harness {
	t.Helper()
	acd := newFakeACD()
	opts.Auth, opts.ACD, opts.WebRTC = fakeAuth{}, acd, rtc
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := newTestHTTP(t, mux)
	t.Cleanup(func() {
		srv.Close()
		rtc.Close()
	})
	return &harness{srv: srv, acd: acd, rtc: rtc, http: hs, mux: mux}
}

// newTestHTTP serves mux on a loopback port until the test ends.
func newTestHTTP(t *testing.T, mux *http.ServeMux) *httptest.Server {
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs
}

// carrier is the caller's side of a call: a media.Endpoint (what sip would give ivr) fed by a
// raw UDP RTP peer on loopback that sends a 440 Hz tone and listens for what comes back.
type carrier struct {
	ep    *media.Endpoint
	conn  *net.UDPConn
	stop  chan struct{}
	wg    sync.WaitGroup
	heard chan float64 // frequencies detected in what the carrier receives (1 kHz only)
	dtmf  chan rune
}

func newCarrier(t *testing.T, alloc *media.PortAllocator) *carrier {
	t.Helper()
	ep, err := media.NewEndpoint(media.EndpointOptions{Allocator: alloc, RTCPInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	ep.SetCodec(0, media.PCMU)
	ep.SetDTMFPayloadType(101)
	ep.SetRemote(conn.LocalAddr().(*net.UDPAddr).AddrPort())
	c := &carrier{ep: ep, conn: conn, stop: make(chan struct{}), heard: make(chan float64, 64), dtmf: make(chan rune, 64)}
	c.wg.Add(2)
	go c.send(440)
	go c.listen()
	t.Cleanup(c.close)
	return c
}

func (c *carrier) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.conn.Close()
	c.wg.Wait()
	c.ep.Close()
}

// send paces 20 ms PCMU frames of freq to the endpoint, for at most 120 s.
func (c *carrier) send(freq float64) {
	defer c.wg.Done()
	pcm := make([]int16, 8000)
	for i := range pcm {
		pcm[i] = int16(12000 * math.Sin(2*math.Pi*freq*float64(i)/8000))
	}
	frames := make([]byte, len(pcm))
	media.PCMU.Encode(frames, pcm)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	dst := c.ep.LocalAddr()
	for i := range 6000 {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		off := (i % 50) * media.FrameSize
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * media.FrameSize), SSRC: 42},
			Payload: frames[off : off+media.FrameSize]}).Marshal()
		if _, err := c.conn.WriteToUDPAddrPort(b, dst); err != nil {
			return
		}
	}
}

// listen reads what the gateway sends the carrier: audio (Goertzel on 250 ms windows: a 1 kHz
// tone is reported on heard) and RFC 4733 events (reported once per event on dtmf).
func (c *carrier) listen() {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	var win []int16
	var lastEvTS uint32
	var seenEv bool
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var p rtp.Packet
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		switch p.PayloadType {
		case 101:
			ev, err := media.ParseTelephoneEvent(p.Payload)
			if err != nil || (seenEv && p.Timestamp == lastEvTS) {
				continue
			}
			seenEv, lastEvTS = true, p.Timestamp
			if d, ok := media.DigitOf(ev.Event); ok {
				select {
				case c.dtmf <- d:
				default:
				}
			}
		case 0:
			pcm := make([]int16, len(p.Payload))
			media.PCMU.Decode(pcm, p.Payload)
			win = append(win, pcm...)
			if len(win) >= 2000 {
				if toneIn(win, 1000) {
					select {
					case c.heard <- 1000:
					default:
					}
				}
				win = win[:0]
			}
		}
	}
}

// goertzel is the relative power of freq in samples at 8 kHz.
func goertzel(samples []int16, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/8000)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return (s1*s1 + s2*s2 - coeff*s1*s2) / float64(len(samples)*len(samples))
}

// toneIn reports a clear tone at freq: well above two other frequencies and above silence.
func toneIn(pcm []int16, freq float64) bool {
	on := goertzel(pcm, freq)
	return on > 100 && on > 30*goertzel(pcm, freq*1.37) && on > 30*goertzel(pcm, freq*0.61)
}

// writeToneWAV writes secs seconds of a freq Hz sine as 16-bit mono PCM WAV at rate Hz.
func writeToneWAV(rate, secs int, freq float64) []byte {
	n := rate * secs
	b := make([]byte, 44+2*n)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		v := int16(16000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	return b
}
