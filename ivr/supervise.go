package ivr

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// Supervisors (issue 21): a supervisor joins a call connected to an agent with an audio leg of
// their own (their page's WebRTC leg, or any media.Endpoint) in one of three modes:
//
//   - SuperviseMonitor: the supervisor hears the caller and the agent; nobody hears the
//     supervisor. The caller–agent bridge is left as it was.
//   - SuperviseWhisper: as monitor, and the agent hears the supervisor too; the caller does
//     not. The agent's audio now comes from the call's mixer (the caller and the supervisor).
//   - SuperviseBarge: a three-way call: everyone hears the two others. The caller's audio
//     comes from the mixer too, so the call's recording (which taps what the caller hears:
//     its right channel) keeps the supervisor's voice beside the agent's.
//
// The mix is a media.Mixer (one goroutine) with the caller's endpoint, the agent's (the
// endpoint the caller is bridged to: the WebRTC leg's, a SIP phone's, the cluster's internal
// leg: whatever the agent answered on) and the supervisor's. A watcher goroutine per
// supervision ends it when the call leaves its agent (hang-up, transfer to a queue) or the
// supervisor's leg closes, and follows the call to a new agent after a transfer (the agent's
// member is replaced). It polls the call's bridge (superviseWatch) rather than hooking the
// talk loop: the call's goroutine never waits for a supervisor.

// SuperviseMode is how a supervisor takes part in a call.
type SuperviseMode string

// Supervision modes.
const (
	SuperviseMonitor SuperviseMode = "monitor"
	SuperviseWhisper SuperviseMode = "whisper"
	SuperviseBarge   SuperviseMode = "barge"
)

// Valid reports whether m is one of the three modes.
func (m SuperviseMode) Valid() bool {
	return m == SuperviseMonitor || m == SuperviseWhisper || m == SuperviseBarge
}

// Errors of Supervise.
var (
	// ErrBadMode is returned for a mode that is not monitor, whisper or barge.
	ErrBadMode = errors.New("ivr: supervise: mode must be monitor, whisper or barge")
	// ErrNotBridged is returned when the call is connected but its caller is not bridged to
	// the agent now (on hold, or between agents): try again.
	ErrNotBridged = errors.New("ivr: supervise: the call is not bridged to its agent now (on hold?)")
	// ErrSupervised is returned when the supervisor's leg already supervises a call.
	ErrSupervised = errors.New("ivr: supervise: the supervisor's leg is already in use")
)

// superviseWatch is how often a supervision checks that its call is still bridged to the same
// agent (after a transfer the mix follows the new agent; when the call ends, so does the mix).
const superviseWatch = 100 * time.Millisecond

// Supervision is one supervisor on one call; Stop ends it. ACD.Supervise returns this node's
// own (the call's mix is here); a node of a cluster reaches a call another node owns with a
// supervision of its own kind (package sip: the call's node mixes, the supervisor's audio
// crosses the cluster's internal leg), which callers use through the same methods.
type Supervision interface {
	// CallID is the supervised call.
	CallID() string
	// AgentID is the agent the call is connected to now.
	AgentID() int64
	// Mode is the current mode.
	Mode() SuperviseMode
	// SetMode changes the supervisor's mode at once (monitor → whisper → barge, or back):
	// ErrBadMode, or ErrNoCall once the supervision has ended.
	SetMode(mode SuperviseMode) error
	// Done is closed once the supervision has ended (Stop, the call ended, the supervisor's
	// leg closed) and the supervisor hears nothing more.
	Done() <-chan struct{}
	// Stop ends the supervision and returns once it has ended. Idempotent.
	Stop()
}

// supervision is a Supervision of a call of this node: the supervisor's endpoint is a member
// of the call's mix.
type supervision struct {
	acd    *ACD
	callID string
	sess   *session
	mixer  *media.Mixer
	conf   *conference // the conference supervised (its mixer: not the supervision's to close), nil for a two-party call
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	// mu guards the members and the mode (the watcher goroutine and SetMode).
	mu     sync.Mutex
	mode   SuperviseMode
	caller *media.MixMember
	agent  *media.MixMember
	sup    *media.MixMember
}

