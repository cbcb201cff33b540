package web

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

// firewall is the page's UDP socket behind a firewall that can start dropping everything
// (both ways), as a corporate firewall or a NAT that lost its binding does.
type firewall struct {
	*net.UDPConn
	block atomic.Bool
}

func (f *firewall) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := f.UDPConn.ReadFrom(b)
		if err != nil || !f.block.Load() {
			return n, a, err
		}
	}
}

func (f *firewall) WriteTo(b []byte, a net.Addr) (int, error) {
	if f.block.Load() {
		return len(b), nil
	}
	return f.UDPConn.WriteTo(b, a)
}

// answerBehind answers the server's offer like answerOffer, from a PeerConnection whose only
// UDP socket is fw.
func (p *page) answerBehind(sdp string, fw *firewall) {
	p.t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		p.t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEUDPMux(webrtc.NewICEUDPMux(nil, fw))
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(time.Second, 2*time.Second, 500*time.Millisecond)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		p.t.Fatal(err)
	}
	if p.pc != nil {
		p.pc.Close()
	}
	p.pc = pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		p.t.Fatal(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(wait):
		p.t.Fatal("gathering")
	}
	p.send(message{Type: "answer_sdp", SDP: pc.LocalDescription().SDP})
}

func newFirewall(t *testing.T) *firewall {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &firewall{UDPConn: c}
}

// expectText awaits the next message of type typ whose text contains want.
func (p *page) expectText(typ, want string) message {
	p.t.Helper()
	deadline := time.Now().Add(3 * wait)
	for time.Now().Before(deadline) {
		m := p.expect(typ)
		if strings.Contains(m.Message+m.State, want) {
			return m
		}
	}
	p.t.Fatalf("no %q message with %q", typ, want)
	return message{}
}

// Rule (issue 21, agent page): an agent whose audio path breaks (ICE failed: a firewall now
// drops the media's UDP) is not left "available" to miss every offer — the server sets them
// away at once and tells the page why ("audio" failed, then an error naming ICE); "available"
// is refused while the audio is down (no ACD call); a new offer (the page's Retry audio sends
// hello without a PeerConnection) connects again and "available" works. Before this change the
// agent stayed available and every offer came back ErrNotConnected, a miss, until the ACD's
// missed-offer limit set them away with no reason shown.
func TestAudioFailureSetsAgentAwayAndRefusesAvailableUntilAudioReconnects(t *testing.T) {
	rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 16),
		ICEDisconnectedTimeout: time.Second, ICEFailedTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, Options{}, rtc)
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	fw := newFirewall(t)
	p.answerBehind(p.expect("offer").SDP, fw)
	awaitConnected(t, h, 1)
	p.expectText("audio", "connected")
	p.send(message{Type: "state", State: "available"})
	if m := p.expect("state"); m.State != "available" {
		t.Fatalf("state %q, want available", m.State)
	}

	fw.block.Store(true) // the firewall drops the audio path both ways
	p.expectText("audio", "failed")
	if m := p.expect("state"); m.State != string(ivr.StateAway) {
		t.Fatalf("after the audio failed the page shows %q, want away", m.State)
	}
	p.expectText("error", "audio is not connected")
	if !h.acd.did("state:away") {
		t.Fatal("the ACD was not told the agent is away")
	}
	if h.srv.Connected(1) {
		t.Fatal("Connected(1) with failed audio")
	}

	before := h.acd.count("state:available")
	p.send(message{Type: "state", State: "available"})
	p.expectText("error", "audio is not connected")
	if n := h.acd.count("state:available"); n != before {
		t.Fatalf("available reached the ACD while the audio was down (%d → %d)", before, n)
	}

	// Retry audio: a new PeerConnection through an open path.
	fw2 := newFirewall(t)
	p.send(message{Type: "hello", PC: false})
	p.answerBehind(p.expect("offer").SDP, fw2)
	awaitConnected(t, h, 1)
	p.expectText("audio", "connected")
	p.send(message{Type: "state", State: "available"})
	if m := p.expect("state"); m.State != "available" {
		t.Fatalf("state %q after the audio reconnected, want available", m.State)
	}
}

// Rule (issue 21, firewalls): with an ICE-TCP port configured, a page whose network drops all
// UDP (its UDP socket blocked from the start) still connects its audio, over TCP (RFC 6544:
// the gateway's passive candidate, the page's active one). Without ICETCPAddress the same page
// never connects.
func TestAudioConnectsOverICETCPWhenUDPIsBlocked(t *testing.T) {
	tcpPort := uint16(testport.FreeUDP(t)) // free for TCP too
	rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 16),
		ICETCPAddress: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tcpPort)})
	if err != nil {
		t.Fatal(err)
	}
	if got := rtc.TCPAddr().Port(); got != tcpPort {
		t.Fatalf("ICE-TCP socket on port %d, want %d", got, tcpPort)
	}
	h := newHarnessWith(t, Options{}, rtc)
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	offer := p.expect("offer").SDP
	if !strings.Contains(offer, "tcptype passive") {
		t.Fatalf("the offer has no passive TCP candidate:\n%s", offer)
	}
	fw := newFirewall(t)
	fw.block.Store(true) // no UDP at all for this page
	p.answerBehindTCP(offer, fw)
	awaitConnected(t, h, 1)
	p.expectText("audio", "connected")
}

// answerBehindTCP is answerBehind with ICE over TCP allowed too (active candidates).
func (p *page) answerBehindTCP(sdp string, fw *firewall) {
	p.t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		p.t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEUDPMux(webrtc.NewICEUDPMux(nil, fw))
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		p.t.Fatal(err)
	}
	p.pc = pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		p.t.Fatal(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(wait):
		p.t.Fatal("gathering")
	}
	p.send(message{Type: "answer_sdp", SDP: pc.LocalDescription().SDP})
}
