package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

// Bounds of the signalling connection.
const (
	writeTimeout = 5 * time.Second
	maxMessage   = 64 << 10 // an SDP answer fits easily
	outQueue     = 64
)

// StatusReplaced is the WebSocket close code (RFC 6455 §7.4.2, private range) an older page
// gets when the agent opens the softphone again elsewhere; the page does not reconnect.
const StatusReplaced websocket.StatusCode = 4001

// agentSession is one logged-in agent's softphone: its WebRTC leg for the whole session, the
// WebSocket currently attached (a reconnect replaces it), the offer ringing and the call.
//
// mu guards the fields below it and is held only to read or change them and to queue a
// message for the page (a send on the writer's buffered channel that never blocks): the ACD,
// the leg and the WebSocket are called after it is released. Messages are queued under mu, so
// the page gets them in the order the session's state changed.
type agentSession struct {
	s     *Server
	agent Agent
	leg   *media.WebRTCLeg

	mu     sync.Mutex
	conn   *wsConn // nil while the page is away
	grace  *time.Timer
	state  ivr.AgentState
	seq    uint64 // ivr.AgentStatus.Seq of state: an older status is ignored
	ring   *ringing
	call   *callLeg
	closed bool
	audio  media.WebRTCState // the leg's PeerConnection state; "" before the first
}

// wsConn is one attached WebSocket with its writer queue.
type wsConn struct {
	c    *websocket.Conn
	out  chan []byte
	done chan struct{}
}

type ringing struct {
	offer    ivr.Offer
	at       time.Time
	answered chan struct{}
	declined chan struct{}
	once     sync.Once
}

// newAgentSession makes the session of a; its state comes later, through applyStatus (attach).
func newAgentSession(s *Server, a Agent, leg *media.WebRTCLeg) *agentSession {
	return &agentSession{s: s, agent: a, leg: leg}
}

func (as *agentSession) connected() bool {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.conn != nil && !as.closed
}

// message is every signalling message, both ways; only the fields of its type are set.
type message struct {
	Type    string `json:"type"`
	SDP     string `json:"sdp,omitempty"`
	PC      bool   `json:"pc,omitempty"`
	State   string `json:"state,omitempty"`
	Digit   string `json:"digit,omitempty"`
	Muted   *bool  `json:"muted,omitempty"`
	AgentID int64  `json:"agent_id,omitempty"`
	Queue   string `json:"queue,omitempty"`
	// Number and Mode (transfer): an outside number, and "blind" or "consult" (web/transfer.go).
	Number  string         `json:"number,omitempty"`
	Mode    string         `json:"mode,omitempty"`
	CallID  string         `json:"call_id,omitempty"`
	Call    *callJSON      `json:"call,omitempty"`
	Agent   map[string]any `json:"agent,omitempty"`
	APIBase string         `json:"api_base,omitempty"`
	Message string         `json:"message,omitempty"`
	// Paused (recording) pauses (true) or resumes the call's recording.
	Paused *bool `json:"paused,omitempty"`
	// Extend (wrap_up): the agent's wrap-up ends this many seconds from now.
	Extend int `json:"extend,omitempty"`
	// ICEServers (hello) are the STUN/TURN servers the page gives its RTCPeerConnection.
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
}

// callJSON is the call as the page shows it.
type callJSON struct {
	ID         string `json:"id"`
	Direction  string `json:"direction"`
	From       string `json:"from"`
	To         string `json:"to,omitempty"`
	CallerName string `json:"caller_name,omitempty"`
	Line       string `json:"line,omitempty"`
	Queue      string `json:"queue,omitempty"`
	MenuPath   string `json:"menu_path,omitempty"`
	Language   string `json:"language,omitempty"`
	// Callback: the offer is a queue callback (the caller asked to be called back; accepting
	// dials them).
	Callback bool   `json:"callback,omitempty"`
	State    string `json:"state"` // ringing | talking | held
	Since    string `json:"since"` // RFC 3339: when the current state began (the timer's origin)
	// RecordingPaused: the agent paused the call's recording (Pause recording).
	RecordingPaused bool `json:"recording_paused,omitempty"`
}

