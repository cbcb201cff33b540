package media

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
)

// fakeBrowser is a pion PeerConnection standing in for the agent's browser: it answers the
// leg's offer, sends a tone as its microphone and hands every received RTP packet to rx.
type fakeBrowser struct {
	pc   *webrtc.PeerConnection
	rx   chan *rtp.Packet
	stop chan struct{}
	wg   sync.WaitGroup
}

func newFakeBrowser(t *testing.T, offer string, micFreq float64) (*fakeBrowser, string) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, PayloadType: 0}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, Channels: 1, SDPFmtpLine: "0-16"}, PayloadType: 101}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBrowser{pc: pc, rx: make(chan *rtp.Packet, 1<<14), stop: make(chan struct{})}
	t.Cleanup(b.close)
	mic, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "mic", "browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(mic); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case b.rx <- p:
			default:
				t.Error("fake browser: receive buffer full")
				return
			}
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(wait):
		t.Fatal("fake browser: ICE gathering did not complete")
	}
	b.wg.Add(1)
	go func() { // the microphone: 20 ms PCMU frames of micFreq, at most 60 s
		defer b.wg.Done()
		frames := tone(PCMU, micFreq, 8000)
		tick := time.NewTicker(FrameDuration)
		defer tick.Stop()
		for i := range 3000 {
			select {
			case <-b.stop:
				return
			case <-tick.C:
			}
			off := (i % 50) * FrameSize
			_ = mic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i),
				Timestamp: uint32(i * FrameSize), SSRC: 1}, Payload: frames[off : off+FrameSize]})
		}
	}()
	return b, pc.LocalDescription().SDP
}

func (b *fakeBrowser) close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	b.wg.Wait()
	b.pc.Close()
}

// carrierTone sends 20 ms frames of freq from p to dst until stop (at most 60 s).
func carrierTone(p *peer, dst netip.AddrPort, freq float64, c Codec, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		frames := tone(c, freq, 8000)
		tick := time.NewTicker(FrameDuration)
		defer tick.Stop()
		for i := range 3000 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			off := (i % 50) * FrameSize
			b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: c.PayloadType(), SequenceNumber: uint16(i), Timestamp: uint32(i * FrameSize), SSRC: 7},
				Payload: frames[off : off+FrameSize]}).Marshal()
			_, _ = p.conn.WriteToUDPAddrPort(b, dst)
		}
	}()
}

// hears reports whether 2000 samples of PCMU payloads carry freq well above other
// frequencies (Goertzel).
func hears(payloads []byte, freq float64) bool {
	pcm := make([]int16, len(payloads))
	PCMU.Decode(pcm, payloads)
	on := goertzel(pcm, freq)
	return on > 1000 && on > 100*goertzel(pcm, freq*1.37) && on > 100*goertzel(pcm, freq*0.61)
}

// continuity checks the browser's received stream packet by packet: sequence +1, timestamp
// advancing (what SRTP replay protection and the jitter buffer need).
type continuity struct {
	t        *testing.T
	started  bool
	seq      uint16
	ts       uint32
	ssrc     uint32
	received int
}

func (c *continuity) add(p *rtp.Packet) {
	c.t.Helper()
	if c.started {
		if p.SSRC != c.ssrc {
			c.t.Fatalf("SSRC changed from %08x to %08x", c.ssrc, p.SSRC)
		}
		if p.SequenceNumber != c.seq+1 {
			c.t.Fatalf("sequence jumped from %d to %d after %d packets", c.seq, p.SequenceNumber, c.received)
		}
		if !tsNewer(p.Timestamp, c.ts) {
			c.t.Fatalf("timestamp went from %d to %d", c.ts, p.Timestamp)
		}
	}
	c.started, c.seq, c.ts, c.ssrc = true, p.SequenceNumber, p.Timestamp, p.SSRC
	c.received++
}

// awaitTone reads the browser's packets (checking continuity) until the last 2000 samples carry
// freq, or fails after wait.
func awaitTone(t *testing.T, b *fakeBrowser, c *continuity, freq float64) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var win []byte
	for {
		select {
		case p := <-b.rx:
			c.add(p)
			if p.PayloadType != 0 {
				t.Fatalf("browser got payload type %d, want PCMU", p.PayloadType)
			}
			win = append(win, p.Payload...)
			if len(win) > 2000 {
				win = win[len(win)-2000:]
				if hears(win, freq) {
					return
				}
			}
		case <-timer.C:
			t.Fatalf("browser did not hear %.0f Hz within %s", freq, wait)
		}
	}
}

