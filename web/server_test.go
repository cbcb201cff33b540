package web

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-voice/switchboard/ivr"
)

// login posts credentials and returns the response and the session cookie (nil if none).
func login(t *testing.T, base, email, password string) (*http.Response, *http.Cookie) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(`{"email":"`+email+`","password":"`+password+`"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == CookieName || c.Name == SecureCookieName {
			return res, c
		}
	}
	return res, nil
}

// Rule (issue 7): login with email and password sets a secure session cookie — HttpOnly,
// SameSite=Strict, Secure when forced or over TLS; wrong credentials get 401 and no cookie;
// logout ends the login; the cookie authenticates /session and, through Authenticate, the API.
func TestLoginSetsStrictHttpOnlyCookieAndLogoutEndsIt(t *testing.T) {
	h := newHarness(t, Options{SecureCookie: true})
	res, c := login(t, h.http.URL, "agent1@example.com", "wrong")
	if res.StatusCode != http.StatusUnauthorized || c != nil {
		t.Fatalf("wrong password: %d, cookie %v", res.StatusCode, c)
	}
	res, c = login(t, h.http.URL, "agent1@example.com", "agentpass")
	if res.StatusCode != http.StatusOK || c == nil {
		t.Fatalf("login: %d, cookie %v", res.StatusCode, c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || !c.Secure || c.Path != "/" {
		t.Errorf("cookie attributes: %+v", c)
	}
	r, _ := http.NewRequest("GET", h.http.URL+"/session", nil)
	r.AddCookie(c)
	if a, ok := h.srv.Authenticate(r); !ok || a.ID != 1 {
		t.Fatalf("Authenticate: %+v %v", a, ok)
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/session: %d", res.StatusCode)
	}
	out, _ := http.NewRequest("POST", h.http.URL+"/logout", nil)
	out.AddCookie(c)
	res, err = http.DefaultClient.Do(out)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if _, ok := h.srv.Authenticate(r); ok {
		t.Fatal("the cookie still authenticates after logout")
	}
}

// Rule (issue 7): /ws needs the session cookie (401 without) and a same-origin Origin (403).
func TestWebSocketNeedsCookieAndSameOrigin(t *testing.T) {
	h := newHarness(t, Options{})
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	ws := "ws" + strings.TrimPrefix(h.http.URL, "http") + "/ws"
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, res, err := websocket.Dial(ctx, ws, nil)
	if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no cookie: %v %v", err, res)
	}
	hdr := http.Header{"Cookie": {c.String()}, "Origin": {"http://evil.example"}}
	_, res, err = websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v", err, res)
	}
}

// page is a test client of /ws with a pion PeerConnection standing in for the browser's.
type page struct {
	t    *testing.T
	conn *websocket.Conn
	pc   *webrtc.PeerConnection
	msgs chan message
	done chan struct{}
	err  error // why reading stopped (valid once done is closed)
}

func openPage(t *testing.T, h *harness, cookie *http.Cookie, havePC bool) *page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	hdr := http.Header{"Cookie": {cookie.String()}, "Origin": {h.http.URL}}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.http.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	p := &page{t: t, conn: conn, msgs: make(chan message, 64), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				p.err = err
				return
			}
			var m message
			if json.Unmarshal(b, &m) == nil {
				p.msgs <- m
			}
		}
	}()
	t.Cleanup(p.close)
	p.expect("hello")
	p.send(message{Type: "hello", PC: havePC})
	return p
}

func (p *page) close() {
	p.conn.CloseNow()
	<-p.done
	if p.pc != nil {
		p.pc.Close()
	}
}

func (p *page) send(m message) {
	p.t.Helper()
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := p.conn.Write(ctx, websocket.MessageText, b); err != nil {
		p.t.Fatal(err)
	}
}

// expect awaits the next message of type typ (others are skipped).
func (p *page) expect(typ string) message {
	p.t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case m := <-p.msgs:
			if m.Type == typ {
				return m
			}
		case <-timer.C:
			p.t.Fatalf("no %q message within %s", typ, wait)
		}
	}
}

// answerOffer answers the server's SDP offer with a pion PeerConnection (loopback only).
func (p *page) answerOffer(sdp string) {
	p.t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		p.t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
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

func awaitConnected(t *testing.T, h *harness, id int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for { // pion reports state by callback only; bounded poll
		if as := h.srv.agentByID(id); as != nil && as.leg.Connected() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent's PeerConnection did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Rule (issue 7, docs/ivr.md): Offer to an agent without a page fails at once; with a page the
// offer shows as incoming with the caller's number; decline → ErrDeclined (a missed offer, the
// queue moves on); the ACD withdrawing the offer (ctx) → the page is told; answer → an
// AgentLeg whose Done closes when the page hangs up.
func TestOfferDeclineWithdrawAnswerHangup(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	if _, err := h.srv.Offer(ctx, ivr.Offer{CallID: "c0", AgentID: 1, From: "+15550123"}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("offer without page: %v", err)
	}
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	sdp := p.expect("offer").SDP
	if _, err := h.srv.Offer(ctx, ivr.Offer{CallID: "c0", AgentID: 1}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("offer to a page whose audio is not up: %v", err)
	}
	p.answerOffer(sdp)
	awaitConnected(t, h, 1)
	if !h.srv.Connected(1) || h.srv.Connected(2) {
		t.Fatal("Connected: want agent 1 only")
	}
	p.send(message{Type: "state", State: "available"})
	if m := p.expect("state"); m.State != "available" {
		t.Fatalf("state %q", m.State)
	}

	type result struct {
		leg ivr.AgentLeg
		err error
	}
	offer := func(ctx context.Context, id string) chan result {
		ch := make(chan result, 1)
		go func() {
			leg, err := h.srv.Dialer().Offer(ctx, ivr.Offer{CallID: id, AgentID: 1, From: "+15550123", Queue: "support"})
			ch <- result{leg, err}
		}()
		return ch
	}
	get := func(ch chan result) result {
		select {
		case r := <-ch:
			return r
		case <-time.After(wait):
			t.Fatal("Offer did not return")
		}
		return result{}
	}

	ch := offer(ctx, "c1")
	if m := p.expect("incoming"); m.Call == nil || m.Call.From != "+15550123" || m.Call.ID != "c1" {
		t.Fatalf("incoming: %+v", m.Call)
	}
	p.send(message{Type: "decline", CallID: "c1"})
	if r := get(ch); !errors.Is(r.err, ErrDeclined) || !errors.Is(r.err, ivr.ErrNoAnswer) {
		t.Fatalf("decline: %v", r.err)
	}

	rctx, cancel := context.WithCancel(ctx)
	ch = offer(rctx, "c2")
	p.expect("incoming")
	cancel() // ring timeout
	if r := get(ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("withdrawn: %v", r.err)
	}
	if m := p.expect("withdrawn"); m.CallID != "c2" {
		t.Fatalf("withdrawn %q", m.CallID)
	}

	ch = offer(ctx, "c3")
	p.expect("incoming")
	if _, err := h.srv.Offer(ctx, ivr.Offer{CallID: "c4", AgentID: 1}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second offer while ringing: %v", err)
	}
	p.send(message{Type: "answer", CallID: "c3"})
	r := get(ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if m := p.expect("call"); m.Call.State != "talking" {
		t.Fatalf("call state %q", m.Call.State)
	}
	p.send(message{Type: "hold"})
	if m := p.expect("call"); m.Call.State != "held" || !h.acd.did("hold:c3") {
		t.Fatalf("after hold: %+v", m.Call)
	}
	p.send(message{Type: "resume"})
	if m := p.expect("call"); m.Call.State != "talking" || !h.acd.did("resume:c3") {
		t.Fatalf("after resume: %+v", m.Call)
	}
	p.send(message{Type: "transfer", Queue: "nowhere"})
	if m := p.expect("error"); !strings.Contains(m.Message, "unknown queue") {
		t.Fatalf("transfer error: %q", m.Message)
	}
	p.send(message{Type: "hangup"})
	select {
	case <-r.leg.Done():
	case <-time.After(wait):
		t.Fatal("leg not done after the page's hang-up")
	}
	p.expect("ended")
	if err := r.leg.Hangup(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
}

// Rule (issue 7): a WebSocket reconnect with the page's PeerConnection alive resumes the
// session without a new offer; a reloaded page (no PeerConnection) gets a new offer; a page
// that stays away past the grace frees the session (leg closed, agent offline).
func TestReconnectResumesAndClosedPageFreesSession(t *testing.T) {
	h := newHarness(t, Options{ReconnectGrace: time.Second})
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	p.answerOffer(p.expect("offer").SDP)
	awaitConnected(t, h, 1)
	pc := p.pc
	p.pc = nil
	p.conn.CloseNow() // the network blinks; the PeerConnection stays up
	<-p.done
	p2 := openPage(t, h, c, true)
	p2.expect("idle")
	select {
	case m := <-p2.msgs:
		if m.Type == "offer" {
			t.Fatal("a new offer although the PeerConnection is alive")
		}
	default:
	}
	pc.Close()
	p2.close()
	p3 := openPage(t, h, c, false) // reloaded page
	p3.answerOffer(p3.expect("offer").SDP)
	awaitConnected(t, h, 1)
	p3.close()
	deadline := time.After(wait)
	for !h.acd.did("state:offline") {
		select {
		case <-h.acd.changed:
		case <-deadline:
			t.Fatal("agent not set offline after the grace")
		}
	}
	if h.srv.agentByID(1) != nil {
		t.Fatal("session not freed after the grace")
	}
}

// Rule: logging out frees the softphone session at once.
func TestLogoutFreesSession(t *testing.T) {
	h := newHarness(t, Options{})
	_, c := login(t, h.http.URL, "agent2@example.com", "agentpass")
	p := openPage(t, h, c, false)
	p.expect("offer")
	req, _ := http.NewRequest("POST", h.http.URL+"/logout", nil)
	req.AddCookie(c)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if h.srv.agentByID(2) != nil {
		t.Fatal("session still there after logout")
	}
	select {
	case <-p.done:
	case <-time.After(wait):
		t.Fatal("WebSocket not closed by logout")
	}
}

// Rule (docs/ivr.md): the integrator's one dialer picks the softphone for a connected agent and
// the SIP phone otherwise.
func TestPreferSoftphoneFallsBackToPhones(t *testing.T) {
	h := newHarness(t, Options{})
	phoneErr := errors.New("sip phone rang")
	d := PreferSoftphone(h.srv, ivr.AgentDialerFunc(func(context.Context, ivr.Offer) (ivr.AgentLeg, error) {
		return nil, phoneErr
	}))
	if _, err := d.Offer(context.Background(), ivr.Offer{CallID: "c", AgentID: 1}); !errors.Is(err, phoneErr) {
		t.Fatalf("no page: %v, want the phone dialer", err)
	}
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	p.answerOffer(p.expect("offer").SDP)
	awaitConnected(t, h, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := d.Offer(ctx, ivr.Offer{CallID: "c", AgentID: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("page connected: %v, want the softphone ringing until ctx ends", err)
	}
	p.expect("incoming")
}

// Rule: a second page of the same agent takes over; the first is closed with StatusReplaced.
func TestSecondPageReplacesFirst(t *testing.T) {
	h := newHarness(t, Options{})
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p1 := openPage(t, h, c, false)
	p1.expect("offer")
	p2 := openPage(t, h, c, false)
	p2.expect("offer")
	select {
	case <-p1.done:
	case <-time.After(wait):
		t.Fatal("first page not closed")
	}
	if websocket.CloseStatus(p1.err) != StatusReplaced {
		t.Fatalf("first page closed with %v, want %d", p1.err, StatusReplaced)
	}
}
