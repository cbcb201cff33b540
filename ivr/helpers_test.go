package ivr

import (
	"context"
	"fmt"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/media"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every await in these tests.
const wait = 5 * time.Second

// --- a fake clock -------------------------------------------------------------------------

type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	added  chan struct{} // poked when a timer is created
}

type fakeTimer struct {
	clk  *fakeClock
	at   time.Time
	c    chan time.Time
	f    func()
	dead bool
}

func newFakeClock(t0 time.Time) *fakeClock {
	return &fakeClock{now: t0, added: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration, f func()) *fakeTimer {
	c.mu.Lock()
	t := &fakeTimer{clk: c, at: c.now.Add(d), f: f}
	if f == nil {
		t.c = make(chan time.Time, 1)
	}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	select {
	case c.added <- struct{}{}:
	default:
	}
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) Timer            { return c.add(d, nil) }
func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer { return c.add(d, f) }

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.dead
	t.dead = true
	return was
}

// pending counts live timers due at or before now+d.
func (c *fakeClock) pending(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.dead && !t.at.After(c.now.Add(d)) {
			n++
		}
	}
	return n
}

// awaitTimer waits until a live timer is due within d from now (a goroutine armed it).
func (c *fakeClock) awaitTimer(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(wait)
	for c.pending(d) == 0 {
		select {
		case <-c.added:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no timer due within %s was armed", d)
		}
	}
}

// advance moves the clock and fires due timers in order.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.dead && !t.at.After(end) {
			due = append(due, t)
		}
	}
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	c.now = end
	for _, t := range due {
		t.dead = true
	}
	live := c.timers[:0]
	for _, t := range c.timers {
		if !t.dead {
			live = append(live, t)
		}
	}
	c.timers = live
	c.mu.Unlock()
	for _, t := range due {
		if t.f != nil {
			t.f()
		} else {
			t.c <- end
		}
	}
}

// --- events -------------------------------------------------------------------------------

type eventLog struct {
	mu  sync.Mutex
	evs []callevent.Event
	ch  chan callevent.Event
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan callevent.Event, 256)} }

func (l *eventLog) Emit(e callevent.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
	l.ch <- e
}

// next awaits the next event of type typ for call (others are skipped).
func (l *eventLog) next(t testing.TB, callID, typ string) callevent.Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case e := <-l.ch:
			if e.Type == typ && (callID == "" || e.CallID == callID) {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %s event for %q within %s; got %v", typ, callID, wait, l.types(callID))
		}
	}
}

// types lists the event types of a call so far, in order.
func (l *eventLog) types(callID string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.evs {
		if e.CallID == callID {
			out = append(out, e.Type)
		}
	}
	return out
}

func (l *eventLog) all(callID string) []callevent.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []callevent.Event
	for _, e := range l.evs {
		if e.CallID == callID {
			out = append(out, e)
		}
	}
	return out
}

// --- legs ---------------------------------------------------------------------------------

// fakeLeg is a caller without media (ACD logic tests), or with an endpoint.
type fakeLeg struct {
	id   string
	ep   *media.Endpoint
	done chan struct{}
	once sync.Once
}

func newFakeLeg(id string) *fakeLeg { return &fakeLeg{id: id, done: make(chan struct{})} }

func (l *fakeLeg) CallID() string            { return l.id }
func (l *fakeLeg) Endpoint() *media.Endpoint { return l.ep }
func (l *fakeLeg) Done() <-chan struct{}     { return l.done }
func (l *fakeLeg) hangup()                   { l.once.Do(func() { close(l.done) }) }

var loopback = netip.MustParseAddr("127.0.0.1")