// Supervise joins the supervisor's endpoint sup to the call callID, connected to an agent, in
// mode. It returns ErrBadMode, ErrNoCall (no call of that id is connected to an agent on this
// node), ErrNotBridged, or the mixer's error (sup closed). The supervision ends by itself when
// the call does; Stop ends it before.
func (a *ACD) Supervise(callID string, sup *media.Endpoint, mode SuperviseMode) (Supervision, error) {
	if !mode.Valid() {
		return nil, fmt.Errorf("%w: %q", ErrBadMode, mode)
	}
	a.mu.Lock()
	s := a.live[callID]
	var cf *conference
	if s != nil && s.conf != nil && !s.conf.closed {
		cf = s.conf
	}
	a.mu.Unlock()
	if s == nil || s.caller == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoCall, callID)
	}
	if cf != nil {
		return a.superviseConference(callID, s, cf, sup, mode)
	}
	agentEP := media.BridgedTo(s.caller)
	if agentEP == nil {
		return nil, ErrNotBridged
	}
	if agentEP == sup || s.caller == sup {
		return nil, ErrSupervised
	}
	sv := &supervision{acd: a, callID: callID, sess: s, mixer: media.NewMixer(), stop: make(chan struct{}), done: make(chan struct{}), mode: mode}
	var err error
	if sv.caller, err = sv.mixer.Add(s.caller, media.MemberOptions{}); err == nil {
		if sv.agent, err = sv.mixer.Add(agentEP, media.MemberOptions{}); err == nil {
			sv.sup, err = sv.mixer.Add(sup, media.MemberOptions{})
		}
	}
	if err != nil {
		sv.mixer.Close()
		return nil, fmt.Errorf("ivr: supervise %s: %w", callID, err)
	}
	sv.mu.Lock()
	sv.applyLocked()
	sv.mu.Unlock()
	go sv.watch()
	return sv, nil
}

// OwnCall makes callID, an agent's own call that the ACD does not serve (an outbound call
// placed from the agent's page: sip), a connected call of agent agentID whose far end far is
// bridged to the agent's audio, so that supervisors (Supervise: monitor, whisper, barge) and
// added external parties (Conference) reach it as they reach a queued call. Hold, resume and
// transfers answer ErrNoCall for it, and ConferenceAgent too (an added agent is rung as a
// queue rings them: the call has no queue). The call's owner calls end once the call is over
// (supervisions and conference parties end with it); end is idempotent. A call id already
// connected is left as it is (end then does nothing).
func (a *ACD) OwnCall(callID string, agentID int64, far *media.Endpoint) (end func()) {
	s := &session{done: make(chan struct{}), agentID: agentID, caller: far, own: true}
	a.mu.Lock()
	if _, taken := a.live[callID]; taken || callID == "" || far == nil {
		a.mu.Unlock()
		return func() {}
	}
	a.live[callID] = s
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			if a.live[callID] == s {
				delete(a.live, callID)
			}
			a.mu.Unlock()
			close(s.done)
		})
	}
}

// superviseConference joins the supervisor to the mix of a conference (one mix per call): the
// supervisor is one more member, who hears everyone; monitoring nobody hears them, whispering
// the agent who holds the call does (while that agent is in the conference), barging everyone.
// The conference's members are left as they are. The supervision ends with the conference:
// when the last added party leaves and the call is a two-party call again, the supervisor
// starts a new supervision of it.
func (a *ACD) superviseConference(callID string, s *session, cf *conference, sup *media.Endpoint, mode SuperviseMode) (Supervision, error) {
	a.mu.Lock()
	agent := cf.agent // a transfer of the agent's place changes it (conference_ctl.go)
	a.mu.Unlock()
	if cf.caller.Endpoint() == sup || agent.Endpoint() == sup {
		return nil, ErrSupervised
	}
	sv := &supervision{acd: a, callID: callID, sess: s, mixer: cf.mixer, conf: cf, stop: make(chan struct{}), done: make(chan struct{}),
		mode: mode, caller: cf.caller, agent: agent}
	// Heard by nobody from the first tick (the conference's members hear the mix already;
	// applyLocked then gives the mode's place).
	m, err := cf.mixer.Add(sup, media.MemberOptions{HeardBy: media.HeardByNobody})
	if err != nil {
		if errors.Is(err, media.ErrMixerFull) {
			return nil, ErrConferenceFull
		}
		if errors.Is(err, media.ErrMixerClosed) { // the conference ended meanwhile: try again
			return nil, ErrNotBridged
		}
		return nil, fmt.Errorf("ivr: supervise the conference %s: %w", callID, err)
	}
	sv.mu.Lock()
	sv.sup = m
	sv.applyLocked()
	sv.mu.Unlock()
	go sv.watch()
	return sv, nil
}