// maxWrapUpExtend bounds one extension of a wrap-up (seconds).
const maxWrapUpExtend = 600

// WrapUpExtender is what an ACD implements when the page's Extend button may lengthen an
// agent's wrap-up: ExtendWrapUp makes the running wrap-up end d from now, or refuses
// (ivr.ErrBadState) when the agent is not in a wrap-up it times. *ivr.ACD implements it.
type WrapUpExtender interface {
	ExtendWrapUp(id int64, d time.Duration) (ivr.AgentStatus, error)
}

// errMalformed is the answer to a message the page should never send.
var errMalformed = errors.New("malformed message")

// parseMessage decodes one message from the page and checks its shape: a known type and the
// fields that type needs (the handlers then only check state).
func parseMessage(b []byte) (message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return message{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	switch m.Type {
	case "hello", "answer", "decline", "hangup", "hold", "resume", "ping", "consult_complete", "consult_cancel":
	case "answer_sdp":
		if m.SDP == "" {
			return message{}, fmt.Errorf("%w: answer_sdp without sdp", errMalformed)
		}
	case "state":
		if m.State == "" {
			return message{}, fmt.Errorf("%w: state without state", errMalformed)
		}
	case "mute":
		if m.Muted == nil {
			return message{}, fmt.Errorf("%w: mute without muted", errMalformed)
		}
	case "dtmf":
		if r := []rune(m.Digit); len(r) != 1 {
			return message{}, fmt.Errorf("%w: dtmf needs one key", errMalformed)
		} else if _, ok := media.EventOf(r[0]); !ok {
			return message{}, fmt.Errorf("%w: %q is not a DTMF key", errMalformed, m.Digit)
		}
	case "recording":
		if m.Paused == nil {
			return message{}, fmt.Errorf("%w: recording without paused", errMalformed)
		}
	case "wrap_up":
		if m.Extend < 1 || m.Extend > maxWrapUpExtend {
			return message{}, fmt.Errorf("%w: wrap_up extend must be 1 to %d seconds", errMalformed, maxWrapUpExtend)
		}
	case "transfer":
		named := 0
		for _, set := range []bool{m.AgentID != 0, m.Queue != "", m.Number != ""} {
			if set {
				named++
			}
		}
		if named != 1 {
			return message{}, fmt.Errorf("%w: transfer names one agent_id, one queue or one number", errMalformed)
		}
	default:
		return message{}, fmt.Errorf("%w: unknown type %q", errMalformed, m.Type)
	}
	return m, nil
}

// serve runs one WebSocket until it closes: it replaces any older connection, answers the
// page's messages, and on close starts the reconnect grace.
func (as *agentSession) serve(ctx context.Context, c *websocket.Conn) {
	c.SetReadLimit(maxMessage)
	wc := &wsConn{c: c, out: make(chan []byte, outQueue), done: make(chan struct{})}
	as.mu.Lock()
	if as.closed {
		as.mu.Unlock()
		c.Close(websocket.StatusGoingAway, "logged out")
		return
	}
	old := as.conn
	as.conn = wc
	if as.grace != nil {
		as.grace.Stop()
		as.grace = nil
	}
	// hello carries the state as of this moment and is queued first (wc.out is empty), so
	// every later state message on this connection is newer than it.
	hello, _ := json.Marshal(message{Type: "hello", Agent: agentJSON(as.agent), APIBase: as.s.opts.APIBase, State: string(as.state),
		ICEServers: as.s.opts.ICEServers})
	wc.out <- hello
	as.mu.Unlock()
	if old != nil {
		old.c.Close(StatusReplaced, "replaced by a newer connection")
	}
	writerDone := make(chan struct{})
	go func() { // the one writer of this connection
		defer close(writerDone)
		for {
			select {
			case b := <-wc.out:
				wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
				err := c.Write(wctx, websocket.MessageText, b)
				cancel()
				if err != nil {
					c.CloseNow()
					return
				}
			case <-wc.done:
				return
			}
		}
	}()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			break
		}
		m, err := parseMessage(b)
		if err != nil {
			as.send(message{Type: "error", Message: err.Error()}) // errMalformed: the page's own message
			continue
		}
		as.handle(ctx, m)
	}
	close(wc.done)
	<-writerDone
	c.CloseNow()
	as.mu.Lock()
	if as.conn == wc && !as.closed {
		as.conn = nil
		id := as.agent.ID
		as.grace = time.AfterFunc(as.s.opts.ReconnectGrace, func() { as.s.endAgent(id) })
	}
	as.mu.Unlock()
}