func testAllocator(t testing.TB, pairs int) *media.PortAllocator {
	t.Helper()
	// Below Linux's ephemeral range (32768+), where other processes' sockets come and go, and
	// wide enough that the allocator, which skips ports in use, always finds a free pair.
	base := 21000 + 2*rand.IntN(5000)
	pairs = max(pairs, 32)
	a, err := media.NewPortAllocator(loopback, base, base+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// mediaPair returns the gateway's endpoint for a caller and the "carrier" endpoint facing it,
// both PCMU with telephone-event 101, on loopback.
func mediaPair(t testing.TB) (gw, carrier *media.Endpoint) {
	t.Helper()
	alloc := testAllocator(t, 4)
	mk := func() *media.Endpoint {
		e, err := media.NewEndpoint(media.EndpointOptions{Allocator: alloc, RTCPInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		e.SetCodec(0, media.PCMU)
		e.SetDTMFPayloadType(101)
		return e
	}
	gw, carrier = mk(), mk()
	gw.SetRemote(carrier.LocalAddr())
	carrier.SetRemote(gw.LocalAddr())
	return gw, carrier
}

// audioTap records what the carrier receives: per packet its sequence number and the
// frequency energy of interest.
type audioTap struct {
	ch chan media.TapPacket
}

func tapReceived(e *media.Endpoint) *audioTap {
	a := &audioTap{ch: make(chan media.TapPacket, 4096)}
	e.AddTap(func(p media.TapPacket) {
		if p.Flow != media.Received || p.PayloadType != 0 {
			return
		}
		p.Payload = append([]byte(nil), p.Payload...)
		select {
		case a.ch <- p:
		default:
		}
	})
	return a
}

// next awaits the next received audio packet.
func (a *audioTap) next(t testing.TB) media.TapPacket {
	t.Helper()
	select {
	case p := <-a.ch:
		return p
	case <-time.After(wait):
		t.Fatal("no audio packet received")
	}
	return media.TapPacket{}
}

// untilTone awaits a packet carrying freq (Goertzel) and returns it.
func (a *audioTap) untilTone(t testing.TB, freq float64) media.TapPacket {
	t.Helper()
	for range 1000 {
		p := a.next(t)
		if toneOf(p.Payload) == freq {
			return p
		}
	}
	t.Fatalf("tone %.0f Hz never heard", freq)
	return media.TapPacket{}
}

// quiet reports whether no packet arrived within d.
func (a *audioTap) quiet(d time.Duration) bool {
	for {
		select {
		case <-a.ch:
			continue
		case <-time.After(d):
			return true
		}
	}
}

// testFreqs are the tones the test prompts are made of.
var testFreqs = []float64{400, 600, 800, 1000, 1200, 1400}

// toneOf returns which test frequency dominates a μ-law frame (0: none, e.g. silence).
func toneOf(ulaw []byte) float64 {
	pcm := make([]int16, len(ulaw))
	media.PCMU.Decode(pcm, ulaw)
	best, bestP := 0.0, 0.0
	var total float64
	for _, s := range pcm {
		total += float64(s) * float64(s)
	}
	if total/float64(len(pcm)) < 1000 {
		return 0
	}
	for _, f := range testFreqs {
		p := goertzel(pcm, f)
		if p > bestP {
			best, bestP = f, p
		}
	}
	return best
}

func goertzel(pcm []int16, f float64) float64 {
	w := 2 * math.Pi * f / 8000
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range pcm {
		s := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// tone makes a prompt of a sine at f Hz lasting d.
func tone(f float64, d time.Duration) *Prompt {
	n := int(d / (time.Second / 8000))
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*f*float64(i)/8000))
	}
	return NewPrompt(pcm)
}

// testPrompts is a small set of tone prompts: each name its own frequency.
func testPrompts(t testing.TB, long time.Duration) *Prompts {
	t.Helper()
	p, err := NewPrompts(PromptOptions{NoBuiltin: true})
	if err != nil {
		t.Fatal(err)
	}
	p.Set("en", "greeting", tone(400, long))
	p.Set("fr", "greeting", tone(1400, long))
	p.Set("en", "lang", tone(1200, long))
	p.Set("en", PromptVoicemail, tone(600, 100*time.Millisecond))
	p.Set("", PromptBeep, tone(1000, 60*time.Millisecond))
	p.Set("en", PromptGoodbye, tone(800, 40*time.Millisecond))
	p.Set("en", PromptClosed, tone(1200, 40*time.Millisecond))
	p.Set("en", PromptPleaseHold, tone(600, 40*time.Millisecond))
	p.Set("", PromptMusic, tone(800, 200*time.Millisecond))
	p.Set("en", PromptPosition, tone(1000, 40*time.Millisecond))
	for i := 1; i <= 3; i++ {
		p.Set("en", fmt.Sprintf("num_%d", i), tone(1200, 40*time.Millisecond))
	}
	p.Set("en", PromptPositionMany, tone(1400, 40*time.Millisecond))
	return p
}

// --- agents -------------------------------------------------------------------------------

// pendingOffer is an offer the test answers, declines, or lets ring.
type pendingOffer struct {
	Offer
	resp chan offerResult
	ctx  context.Context
}

func (p *pendingOffer) answer() *fakeAgentLeg {
	l := newFakeAgentLeg()
	p.resp <- offerResult{leg: l}
	return l
}

func (p *pendingOffer) decline() { p.resp <- offerResult{err: ErrNoAnswer} }

// ended awaits the offer's withdrawal (ring timeout, hang-up, overflow).
func (p *pendingOffer) ended(t testing.TB) {
	t.Helper()
	select {
	case <-p.ctx.Done():
	case <-time.After(wait):
		t.Fatal("offer not withdrawn")
	}
}

// fakeDialer hands every offer to the test.
type fakeDialer struct {
	offers chan *pendingOffer
}

func newFakeDialer() *fakeDialer { return &fakeDialer{offers: make(chan *pendingOffer, 64)} }

func (d *fakeDialer) Offer(ctx context.Context, o Offer) (AgentLeg, error) {
	p := &pendingOffer{Offer: o, resp: make(chan offerResult, 1), ctx: ctx}
	d.offers <- p
	select {
	case r := <-p.resp:
		return r.leg, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *fakeDialer) next(t testing.TB) *pendingOffer {
	t.Helper()
	select {
	case p := <-d.offers:
		return p
	case <-time.After(wait):
		t.Fatal("no offer made")
	}
	return nil
}

func (d *fakeDialer) none(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case p := <-d.offers:
		t.Fatalf("unexpected offer to agent %d", p.AgentID)
	case <-time.After(within):
	}
}

type fakeAgentLeg struct {
	mu      sync.Mutex
	bridged int
	done    chan struct{}
	once    sync.Once
}

func newFakeAgentLeg() *fakeAgentLeg { return &fakeAgentLeg{done: make(chan struct{})} }

func (l *fakeAgentLeg) Bridge(*media.Endpoint) (func(), error) {
	l.mu.Lock()
	l.bridged++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.bridged--
			l.mu.Unlock()
		})
	}, nil
}
func (l *fakeAgentLeg) Done() <-chan struct{} { return l.done }
func (l *fakeAgentLeg) Hangup(context.Context) error {
	l.once.Do(func() { close(l.done) })
	return nil
}
func (l *fakeAgentLeg) isBridged() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bridged > 0
}
func (l *fakeAgentLeg) hungUp() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// runCall runs c.Run on a goroutine; the returned channel yields its result.
func runCall(t testing.TB, c *Call, line Line) <-chan Result {
	t.Helper()
	ch := make(chan Result, 1)
	go func() { ch <- c.Run(context.Background(), line) }()
	return ch
}

func result(t testing.TB, ch <-chan Result) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("call did not end")
	}
	return Result{}
}