// applyLocked sets each member's place for the mode (sv.mu held, so that two mode changes
// apply in order; media.MixMember.Set takes only the mixer's own lock and calls nothing back).
// In a conference only the supervisor's place changes: everyone else hears everyone already.
func (sv *supervision) applyLocked() {
	if sv.conf != nil {
		switch sv.mode {
		case SuperviseMonitor:
			sv.sup.Set(media.MemberOptions{Send: true, HeardBy: media.HeardByNobody})
		case SuperviseWhisper:
			sv.sup.Set(media.MemberOptions{Send: true, HeardBy: media.HeardByOne, Listener: sv.agent})
		case SuperviseBarge:
			sv.sup.Set(media.MemberOptions{Send: true})
		}
		return
	}
	switch sv.mode {
	case SuperviseMonitor:
		sv.caller.Set(media.MemberOptions{})
		sv.agent.Set(media.MemberOptions{})
		sv.sup.Set(media.MemberOptions{Send: true, HeardBy: media.HeardByNobody})
	case SuperviseWhisper:
		sv.caller.Set(media.MemberOptions{})
		sv.agent.Set(media.MemberOptions{Send: true})
		sv.sup.Set(media.MemberOptions{Send: true, HeardBy: media.HeardByOne, Listener: sv.agent})
	case SuperviseBarge:
		sv.caller.Set(media.MemberOptions{Send: true})
		sv.agent.Set(media.MemberOptions{Send: true})
		sv.sup.Set(media.MemberOptions{Send: true})
	}
}

// SetMode changes the supervisor's mode at once (monitor → whisper → barge, or back).
func (sv *supervision) SetMode(mode SuperviseMode) error {
	if !mode.Valid() {
		return fmt.Errorf("%w: %q", ErrBadMode, mode)
	}
	select {
	case <-sv.done:
		return fmt.Errorf("%w: %s", ErrNoCall, sv.callID)
	default:
	}
	sv.mu.Lock()
	sv.mode = mode
	sv.applyLocked()
	sv.mu.Unlock()
	return nil
}

// Mode is the current mode.
func (sv *supervision) Mode() SuperviseMode {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.mode
}

// AgentID is the agent the call is connected to now.
func (sv *supervision) AgentID() int64 {
	sv.acd.mu.Lock()
	defer sv.acd.mu.Unlock()
	return sv.sess.agentID
}

// CallID is the supervised call.
func (sv *supervision) CallID() string { return sv.callID }

// Done is closed once the supervision has ended (Stop, or the call ended) and the mix is gone.
func (sv *supervision) Done() <-chan struct{} { return sv.done }

// Stop ends the supervision: the caller and the agent hear each other through their bridge
// alone again, the supervisor's leg hears nothing more. It returns once the mix is gone.
// Idempotent.
func (sv *supervision) Stop() {
	sv.once.Do(func() { close(sv.stop) })
	<-sv.done
}

// watch ends the supervision when the call leaves its agent or the supervisor's leg closes,
// and moves the agent's member to the new agent after a transfer.
func (sv *supervision) watch() {
	defer close(sv.done)
	if sv.conf != nil {
		sv.watchConference()
		return
	}
	defer sv.mixer.Close()
	t := time.NewTicker(superviseWatch)
	defer t.Stop()
	for {
		select {
		case <-sv.stop:
			return
		case <-sv.sess.done:
			return
		case <-t.C:
		}
		sv.mu.Lock()
		supEP, agentEP := sv.sup.Endpoint(), sv.agent.Endpoint()
		sv.mu.Unlock()
		if supEP.Closed() {
			return
		}
		now := media.BridgedTo(sv.sess.caller)
		if now == nil || now == agentEP {
			continue // on hold, or the same agent
		}
		// A transfer to another agent: the mix follows the call.
		m, err := sv.mixer.Add(now, media.MemberOptions{})
		if err != nil {
			return
		}
		sv.mu.Lock()
		old := sv.agent
		sv.agent = m
		sv.applyLocked()
		sv.mu.Unlock()
		old.Remove()
	}
}

// watchConference ends a supervision of a conference when it is stopped, the call leaves its
// agent, the conference ends, or the supervisor's leg closes: the supervisor leaves the
// conference's mix (which goes on without them).
func (sv *supervision) watchConference() {
	defer sv.sup.Remove()
	t := time.NewTicker(superviseWatch)
	defer t.Stop()
	for {
		select {
		case <-sv.stop:
			return
		case <-sv.sess.done:
			return
		case <-sv.conf.over:
			return
		case <-t.C:
			if sv.sup.Endpoint().Closed() {
				return
			}
		}
	}
}
