package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// DefaultWebRTCDTMFPayloadType is the dynamic payload type offered for telephone-event/8000
// (RFC 4733 §7.1.1) on the browser leg.
const DefaultWebRTCDTMFPayloadType = 101

// WebRTCOptions configures NewWebRTC. Zero values take the documented defaults.
type WebRTCOptions struct {
	// ICEAddress is the UDP address of the one socket every agent's ICE, DTLS and SRTP runs on
	// (a host candidate, RFC 8445 §5.1.1.1). Default 127.0.0.1:0 (a free loopback port).
	ICEAddress netip.AddrPort
	// PublicIP, when set, is written in the host candidates instead of ICEAddress's address
	// (a 1:1 NAT in front of the gateway).
	PublicIP netip.Addr
	// Lite makes the gateway an ICE-lite agent (RFC 8445 §2.5): it only answers checks. Use it
	// when the candidate address is public.
	Lite bool
	// Allocator gives each leg's internal RTP endpoint its port pair. Use a loopback range: the
	// endpoint is only ever reached by the leg's own relay socket. Required.
	Allocator *PortAllocator
	// Metrics receives the internal endpoints' packet counters; nil records nothing.
	Metrics *Metrics
	// DTMFPayloadType is the telephone-event payload type offered. Default 101.
	DTMFPayloadType uint8
	// ICEPortMax, when set, makes ICEAddress's port the first of a range: the ICE socket binds
	// the first free port from ICEAddress's port to ICEPortMax, so that a firewall can open a
	// known range (every agent shares the one socket: one port is all a node needs; a range
	// lets several nodes share a host). Zero: ICEAddress's port only (0: any free port).
	ICEPortMax uint16
	// ICETCPAddress, when valid, is also a passive ICE-TCP socket (RFC 6544): browsers behind
	// firewalls that drop UDP connect their audio over TCP to it. Port 0 is a free port.
	// Unset: UDP only.
	ICETCPAddress netip.AddrPort
	// ICEDisconnectedTimeout and ICEFailedTimeout are how long without an answer to ICE
	// consent checks (RFC 7675) a leg is "disconnected", then "failed". Zero: pion's defaults
	// (5 s and 25 s).
	ICEDisconnectedTimeout, ICEFailedTimeout time.Duration
}

// WebRTC holds what every agent's WebRTC leg shares: the pion API (PCMU and telephone-event
// only) and the single ICE UDP socket. One per gateway; Close it after every leg is closed.
type WebRTC struct {
	opts    WebRTCOptions
	api     *webrtc.API
	conn    net.PacketConn
	addr    netip.AddrPort
	mux     interface{ Close() error }
	tcp     net.Listener // nil without ICETCPAddress
	tcpMux  interface{ Close() error }
	tcpAddr netip.AddrPort
}

