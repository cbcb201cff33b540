package media

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"
)

// The mixer's tests run on real sockets: each member is an Endpoint on loopback with a plain
// UDP peer that talks (a tone of its own, paced every 20 ms) and listens (what the endpoint
// sends it, decoded and checked with Goertzel): a party must hear the tones it may hear and
// never its own, nor a whisper meant for someone else.

// Tones of the parties: far apart and off each other's harmonics.
const (
	callerHz = 440.0
	agentHz  = 1000.0
	superHz  = 1700.0
	thirdHz  = 2300.0
)

// mixParty is an endpoint and the peer that talks to it and listens to it.
type mixParty struct {
	ep *Endpoint
	p  *peer
}

func newMixParty(t *testing.T, alloc *PortAllocator) *mixParty {
	t.Helper()
	ep := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	ep.SetCodec(0, PCMU)
	p := newPeer(t)
	ep.SetRemote(p.addr())
	return &mixParty{ep: ep, p: p}
}

// talk sends a tone of freq to the party's endpoint every 20 ms until the test ends.
func (mp *mixParty) talk(t *testing.T, freq float64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		pcm := make([]int16, FrameSize)
		tick := time.NewTicker(FrameDuration)
		defer tick.Stop()
		ssrc := uint32(freq)
		for i := 0; i < 3000; i++ { // bounded: a minute of audio
			for k := range pcm {
				pcm[k] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i*FrameSize+k)/clockRate))
			}
			pkt := audio(0, uint16(i), uint32(i*FrameSize), ssrc, 0)
			PCMU.Encode(pkt.Payload, pcm)
			b, _ := pkt.Marshal()
			_, _ = mp.p.conn.WriteToUDPAddrPort(b, mp.ep.LocalAddr())
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// listen returns what the peer hears over the next frames packets, after skipping skip
// packets (the mix settling after a change).
func (mp *mixParty) listen(t *testing.T, skip, frames int) []int16 {
	t.Helper()
	// What queued on the socket before now is old audio: drop it.
	buf := make([]byte, 1500)
	for range 10000 {
		mp.p.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, _, err := mp.p.conn.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
	}
	for range skip {
		mp.p.recv()
	}
	pcm := make([]int16, 0, frames*FrameSize)
	for range frames {
		r := mp.p.recv()
		if r.PayloadType != 0 {
			continue
		}
		s := make([]int16, len(r.Payload))
		PCMU.Decode(s, r.Payload)
		pcm = append(pcm, s...)
	}
	return pcm
}

// Power of an 8000-amplitude tone is about 1.6e7 (A²/4); a tone not sent measures orders of
// magnitude below (μ-law quantisation noise spreads over every frequency).
const (
	tonePresent = 2e6
	toneAbsent  = 2e5
)

// expectTones checks which tones pcm carries.
func expectTones(t *testing.T, who string, pcm []int16, hear, notHear []float64) {
	t.Helper()
	for _, f := range hear {
		if p := goertzel(pcm, f); p < tonePresent {
			t.Errorf("%s: %g Hz power %.3g, want it heard (> %.0g)", who, f, p, tonePresent)
		}
	}
	for _, f := range notHear {
		if p := goertzel(pcm, f); p > toneAbsent {
			t.Errorf("%s: %g Hz power %.3g, want it not heard (< %.0g)", who, f, p, toneAbsent)
		}
	}
}

// Rule: N-1 mixing. Three parties in one mix (a conference): each hears the two others and
// never itself.
func TestMixer_EachPartyHearsTheOthersNotItself(t *testing.T) {
	alloc := testAllocator(t, 8)
	a, b, c := newMixParty(t, alloc), newMixParty(t, alloc), newMixParty(t, alloc)
	m := NewMixer()
	defer m.Close()
	for _, mp := range []*mixParty{a, b, c} {
		if _, err := m.Add(mp.ep, MemberOptions{Send: true}); err != nil {
			t.Fatal(err)
		}
	}
	a.talk(t, callerHz)
	b.talk(t, agentHz)
	c.talk(t, thirdHz)
	expectTones(t, "a", a.listen(t, 10, 30), []float64{agentHz, thirdHz}, []float64{callerHz})
	expectTones(t, "b", b.listen(t, 10, 30), []float64{callerHz, thirdHz}, []float64{agentHz})
	expectTones(t, "c", c.listen(t, 10, 30), []float64{callerHz, agentHz}, []float64{thirdHz})
}