// send queues m for the attached page; with no page, or a page too slow to keep up, it is dropped
// (the page asks for the whole state again when it reconnects).
func (as *agentSession) send(m message) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	as.mu.Lock()
	slow := as.queueLocked(b)
	as.mu.Unlock()
	slow.drop()
}

// queueLocked puts b on the attached page's writer queue without blocking. A page that cannot
// keep up is returned, to be dropped once mu is released (nil otherwise).
func (as *agentSession) queueLocked(b []byte) *wsConn {
	wc := as.conn
	if wc == nil {
		return nil
	}
	select {
	case wc.out <- b:
		return nil
	default:
		return wc
	}
}

// drop closes a page that cannot keep up: it reconnects and resynchronises. Nil does nothing.
func (wc *wsConn) drop() {
	if wc != nil {
		wc.c.CloseNow()
	}
}

// applyStatus records the agent's state and tells the page, unless st is older (by Seq) than
// the state the session has: statuses come from the ACD's notifier, from attach and from the
// page's own state button, and only the newest counts.
func (as *agentSession) applyStatus(st ivr.AgentStatus) {
	b, err := json.Marshal(message{Type: "state", State: string(st.State)})
	if err != nil {
		return
	}
	as.mu.Lock()
	if st.Seq < as.seq {
		as.mu.Unlock()
		return
	}
	as.state, as.seq = st.State, st.Seq
	slow := as.queueLocked(b)
	as.mu.Unlock()
	slow.drop()
}