// NewWebRTC binds the ICE socket and prepares the pion API.
func NewWebRTC(opts WebRTCOptions) (*WebRTC, error) {
	if opts.Allocator == nil {
		return nil, errors.New("media: new webrtc: no port allocator")
	}
	if !opts.ICEAddress.IsValid() {
		opts.ICEAddress = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0)
	}
	if opts.DTMFPayloadType == 0 {
		opts.DTMFPayloadType = DefaultWebRTCDTMFPayloadType
	}
	me := &webrtc.MediaEngine{}
	for _, c := range []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: clockRate, Channels: 1}, PayloadType: 0},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: clockRate, Channels: 1, SDPFmtpLine: "0-16"},
			PayloadType: webrtc.PayloadType(opts.DTMFPayloadType)},
	} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("media: new webrtc: register codec: %w", err)
		}
	}
	udp, err := listenICE(opts.ICEAddress, opts.ICEPortMax)
	if err != nil {
		return nil, err
	}
	la := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	addr := netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
	var conn net.PacketConn = udp
	if addr.Addr().IsLoopback() {
		// A loopback gateway talks to loopback browsers only: datagrams from other sources
		// (a browser's other interfaces trying the loopback candidate) get no answer.
		conn = loopbackOnly{udp}
	}
	mux := webrtc.NewICEUDPMux(nil, conn)
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(mux)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	w := &WebRTC{opts: opts, conn: udp, addr: addr, mux: mux}
	if opts.ICETCPAddress.IsValid() {
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(opts.ICETCPAddress))
		if err != nil {
			mux.Close()
			udp.Close()
			return nil, fmt.Errorf("media: new webrtc: listen ICE-TCP %s: %w", opts.ICETCPAddress, err)
		}
		ta := ln.Addr().(*net.TCPAddr).AddrPort()
		w.tcp, w.tcpAddr = ln, netip.AddrPortFrom(ta.Addr().Unmap(), ta.Port())
		tmux := webrtc.NewICETCPMux(nil, ln, 64)
		w.tcpMux = tmux
		se.SetICETCPMux(tmux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	se.SetIncludeLoopbackCandidate(addr.Addr().IsLoopback())
	se.SetLite(opts.Lite)
	if opts.ICEDisconnectedTimeout > 0 || opts.ICEFailedTimeout > 0 {
		disc, failed := opts.ICEDisconnectedTimeout, opts.ICEFailedTimeout
		if disc <= 0 {
			disc = 5 * time.Second
		}
		if failed <= 0 {
			failed = 25 * time.Second
		}
		se.SetICETimeouts(disc, failed, min(2*time.Second, disc/2))
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // plain host addresses, no multicast
	if opts.PublicIP.IsValid() {
		se.SetNAT1To1IPs([]string{opts.PublicIP.String()}, webrtc.ICECandidateTypeHost)
	}
	if addr.Addr().IsLoopback() {
		se.SetRemoteIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	w.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	return w, nil
}

// listenICE binds the ICE UDP socket: at a's port, or with portMax at the first free port of
// a's port … portMax. The range is walked in order, bounded by its size.
func listenICE(a netip.AddrPort, portMax uint16) (*net.UDPConn, error) {
	if portMax == 0 || a.Port() == 0 {
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
		if err != nil {
			return nil, fmt.Errorf("media: new webrtc: listen %s: %w", a, err)
		}
		return udp, nil
	}
	if portMax < a.Port() {
		return nil, fmt.Errorf("media: new webrtc: ICE port range %d-%d is empty", a.Port(), portMax)
	}
	var last error
	for p := int(a.Port()); p <= int(portMax); p++ {
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.Addr(), uint16(p))))
		if err == nil {
			return udp, nil
		}
		last = err
	}
	return nil, fmt.Errorf("media: new webrtc: no free port in %s %d-%d: %w", a.Addr(), a.Port(), portMax, last)
}

// Addr is the bound ICE socket's address.
func (w *WebRTC) Addr() netip.AddrPort { return w.addr }

// TCPAddr is the ICE-TCP socket's address; invalid without WebRTCOptions.ICETCPAddress.
func (w *WebRTC) TCPAddr() netip.AddrPort { return w.tcpAddr }

// Close closes the ICE sockets. Legs still open stop working; close them first.
func (w *WebRTC) Close() error {
	err := w.mux.Close()
	w.conn.Close()
	if w.tcpMux != nil {
		if terr := w.tcpMux.Close(); err == nil {
			err = terr
		}
		w.tcp.Close()
	}
	if err != nil {
		return fmt.Errorf("media: close webrtc: %w", err)
	}
	return nil
}

// loopbackOnly drops datagrams whose source is not a loopback address.
type loopbackOnly struct{ *net.UDPConn }

func (c loopbackOnly) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, src, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil {
			return n, nil, err
		}
		if src.Addr().Unmap().IsLoopback() {
			return n, net.UDPAddrFromAddrPort(src), nil
		}
	}
}

// WebRTCLeg is one logged-in agent's browser audio for the whole session: a pion
// PeerConnection (PCMU and telephone-event, DTLS-SRTP) relayed to an internal RTP Endpoint on
// loopback. Calls are bridged to that Endpoint with Bridge, so the track the browser receives
// is that Endpoint's one continuous outgoing stream: sequence numbers and timestamps carry on
// across calls, prompts and music (the browser's SRTP replay protection, RFC 3711 §3.3.2,
// would drop a stream that jumps back). The browser's microphone (and any RFC 4733 events it
// sends) arrives on the Endpoint and goes to whatever is bridged.
//
// Signalling is the caller's business: Offer makes an SDP offer (non-trickle: every candidate
// is in it), SetAnswer applies the browser's answer. A new Offer replaces the PeerConnection
// (the page reloaded); calls bridged to the leg stay bridged. Methods are safe for concurrent
// use. Close frees everything.
type WebRTCLeg struct {
	w     *WebRTC
	ep    *Endpoint
	relay *net.UDPConn
	track *webrtc.TrackLocalStaticRTP
	muted atomic.Bool

	mu      sync.Mutex
	pc      *webrtc.PeerConnection
	caller  *Endpoint
	closed  bool
	onState func(WebRTCState)

	wg sync.WaitGroup
}