// Rule: supervisors. A caller and an agent stay bridged; a supervisor who monitors hears
// both and is heard by neither; whispering, only the agent hears the supervisor (the caller
// must not); barging, everyone hears everyone; removed, the bridge alone is heard again.
func TestMixer_MonitorWhisperBargeThenLeave(t *testing.T) {
	alloc := testAllocator(t, 8)
	caller, agent, sup := newMixParty(t, alloc), newMixParty(t, alloc), newMixParty(t, alloc)
	if _, err := Bridge(caller.ep, agent.ep); err != nil {
		t.Fatal(err)
	}
	caller.talk(t, callerHz)
	agent.talk(t, agentHz)
	sup.talk(t, superHz)

	m := NewMixer()
	defer m.Close()
	cm, err := m.Add(caller.ep, MemberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	am, err := m.Add(agent.ep, MemberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := m.Add(sup.ep, MemberOptions{Send: true, HeardBy: HeardByNobody})
	if err != nil {
		t.Fatal(err)
	}

	// Monitor.
	expectTones(t, "monitor: supervisor", sup.listen(t, 10, 30), []float64{callerHz, agentHz}, []float64{superHz})
	expectTones(t, "monitor: caller", caller.listen(t, 10, 30), []float64{agentHz}, []float64{superHz, callerHz})
	expectTones(t, "monitor: agent", agent.listen(t, 10, 30), []float64{callerHz}, []float64{superHz, agentHz})

	// Whisper: the agent's stream comes from the mixer now (the caller and the supervisor).
	am.Set(MemberOptions{Send: true})
	sm.Set(MemberOptions{Send: true, HeardBy: HeardByOne, Listener: am})
	expectTones(t, "whisper: agent", agent.listen(t, 10, 30), []float64{callerHz, superHz}, []float64{agentHz})
	expectTones(t, "whisper: caller", caller.listen(t, 10, 30), []float64{agentHz}, []float64{superHz, callerHz})
	expectTones(t, "whisper: supervisor", sup.listen(t, 10, 30), []float64{callerHz, agentHz}, []float64{superHz})

	// Barge: three-way.
	cm.Set(MemberOptions{Send: true})
	sm.Set(MemberOptions{Send: true})
	expectTones(t, "barge: caller", caller.listen(t, 10, 30), []float64{agentHz, superHz}, []float64{callerHz})
	expectTones(t, "barge: agent", agent.listen(t, 10, 30), []float64{callerHz, superHz}, []float64{agentHz})

	// Leave: the bridge alone again, and nothing more to the supervisor's peer is mixed.
	m.Close()
	if n := m.Members(); n != 0 {
		t.Fatalf("%d members after Close", n)
	}
	expectTones(t, "after: caller", caller.listen(t, 10, 30), []float64{agentHz}, []float64{superHz, callerHz})
	expectTones(t, "after: agent", agent.listen(t, 10, 30), []float64{callerHz}, []float64{superHz, agentHz})
}

// Rule: a member removed while others stay: the others keep mixing without it, and its
// endpoint's stream is its own again (Play would be heard).
func TestMixer_RemoveOneMemberKeepsTheRest(t *testing.T) {
	alloc := testAllocator(t, 8)
	a, b, c := newMixParty(t, alloc), newMixParty(t, alloc), newMixParty(t, alloc)
	m := NewMixer()
	defer m.Close()
	var cm *MixMember
	for i, mp := range []*mixParty{a, b, c} {
		mm, err := m.Add(mp.ep, MemberOptions{Send: true})
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			cm = mm
		}
	}
	a.talk(t, callerHz)
	b.talk(t, agentHz)
	c.talk(t, thirdHz)
	expectTones(t, "a", a.listen(t, 10, 30), []float64{agentHz, thirdHz}, []float64{callerHz})
	cm.Remove()
	cm.Remove() // idempotent
	if n := m.Members(); n != 2 {
		t.Fatalf("%d members, want 2", n)
	}
	expectTones(t, "a after c left", a.listen(t, 10, 30), []float64{agentHz}, []float64{callerHz, thirdHz})
	expectTones(t, "b after c left", b.listen(t, 10, 30), []float64{callerHz}, []float64{agentHz, thirdHz})
}

// Rule: limits are refused with their sentinels.
func TestMixer_RefusesClosedAndFull(t *testing.T) {
	alloc := testAllocator(t, MaxMixMembers+2)
	m := NewMixer()
	for range MaxMixMembers {
		if _, err := m.Add(newTestEndpoint(t, EndpointOptions{Allocator: alloc}), MemberOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Add(newTestEndpoint(t, EndpointOptions{Allocator: alloc}), MemberOptions{}); err != ErrMixerFull {
		t.Fatalf("17th member: %v, want ErrMixerFull", err)
	}
	m.Close()
	m.Close()
	if _, err := m.Add(newTestEndpoint(t, EndpointOptions{Allocator: alloc}), MemberOptions{}); err != ErrMixerClosed {
		t.Fatalf("after Close: %v, want ErrMixerClosed", err)
	}
}

// Rule: nothing is allocated per packet or per mixed frame: the tap's copy into the FIFO and
// a tick that mixes and sends to three members.
func TestMixer_TickAndTapDoNotAllocate(t *testing.T) {
	alloc := testAllocator(t, 8)
	a, b, c := newMixParty(t, alloc), newMixParty(t, alloc), newMixParty(t, alloc)
	m := newMixer() // ticked by the test alone
	close(m.done)
	defer m.Close()
	var mm *MixMember
	for _, mp := range []*mixParty{a, b, c} {
		x, err := m.Add(mp.ep, MemberOptions{Send: true})
		if err != nil {
			t.Fatal(err)
		}
		mm = x
	}
	payload := tone(PCMU, 1000, FrameSize)
	pkt := TapPacket{Flow: Received, PayloadType: 0, Payload: payload}
	now := time.Now()
	if n := testing.AllocsPerRun(200, func() { mm.tap(pkt) }); n != 0 {
		t.Errorf("tap allocates %.1f per packet", n)
	}
	if n := testing.AllocsPerRun(200, func() { m.tick(now) }); n != 0 {
		t.Errorf("tick allocates %.1f per frame", n)
	}
}

// Rule: a member's FIFO keeps at most mixMaxQueue samples (the delay stays bounded) and a
// FIFO that ran dry yields silence.
func TestMixFIFO_BoundedAndSilentWhenDry(t *testing.T) {
	var f mixFIFO
	loud := make([]byte, FrameSize)
	for i := range loud {
		loud[i] = EncodeULaw(10000)
	}
	for range 20 {
		f.write(loud, PCMU)
	}
	if f.n != mixMaxQueue {
		t.Fatalf("queued %d samples, want at most %d", f.n, mixMaxQueue)
	}
	var frame [FrameSize]int16
	for range mixMaxQueue / FrameSize {
		f.read(&frame)
		if frame[0] == 0 {
			t.Fatal("a queued frame read as silence")
		}
	}
	f.read(&frame)
	for _, s := range frame {
		if s != 0 {
			t.Fatal("a dry FIFO did not give silence")
		}
	}
}

// Rule (-race, no deadlock): members added, switched and removed while the mixer closes, on
// several goroutines, race with nothing and leave no tap behind. Looped.
func TestMixer_AddRemoveCloseRaceLooped(t *testing.T) {
	alloc := testAllocator(t, 8)
	eps := []*Endpoint{newTestEndpoint(t, EndpointOptions{Allocator: alloc}), newTestEndpoint(t, EndpointOptions{Allocator: alloc}),
		newTestEndpoint(t, EndpointOptions{Allocator: alloc})}
	for _, ep := range eps {
		ep.SetCodec(0, PCMU)
	}
	for range 50 {
		m := NewMixer()
		var wg sync.WaitGroup
		for _, ep := range eps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mm, err := m.Add(ep, MemberOptions{Send: true})
				if err != nil {
					return
				}
				mm.Set(MemberOptions{Send: true, HeardBy: HeardByNobody})
				mm.Remove()
			}()
		}
		wg.Add(1)
		go func() { defer wg.Done(); m.Close() }()
		wg.Wait()
		m.Close()
	}
	for i, ep := range eps {
		if n := len(ep.cfg.Load().taps); n != 0 {
			t.Errorf("endpoint %d keeps %d taps", i, n)
		}
	}
}