// handle acts on one message from the page.
func (as *agentSession) handle(ctx context.Context, m message) {
	fail := func(op string, err error) {
		text := pageText(err)
		if text == "" { // internal: the page gets an id to quote, the log the cause
			id := logInternal(as.s.log, "web: agent action failed", err, "agent", as.agent.ID, "op", op)
			as.send(message{Type: "error", Message: fmt.Sprintf("%s failed: internal error (id %s)", op, id)})
			return
		}
		as.s.log.Info("web: agent action refused", "agent", as.agent.ID, "op", op, "err", err)
		as.send(message{Type: "error", Message: op + ": " + text})
	}
	switch m.Type {
	case "hello": // (re)connected page: renegotiate unless its PeerConnection is still up
		if m.PC && as.leg.Alive() {
			// The page keeps its PeerConnection: tell it the audio's state as this node sees
			// it, so that a page that came back from another node's loss, and waits for its
			// audio before it asks for its state again, does not wait for an offer that will
			// not come.
			as.mu.Lock()
			audio := as.audio
			as.mu.Unlock()
			if audio != "" {
				as.send(message{Type: "audio", State: string(audio)})
			}
		} else {
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			sdp, err := as.leg.Offer(octx)
			cancel()
			if err != nil {
				fail("offer", err)
				return
			}
			as.mu.Lock()
			as.audio = "new" // a new PeerConnection: its states follow
			as.mu.Unlock()
			as.send(message{Type: "offer", SDP: sdp})
		}
		as.sendCallState()
	case "answer_sdp":
		if err := as.leg.SetAnswer(m.SDP); err != nil {
			fail("answer", err)
		}
	case "state":
		st := ivr.AgentState(m.State)
		if st != ivr.StateAvailable && st != ivr.StateAway {
			fail("state", ivr.ErrBadState)
			return
		}
		if st == ivr.StateAvailable && as.audioFailed() {
			fail("state", errAudioFailed)
			return
		}
		got, err := as.s.opts.ACD.SetState(as.agent.ID, st)
		if err != nil {
			fail("state", err)
			return
		}
		as.applyStatus(got)
	case "answer", "decline":
		as.mu.Lock()
		r := as.ring
		as.mu.Unlock()
		if r == nil || (m.CallID != "" && m.CallID != r.offer.CallID) {
			fail(m.Type, pageError("no call is ringing"))
			return
		}
		r.once.Do(func() {
			if m.Type == "answer" {
				close(r.answered)
			} else {
				close(r.declined)
			}
		})
	case "hangup":
		if cl := as.currentCall(); cl != nil {
			cl.agentHungUp()
			return
		}
		fail("hangup", pageError("no call"))
	case "hold", "resume":
		cl := as.currentCall()
		if cl == nil {
			fail(m.Type, ivr.ErrNoCall)
			return
		}
		var err error
		if cl.outbound {
			err = pageError("hold is for queue calls")
		} else if m.Type == "hold" {
			err = as.s.opts.ACD.Hold(ctx, cl.id)
		} else {
			err = as.s.opts.ACD.Resume(ctx, cl.id)
		}
		if err != nil {
			fail(m.Type, err)
			return
		}
		cl.setHeld(m.Type == "hold")
		as.sendCallState()
	case "mute":
		if m.Muted != nil {
			as.leg.SetMuted(*m.Muted)
		}
	case "dtmf":
		r := []rune(m.Digit)
		if len(r) != 1 {
			fail("dtmf", pageError("one key at a time"))
			return
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := as.leg.SendDTMF(dctx, r[0], 0)
		cancel()
		if err != nil {
			fail("dtmf", err)
		}
	case "transfer":
		cl := as.currentCall()
		if cl == nil || cl.outbound {
			fail("transfer", ivr.ErrNoCall)
			return
		}
		as.pageTransfer(ctx, cl, m)
	case "consult_complete", "consult_cancel":
		cl := as.currentCall()
		if cl == nil || cl.outbound {
			fail("transfer", ivr.ErrNoCall)
			return
		}
		if err := as.pageConsult(ctx, cl, m.Type == "consult_complete"); err != nil {
			if t := transferText(err); t != "" {
				err = pageError(t)
			}
			fail("transfer", err)
		}
	case "recording":
		cl := as.currentCall()
		if cl == nil {
			fail("recording", ivr.ErrNoCall)
			return
		}
		if as.s.opts.Recordings == nil {
			fail("recording", pageError("this gateway does not record calls"))
			return
		}
		err := as.s.opts.Recordings.PauseCall(ctx, cl.id, as.agent.ID, *m.Paused)
		if errors.Is(err, ErrNotRecorded) {
			fail("recording", pageError("this call is not being recorded here (not recorded, or recorded by the node that owns the call)"))
			return
		}
		if err != nil {
			fail("recording", err)
			return
		}
		cl.mu.Lock()
		cl.info.RecordingPaused = *m.Paused
		cl.mu.Unlock()
		as.sendCallState()
	case "wrap_up":
		ext, ok := as.s.opts.ACD.(WrapUpExtender)
		if !ok {
			fail("wrap-up", pageError("this gateway cannot extend a wrap-up; press Away to stay out of calls longer"))
			return
		}
		got, err := ext.ExtendWrapUp(as.agent.ID, time.Duration(m.Extend)*time.Second)
		if errors.Is(err, ivr.ErrBadState) {
			fail("wrap-up", pageError("you are not in a wrap-up this gateway can extend (it ended, or the node that ran the call times it)"))
			return
		}
		if err != nil {
			fail("wrap-up", err)
			return
		}
		as.applyStatus(got)
	case "ping":
		as.send(message{Type: "pong"})
	default:
		fail(m.Type, pageError("unknown message"))
	}
}

// errAudioFailed refuses "available" while the agent's audio path is down: every offer would
// ring a page that cannot hear the caller, be missed, and count against the agent.
var errAudioFailed = pageError("your audio is not connected (ICE failed: a firewall may block the " +
	"media's UDP, and no TCP or TURN path worked); you cannot take calls until it connects — press Retry audio, " +
	"or ask your administrator about webrtc.tcp_port or a TURN server")

// audioFailed reports whether the leg's last PeerConnection failed or was closed (and no new
// one was offered since).
func (as *agentSession) audioFailed() bool {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.audio == media.WebRTCFailed || as.audio == "closed"
}

// audioChanged is the leg's state hook (pion's goroutine, no lock held): the page is told;
// an agent whose audio failed while available is set away at once, with the reason, so that the
// ACD stops offering calls nobody can hear (each would be missed and count against the agent).
func (as *agentSession) audioChanged(st media.WebRTCState) {
	as.mu.Lock()
	as.audio = st
	state, closed := as.state, as.closed
	as.mu.Unlock()
	if closed {
		return
	}
	as.send(message{Type: "audio", State: string(st)})
	if st != media.WebRTCFailed || state != ivr.StateAvailable {
		return
	}
	as.s.log.Warn("web: agent's audio failed (ICE); set away", "agent", as.agent.ID)
	got, err := as.s.opts.ACD.SetState(as.agent.ID, ivr.StateAway)
	if err != nil {
		as.s.log.Warn("web: set away after the audio failed", "agent", as.agent.ID, "err", err)
		return
	}
	as.applyStatus(got)
	as.send(message{Type: "error", Message: "You were set away: " + errAudioFailed.Error()})
}

func (as *agentSession) currentCall() *callLeg {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.call
}

// sendCallState tells the page what is ringing or connected now (after a reconnect too).
func (as *agentSession) sendCallState() {
	as.mu.Lock()
	r, cl := as.ring, as.call
	as.mu.Unlock()
	switch {
	case cl != nil:
		as.send(message{Type: "call", Call: cl.json()})
	case r != nil:
		as.send(message{Type: "incoming", Call: offerJSON(r.offer, r.at)})
	default:
		as.send(message{Type: "idle"})
	}
}

func offerJSON(o ivr.Offer, at time.Time) *callJSON {
	return &callJSON{ID: o.CallID, Direction: "inbound", From: o.From, CallerName: o.CallerName, Line: o.Line,
		Queue: o.Queue, MenuPath: o.MenuPath, Language: o.Language, Callback: o.Callback, State: "ringing", Since: at.UTC().Format(time.RFC3339)}
}

// offer rings the page and waits for answer, decline, withdrawal (ctx) or the session's end.
func (as *agentSession) offer(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
	r := &ringing{offer: o, at: time.Now(), answered: make(chan struct{}), declined: make(chan struct{})}
	as.mu.Lock()
	if as.closed || as.conn == nil {
		as.mu.Unlock()
		return nil, ErrNotConnected
	}
	if as.ring != nil || as.call != nil {
		as.mu.Unlock()
		return nil, ErrBusy
	}
	as.ring = r
	as.mu.Unlock()
	as.send(message{Type: "incoming", Call: offerJSON(o, r.at)})
	clearRing := func() {
		as.mu.Lock()
		if as.ring == r {
			as.ring = nil
		}
		as.mu.Unlock()
	}
	select {
	case <-r.answered:
		cl := &callLeg{as: as, id: o.CallID, info: *offerJSON(o, time.Now()), done: make(chan struct{})}
		cl.info.State = "talking"
		as.mu.Lock()
		as.ring = nil
		if as.closed {
			as.mu.Unlock()
			return nil, ErrNotConnected
		}
		as.call = cl
		as.mu.Unlock()
		as.send(message{Type: "call", Call: cl.json()})
		return cl, nil
	case <-r.declined:
		clearRing()
		as.send(message{Type: "withdrawn", CallID: o.CallID})
		return nil, ErrDeclined
	case <-ctx.Done():
		clearRing()
		as.send(message{Type: "withdrawn", CallID: o.CallID})
		return nil, fmt.Errorf("web: offer %s: %w", o.CallID, context.Cause(ctx))
	}
}

func (as *agentSession) startCall(callID, to string) (ivr.AgentLeg, error) {
	cl := &callLeg{as: as, id: callID, outbound: true, done: make(chan struct{}),
		info: callJSON{ID: callID, Direction: "outbound", To: to, State: "dialing", Since: time.Now().UTC().Format(time.RFC3339)}}
	as.mu.Lock()
	switch {
	case as.closed || as.conn == nil:
		as.mu.Unlock()
		return nil, ErrNotConnected
	case as.ring != nil || as.call != nil:
		as.mu.Unlock()
		return nil, ErrBusy
	}
	as.call = cl
	as.mu.Unlock()
	as.send(message{Type: "call", Call: cl.json()})
	return cl, nil
}

// close ends the session: a ringing offer is declined, a call hung up, the leg and the page closed.
func (as *agentSession) close() {
	as.mu.Lock()
	if as.closed {
		as.mu.Unlock()
		return
	}
	as.closed = true
	if as.grace != nil {
		as.grace.Stop()
	}
	r, cl, wc := as.ring, as.call, as.conn
	as.mu.Unlock()
	if r != nil {
		r.once.Do(func() { close(r.declined) })
	}
	if cl != nil {
		cl.agentHungUp()
	}
	if wc != nil {
		wc.c.Close(websocket.StatusNormalClosure, "logged out")
	}
	as.leg.Close()
}

// callLeg is the agent's answered side of one call (ivr.AgentLeg).
type callLeg struct {
	as       *agentSession
	id       string
	outbound bool

	mu   sync.Mutex
	info callJSON
	stop func()
	done chan struct{}
	once sync.Once
}

func (cl *callLeg) json() *callJSON {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	c := cl.info
	return &c
}

func (cl *callLeg) setHeld(held bool) {
	cl.mu.Lock()
	if held {
		cl.info.State = "held"
	} else {
		cl.info.State = "talking"
	}
	cl.mu.Unlock()
}

// Bridge joins the caller's endpoint to the agent's PeerConnection at once (no ICE or DTLS).
func (cl *callLeg) Bridge(caller *media.Endpoint) (func(), error) {
	select {
	case <-cl.done:
		return nil, fmt.Errorf("web: bridge call %s: agent hung up", cl.id)
	default:
	}
	stop, err := cl.as.leg.Bridge(caller)
	if err != nil {
		return nil, fmt.Errorf("web: bridge call %s: %w", cl.id, err)
	}
	cl.mu.Lock()
	cl.stop = stop
	if cl.info.State == "dialing" { // the far end answered: the timer starts now
		cl.info.Since = time.Now().UTC().Format(time.RFC3339)
	}
	cl.info.State = "talking" // answered, or resumed after hold
	cl.mu.Unlock()
	cl.as.send(message{Type: "call", Call: cl.json()})
	return stop, nil
}

// Channel reports the browser softphone (ivr.ChanneledLeg): the ACD's call.answered carries it
// and the ticket's session_type becomes webrtc (CF-1). The value is callevent.ChannelWebRTC.
func (cl *callLeg) Channel() string { return "webrtc" }

// Done is closed when the agent hung up (or the softphone session ended).
func (cl *callLeg) Done() <-chan struct{} { return cl.done }

// Hangup ends the agent's side: the page shows the call ended. Idempotent.
func (cl *callLeg) Hangup(context.Context) error {
	cl.end()
	return nil
}

func (cl *callLeg) agentHungUp() { cl.end() }

func (cl *callLeg) end() {
	cl.once.Do(func() {
		cl.mu.Lock()
		stop := cl.stop
		cl.mu.Unlock()
		if stop != nil {
			stop()
		}
		close(cl.done)
		as := cl.as
		as.mu.Lock()
		if as.call == cl {
			as.call = nil
		}
		as.mu.Unlock()
		as.send(message{Type: "ended", CallID: cl.id})
	})
}