// NewLeg starts a leg: the internal endpoint, the relay socket and its goroutine. The first
// Offer creates the PeerConnection.
func (w *WebRTC) NewLeg() (*WebRTCLeg, error) {
	relay, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0)))
	if err != nil {
		return nil, fmt.Errorf("media: new webrtc leg: relay socket: %w", err)
	}
	relayAddr := relay.LocalAddr().(*net.UDPAddr).AddrPort()
	// The endpoint's only peer is the relay socket, known exactly: nothing else on loopback (or,
	// with an unspecified allocator address, anywhere) is ever accepted or sent to.
	// No timeouts and no RTCP on this internal hop (zero: off).
	ep, err := NewEndpoint(EndpointOptions{Allocator: w.opts.Allocator, Metrics: w.opts.Metrics, Peer: relayAddr})
	if err != nil {
		relay.Close()
		return nil, fmt.Errorf("media: new webrtc leg: %w", err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: clockRate, Channels: 1},
		"audio", "switchboard")
	if err != nil {
		ep.Close()
		relay.Close()
		return nil, fmt.Errorf("media: new webrtc leg: track: %w", err)
	}
	ep.SetCodec(0, PCMU)
	ep.SetDTMFPayloadType(w.opts.DTMFPayloadType)
	ep.SetRemote(relayAddr)
	l := &WebRTCLeg{w: w, ep: ep, relay: relay, track: track}
	l.wg.Add(1)
	go l.toBrowser()
	return l, nil
}

// epAddr is where the relay sends the browser's packets: the endpoint's port on loopback.
func (l *WebRTCLeg) epAddr() netip.AddrPort {
	a := l.ep.LocalAddr()
	if a.Addr().IsUnspecified() {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), a.Port())
	}
	return a
}

// toBrowser relays the endpoint's outgoing stream to the browser track. Telephone-events toward
// the agent are dropped (the track carries PCMU only); audio keeps its sequence and timestamp.
func (l *WebRTCLeg) toBrowser() {
	defer l.wg.Done()
	buf := make([]byte, maxPacket)
	var pkt rtp.Packet
	from := l.epAddr()
	for {
		n, src, err := l.relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		if netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) != from || n < rtpHeaderSize || buf[1]&0x7F != 0 {
			continue
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		_ = l.track.WriteRTP(&pkt) // no binding yet, or the PeerConnection is gone: nothing to do
	}
}

// WebRTCState is a leg's PeerConnection state as its owner sees it (the W3C
// RTCPeerConnectionState names: "new", "connecting", "connected", "disconnected", "failed",
// "closed").
type WebRTCState string

// The states an owner acts on.
const (
	WebRTCConnected WebRTCState = "connected"
	// WebRTCFailed: ICE found no working candidate pair (RFC 8445 §8.1: every check failed,
	// or consent expired, RFC 7675 §5.1) — a firewall dropping the media's UDP, typically.
	WebRTCFailed WebRTCState = "failed"
)

// OnStateChange sets f to be told each state of the leg's current PeerConnection (a replaced
// one's changes are not told). f runs on pion's goroutine with no lock of the leg held; it must
// not block. Set it before the first Offer.
func (l *WebRTCLeg) OnStateChange(f func(WebRTCState)) {
	l.mu.Lock()
	l.onState = f
	l.mu.Unlock()
}

// Endpoint is the leg's internal RTP endpoint: what it sends is what the agent hears (Play on
// it plays to the agent), what it receives is the agent's microphone. Do not Close it.
func (l *WebRTCLeg) Endpoint() *Endpoint { return l.ep }