// carrierHears reads RTP at the carrier peer until 2000 samples carry freq.
func carrierHears(t *testing.T, p *peer, freq float64) {
	t.Helper()
	var win []byte
	for range 1000 {
		pkt := p.recv()
		if pkt.PayloadType != 0 {
			continue
		}
		win = append(win, pkt.Payload...)
		if len(win) > 2000 {
			win = win[len(win)-2000:]
			if hears(win, freq) {
				return
			}
		}
	}
	t.Fatalf("carrier did not hear %.0f Hz", freq)
}

func awaitConnected(t *testing.T, leg *WebRTCLeg) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !leg.Connected() { // pion reports the state by callback only; poll it, bounded
		if time.Now().After(deadline) {
			t.Fatal("leg did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newTestWebRTC(t *testing.T) *WebRTC {
	t.Helper()
	w, err := NewWebRTC(WebRTCOptions{Allocator: testAllocator(t, 8)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func connectBrowser(t *testing.T, leg *WebRTCLeg, micFreq float64) *fakeBrowser {
	t.Helper()
	offer, err := leg.Offer(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	b, answer := newFakeBrowser(t, offer, micFreq)
	if err := leg.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	awaitConnected(t, leg)
	return b
}

// Rule (issue 7, docs/softphone.md): one PeerConnection per agent for the session; answering
// bridges a carrier endpoint into it with no new ICE or DTLS; audio flows both ways (440 Hz
// from the carrier heard by the browser, 1 kHz from the browser's microphone heard by the
// carrier); the keypad's digit goes to the carrier as RFC 4733; the track the browser receives
// stays one continuous stream (SSRC, sequence +1, timestamps advancing) across two calls and a
// music source in between; closing frees every goroutine.
func TestWebRTCLegTwoCallsAndMusicKeepOneContinuousStream(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after every other cleanup
	w := newTestWebRTC(t)
	leg, err := w.NewLeg()
	if err != nil {
		t.Fatal(err)
	}
	defer leg.Close()
	browser := connectBrowser(t, leg, 1000)
	cont := &continuity{t: t}

	alloc := testAllocator(t, 8)
	for call := range 2 {
		caller := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
		caller.SetCodec(0, PCMU)
		caller.SetDTMFPayloadType(101)
		carrier := newPeer(t)
		caller.SetRemote(carrier.addr())
		stop, err := leg.Bridge(caller)
		if err != nil {
			t.Fatal(err)
		}
		stopTone := make(chan struct{})
		var wg sync.WaitGroup
		carrierTone(carrier, caller.LocalAddr(), 440, PCMU, stopTone, &wg)
		awaitTone(t, browser, cont, 440)
		carrierHears(t, carrier, 1000)

		if err := leg.SendDTMF(ctxTimeout(t), '5', 60*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		gotDTMF := false
		for range 200 {
			p := carrier.recv()
			if p.PayloadType == 101 {
				ev, err := ParseTelephoneEvent(p.Payload)
				if err != nil || ev.Event != 5 {
					t.Fatalf("carrier got event %+v (%v), want 5", ev, err)
				}
				gotDTMF = true
				break
			}
		}
		if !gotDTMF {
			t.Fatal("carrier got no RFC 4733 event for the keypad digit")
		}
		close(stopTone)
		wg.Wait()
		stop()
		stop() // idempotent

		if call == 0 { // music between the calls, on the same outgoing stream
			if err := leg.Endpoint().Play(ctxTimeout(t), bytes.NewReader(tone(PCMU, 600, 4000)), PCMU); err != nil {
				t.Fatal(err)
			}
			awaitTone(t, browser, cont, 600)
		}
	}
	if err := leg.SendDTMF(ctxTimeout(t), '1', 0); err != ErrNotBridged {
		t.Errorf("SendDTMF with no call: %v, want ErrNotBridged", err)
	}
	browser.close()
	if err := leg.Close(); err != nil {
		t.Error(err)
	}
	leg.Close() // idempotent
}

// Rule (issue 7): a page that reloads gets a new PeerConnection from a new Offer, and a call
// bridged to the leg keeps flowing into it without being bridged again.
func TestWebRTCLegRenegotiatesKeepingTheBridge(t *testing.T) {
	w := newTestWebRTC(t)
	leg, err := w.NewLeg()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leg.Close() })
	first := connectBrowser(t, leg, 1000)
	caller := newTestEndpoint(t, EndpointOptions{Allocator: testAllocator(t, 4)})
	caller.SetCodec(8, PCMA) // an A-law carrier: converted by table, not transcoded
	carrier := newPeer(t)
	caller.SetRemote(carrier.addr())
	if _, err := leg.Bridge(caller); err != nil {
		t.Fatal(err)
	}
	stopTone := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stopTone); wg.Wait() })
	carrierTone(carrier, caller.LocalAddr(), 440, PCMA, stopTone, &wg)
	awaitTone(t, first, &continuity{t: t}, 440)
	first.close()
	if !leg.Alive() {
		t.Log("old PeerConnection already reported down")
	}
	second := connectBrowser(t, leg, 1000)
	awaitTone(t, second, &continuity{t: t}, 440)
	if !leg.Alive() {
		t.Error("leg not alive after renegotiation")
	}
}

// Rule: muting stops the agent's microphone reaching the carrier; unmuting restores it.
func TestWebRTCLegMute(t *testing.T) {
	w := newTestWebRTC(t)
	leg, err := w.NewLeg()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leg.Close() })
	connectBrowser(t, leg, 1000)
	caller := newTestEndpoint(t, EndpointOptions{Allocator: testAllocator(t, 4)})
	caller.SetCodec(0, PCMU)
	carrier := newPeer(t)
	caller.SetRemote(carrier.addr())
	if _, err := leg.Bridge(caller); err != nil {
		t.Fatal(err)
	}
	carrierHears(t, carrier, 1000)
	leg.SetMuted(true)
	if !leg.Muted() {
		t.Fatal("Muted() false after SetMuted(true)")
	}
	before := caller.Stats().PacketsSent
	deadline := time.Now().Add(wait)
	for { // drain what was in flight, then expect silence on the wire for 300 ms
		carrier.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 1500)
		if _, _, err := carrier.conn.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carrier still receives while muted (%d → %d sent)", before, caller.Stats().PacketsSent)
		}
	}
	leg.SetMuted(false)
	carrierHears(t, carrier, 1000)
}