// Offer creates a new PeerConnection (closing the previous one, if any) with one sendrecv audio
// transceiver and returns its SDP offer once ICE gathering is complete (or ctx ends).
func (l *WebRTCLeg) Offer(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "", fmt.Errorf("media: webrtc offer: %w", ErrClosed)
	}
	if l.pc != nil {
		l.pc.Close()
		l.pc = nil
	}
	pc, err := l.w.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", fmt.Errorf("media: webrtc offer: new peer connection: %w", err)
	}
	tr, err := pc.AddTransceiverFromTrack(l.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		pc.Close()
		return "", fmt.Errorf("media: webrtc offer: add transceiver: %w", err)
	}
	sender := tr.Sender()
	l.wg.Add(1)
	go func() { // RTCP from the browser must be read for the interceptors; ends with pc
		defer l.wg.Done()
		buf := make([]byte, maxPacket)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		l.mu.Lock()
		f, current := l.onState, l.pc == pc
		l.mu.Unlock()
		if f != nil && current {
			f(WebRTCState(st.String()))
		}
	})
	to := l.epAddr()
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		l.wg.Add(1)
		l.mu.Unlock()
		defer l.wg.Done()
		buf := make([]byte, maxPacket)
		for {
			n, _, err := remote.Read(buf)
			if err != nil {
				return
			}
			if l.muted.Load() {
				continue
			}
			_, _ = l.relay.WriteToUDPAddrPort(buf[:n], to)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		gathered := webrtc.GatheringCompletePromise(pc)
		if err = pc.SetLocalDescription(offer); err == nil {
			select {
			case <-gathered:
			case <-ctx.Done():
				err = context.Cause(ctx)
			}
		}
	}
	if err != nil {
		pc.Close()
		return "", fmt.Errorf("media: webrtc offer: %w", err)
	}
	l.pc = pc
	return pc.LocalDescription().SDP, nil
}

// SetAnswer applies the browser's SDP answer to the current PeerConnection.
func (l *WebRTCLeg) SetAnswer(sdp string) error {
	l.mu.Lock()
	pc := l.pc
	l.mu.Unlock()
	if pc == nil {
		return errors.New("media: webrtc answer: no offer made")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("media: webrtc answer: %w", err)
	}
	return nil
}

// Alive reports whether the current PeerConnection is usable (new, connecting or connected):
// a reconnecting page with a live PeerConnection needs no new offer.
func (l *WebRTCLeg) Alive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pc == nil {
		return false
	}
	switch l.pc.ConnectionState() {
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateDisconnected:
		return false
	}
	return true
}

// Connected reports whether ICE and DTLS are up on the current PeerConnection.
func (l *WebRTCLeg) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pc != nil && l.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
}

// SetMuted stops (true) or restarts relaying the agent's microphone to the call.
func (l *WebRTCLeg) SetMuted(m bool) { l.muted.Store(m) }

// Muted reports SetMuted's state.
func (l *WebRTCLeg) Muted() bool { return l.muted.Load() }

// Bridge joins the caller's endpoint to the agent (media.Bridge with the internal endpoint):
// no ICE or DTLS happens, audio flows at once. stop is idempotent.
func (l *WebRTCLeg) Bridge(caller *Endpoint) (stop func(), err error) {
	stopBr, err := Bridge(caller, l.ep)
	if err != nil {
		return nil, fmt.Errorf("media: webrtc bridge: %w", err)
	}
	l.mu.Lock()
	l.caller = caller
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			stopBr()
			l.mu.Lock()
			if l.caller == caller {
				l.caller = nil
			}
			l.mu.Unlock()
		})
	}, nil
}

// ErrNotBridged is returned by WebRTCLeg.SendDTMF when no call is bridged to the leg.
var ErrNotBridged = errors.New("media: webrtc leg not bridged")

// SendDTMF sends digit as an RFC 4733 event on the bridged caller's endpoint (to the carrier),
// lasting d (0: 100 ms). ErrNotBridged when no call is bridged.
func (l *WebRTCLeg) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	l.mu.Lock()
	c := l.caller
	l.mu.Unlock()
	if c == nil {
		return ErrNotBridged
	}
	return c.SendDTMF(ctx, digit, d)
}

// Close closes the PeerConnection, the relay and the internal endpoint (unbridging any call)
// and waits for the leg's goroutines. Idempotent.
func (l *WebRTCLeg) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	pc := l.pc
	l.pc = nil
	l.mu.Unlock()
	var err error
	if pc != nil {
		err = pc.Close()
	}
	l.relay.Close()
	l.ep.Close()
	l.wg.Wait()
	if err != nil {
		return fmt.Errorf("media: close webrtc leg: %w", err)
	}
	return nil
}