func TestWebRTCNeedsAllocator(t *testing.T) {
	if _, err := NewWebRTC(WebRTCOptions{}); err == nil {
		t.Fatal("NewWebRTC without allocator: no error")
	}
}

// Rule (issue 7): with Lite the offer declares ICE-lite (RFC 8445 §2.5, a=ice-lite) and with
// PublicIP the host candidate carries that address; PCMU and telephone-event are offered.
func TestWebRTCOfferLiteWithPublicAddress(t *testing.T) {
	w, err := NewWebRTC(WebRTCOptions{Allocator: testAllocator(t, 2), Lite: true, PublicIP: netip.MustParseAddr("203.0.113.7")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	leg, err := w.NewLeg()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leg.Close() })
	sdp, err := leg.Offer(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a=ice-lite", "203.0.113.7 " + strconv.Itoa(int(w.Addr().Port())) + " typ host",
		"a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fingerprint:", "a=setup:actpass"} {
		if !strings.Contains(sdp, want) {
			t.Errorf("offer lacks %q:\n%s", want, sdp)
		}
	}
	if leg.Connected() {
		t.Error("connected without an answer")
	}
}

// Attack (RTP bleed on the agent's side): the WebRTC leg's internal endpoint listens on the RTP
// range like any other, but its one peer is the leg's relay socket, known exactly: RTP from
// any other loopback socket or from a sprayer on 127.0.0.2 is refused and reported, and the
// endpoint still sends only to the relay. (The browser tests above prove the relay still works.)
func TestWebRTCLegInternalEndpointAcceptsOnlyItsRelay(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	var hooked atomic.Int64
	m.OnForeignSource(func(netip.AddrPort) { hooked.Add(1) })
	w, err := NewWebRTC(WebRTCOptions{Allocator: testAllocator(t, 8), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	leg, err := w.NewLeg()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leg.Close() })
	ep := leg.Endpoint()
	relay := leg.relay.LocalAddr().(*net.UDPAddr).AddrPort()
	local := newPeer(t)
	sprayer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(sprayAddr, 0)))
	if err != nil {
		t.Skipf("cannot bind %s: %v", sprayAddr, err)
	}
	defer sprayer.Close()
	for i := range 10 {
		local.send(leg.epAddr(), audio(0, uint16(i), uint32(i)*160, 1, 0x55))
		b, _ := audio(0, uint16(i), uint32(i)*160, 2, 0x55).Marshal()
		if _, err := sprayer.WriteToUDPAddrPort(b, leg.epAddr()); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(wait)
	for hooked.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 foreign packets reported; stats %+v", hooked.Load(), ep.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := ep.Stats(); st.PacketsReceived != 0 || st.Rejected != 20 {
		t.Errorf("stats %+v, want 0 received and 20 rejected", st)
	}
	if got := ep.Remote(); got != relay {
		t.Errorf("Remote = %s, want the relay %s", got, relay)
	}
}
