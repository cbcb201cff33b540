package ivr

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/switchboard-voice/switchboard/media"
)

// Conference (issue 21): the agent adds third parties to a call connected to them — another
// agent (ConferenceAgent: rung on their softphone or SIP phone as the queue rings them, busy on
// the call once they answer) or an external number dialled through the trunk (the dial plan
// checks it as an outbound call) — and every party hears every other one (media.Mixer, N-1
// mixing: the caller, the agent and each party, all sending and heard by all).
//
// The call's recording taps the caller's endpoint: its left channel is what the caller said,
// its right channel what the caller heard — in a conference the mix of everyone else (the
// agent and every added party). So the recording keeps everyone while the caller is in.
//
// Any party can leave, by hanging up:
//   - an added party: it is taken out of the mix (an added agent goes to wrap-up); once the
//     last one has left, the mixer closes and the caller and the agent hear each other through
//     their bridge again;
//   - the agent: the caller and the added parties stay connected (with one party left the mix
//     of two is a bridge); the agent is released at once (wrap-up); the call goes on, still
//     the agent's (its ticket and talk time), until the caller or the last party hangs up;
//   - the caller: the agent and the added parties stay connected (as Zendesk Talk keeps them),
//     the agent still busy on the call, until the agent or the last party hangs up.
//
// The conference is over once fewer than two of its people remain: then the call ends and
// whoever is left is hung up. While the caller and the agent are both in, the agent can hold
// (out of the mix, the others talking on) and hand their place over by a blind transfer to an
// agent or a queue (conference_ctl.go); once either of them left, hold and transfers are
// refused (ErrConferenceCallerLeft, ErrConferenceAgentLeft). When the caller leaves, the
// recording follows the agent (RecordingFollower): what the agent and the parties say after
// is kept.
//
// Ownership: the conference's membership (callerIn, agentIn, parties, closed) is guarded by
// ACD.mu; the call's goroutine (talk) decides, under it, whether the caller or the agent
// leaving ends the call (leaveConference); each party's watcher goroutine counts its party out
// (partyLeft). The mixer and its members are called with no lock of the ACD held.

// ConferenceLeg is an added party's leg: its endpoint, when it hung up, and hanging it up.
type ConferenceLeg interface {
	Endpoint() *media.Endpoint
	Done() <-chan struct{}
	Hangup(ctx context.Context) error
}

// Errors of Conference.
var (
	// ErrConferenceFull is returned when the call already has media.MaxMixMembers parties.
	ErrConferenceFull = errors.New("ivr: conference full")
	// ErrConferenced is wrapped by the refusals of hold and transfers in a conference
	// (conference_ctl.go: ErrConferenceConsult, ErrConferenceNumber, ErrConferenceCallerLeft,
	// ErrConferenceAgentLeft). (A supervisor joins a conference's own mix: Supervise.)
	ErrConferenced = errors.New("ivr: the call is a conference")
)

// conference is a call's mix of more than two parties.
type conference struct {
	sess   *session
	mixer  *media.Mixer
	caller *media.MixMember
	// agent is the agent's member: written by the call's goroutine under ACD.mu (a transfer
	// of the agent's place puts the new agent's there), read by it without the lock, by
	// others under it.
	agent *media.MixMember
	// over is closed when closed is set: the call's goroutine, serving a conference the caller
	// or the agent left, ends the call then.
	over chan struct{}

	// Guarded by ACD.mu: the added parties still in, whether the caller and the agent are,
	// and whether the conference is over.
	parties  int
	callerIn bool
	agentIn  bool
	closed   bool
}

// closeLocked marks the conference over (ACD.mu held); the caller closes the mixer after the
// unlock. It reports whether this call closed it.
func (cf *conference) closeLocked() bool {
	if cf.closed {
		return false
	}
	cf.closed = true
	close(cf.over)
	if cf.sess.conf == cf {
		cf.sess.conf = nil
	}
	return true
}

// Conference adds leg, answered, to the call callID connected to an agent on this node: from
// now on the caller, the agent and every added party hear one another. It returns ErrNoCall,
// ErrNotBridged (on hold), ErrConferenceFull, or the mixer's error; on an error leg is hung
// up. The party is in the call until it hangs up or the call ends (then it is hung up).
func (a *ACD) Conference(callID string, leg ConferenceLeg) error {
	err := a.conference(callID, leg)
	if err != nil {
		_ = leg.Hangup(context.Background())
		if l, ok := leg.(conferenceLeaver); ok {
			l.left()
		}
	}
	return err
}

// conferenceLeaver is a party leg with something to settle once it left the mix (an added
// agent: their bridge undone, their state freed for wrap-up). left is called once, on the
// party's watcher goroutine with no lock held, after the party is out of the mix.
type conferenceLeaver interface {
	left()
}

func (a *ACD) conference(callID string, leg ConferenceLeg) error {
	ep := leg.Endpoint()
	if ep == nil {
		return errors.New("ivr: conference: the party has no endpoint")
	}
	a.mu.Lock()
	s := a.live[callID]
	var cf *conference
	if s != nil {
		cf = s.conf
	}
	a.mu.Unlock()
	if s == nil || s.caller == nil {
		return fmt.Errorf("%w: %s", ErrNoCall, callID)
	}
	if cf == nil {
		agentEP := media.BridgedTo(s.caller)
		if agentEP == nil {
			return ErrNotBridged
		}
		cf = &conference{sess: s, mixer: media.NewMixer(), over: make(chan struct{}), callerIn: true, agentIn: true}
		var err error
		all := media.MemberOptions{Send: true}
		if cf.caller, err = cf.mixer.Add(s.caller, all); err == nil {
			cf.agent, err = cf.mixer.Add(agentEP, all)
		}
		if err != nil {
			cf.mixer.Close()
			return fmt.Errorf("ivr: conference %s: %w", callID, err)
		}
		a.mu.Lock()
		switch {
		case s.conf != nil: // another party's request made it meanwhile: join that one
			other := s.conf
			a.mu.Unlock()
			cf.mixer.Close()
			cf = other
		default:
			s.conf = cf
			a.mu.Unlock()
			go a.endConferenceWithCall(cf)
		}
	}
	a.mu.Lock()
	if cf.closed {
		a.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNoCall, callID)
	}
	cf.parties++
	a.mu.Unlock()
	m, err := cf.mixer.Add(ep, media.MemberOptions{Send: true})
	if err != nil {
		a.partyLeft(cf)
		if errors.Is(err, media.ErrMixerFull) {
			return ErrConferenceFull
		}
		return fmt.Errorf("ivr: conference %s: %w", callID, err)
	}
	go func() {
		select {
		case <-leg.Done():
		case <-s.done:
			_ = leg.Hangup(context.Background())
		}
		m.Remove()
		a.partyLeft(cf)
		if l, ok := leg.(conferenceLeaver); ok {
			l.left()
		}
	}()
	return nil
}

// partyLeft counts a party out. The last one closes the mix: with the caller and the agent
// both in, they hear each other through their bridge again; with one of them gone the
// conference is over and the call's goroutine ends the call (over).
func (a *ACD) partyLeft(cf *conference) {
	a.mu.Lock()
	cf.parties--
	last := cf.parties == 0 && cf.closeLocked()
	a.mu.Unlock()
	if last {
		cf.mixer.Close()
	}
}

// leaveConference is told by the call's goroutine that the caller (caller true) or the agent
// left. When the call is a conference with both of them in and a party still in, the one who
// left is taken out of the mix and the conference goes on (ok true): the caller goes on with the
// parties, or the agent with them. Otherwise (no conference, or it is ending) ok is false and
// the call ends as a two-party call does.
func (a *ACD) leaveConference(s *session, caller bool) (*conference, bool) {
	a.mu.Lock()
	cf := s.conf
	if cf == nil || cf.closed || cf.parties == 0 || !cf.callerIn || !cf.agentIn {
		a.mu.Unlock()
		return nil, false
	}
	if caller {
		cf.callerIn = false
	} else {
		cf.agentIn = false
		s.agentID = 0 // released: the call has no agent on it any more (CallAgent)
	}
	a.mu.Unlock()
	if caller {
		cf.caller.Remove()
	} else {
		cf.agent.Remove()
	}
	return cf, true
}

// conferenceRest serves, on the call's goroutine, a conference the caller or the agent left,
// until it is over: the last party left (cf.over), or the other of the caller and the agent
// left (gone). Hold and transfer requests are refused meanwhile, with refuse (which says who
// left).
func (a *ACD) conferenceRest(s *session, cf *conference, gone <-chan struct{}, refuse error) {
	for range 1 << 20 { // bounded: every turn is an event of this call
		select {
		case <-cf.over:
			return
		case <-gone:
			return
		case r := <-s.ctl:
			r.reply <- refuse
		}
	}
}

// endConferenceWithCall closes the mix when the call leaves its agent.
func (a *ACD) endConferenceWithCall(cf *conference) {
	<-cf.sess.done
	a.mu.Lock()
	cf.closeLocked()
	a.mu.Unlock()
	cf.mixer.Close()
}

// Conferenced reports whether the call callID is a conference now.
func (a *ACD) Conferenced(callID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.live[callID]
	return s != nil && s.conf != nil
}

// ConferenceAgent adds agent id to the call callID, connected to an agent on this node: the
// agent is reserved at once (ErrNoCall, ErrUnknownAgent, ErrAgentUnavailable — not
// available, or the agent on the call — are returned without ringing anyone), then rung as the
// queue rings agents (their page's softphone, else their SIP phone; in a cluster on the node
// they are attached to) for the queue's ring timeout, on a goroutine of its own. Once they
// answer they are busy on the call and join the conference; when they hang up they leave it
// (wrap-up, per the queue). Not answered, or the call over meanwhile, they are free again (a
// missed offer counts as the queue's do). joined, when set, is told the outcome once: nil
// when the agent is in the call, else why not.
func (a *ACD) ConferenceAgent(callID string, id int64, joined func(error)) error {
	a.mu.Lock()
	s := a.live[callID]
	var onCall int64
	if s != nil {
		onCall = s.agentID
	}
	a.mu.Unlock()
	if s == nil || s.call == nil {
		return fmt.Errorf("%w: %s", ErrNoCall, callID)
	}
	if id == onCall {
		return fmt.Errorf("%w: agent %d is the one on the call", ErrAgentUnavailable, id)
	}
	c, q := s.call, s.q
	node, err := a.reserve(c, id)
	if err != nil {
		return err
	}
	tell := func(err error) {
		if joined != nil {
			joined(err)
		}
	}
	go func() {
		// The ring ends with the call (the session's done).
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.done:
			case <-ctx.Done():
			}
			cancel()
		}()
		leg, err := a.offerReserved(ctx, c, q, id, node)
		if err != nil {
			tell(err)
			return
		}
		p, err := a.agentParty(c, q, id, leg)
		if err != nil {
			a.hangupAgent(ctx, leg)
			a.agentFree(id, q)
			a.log.Error("ivr: conference an agent", "call_id", callID, "agent_id", id, "error", err)
			tell(err)
			return
		}
		err = a.Conference(callID, p) // an error hangs the agent up and frees them (left)
		tell(err)
	}()
	return nil
}

// agentParty is an agent added to a conference, as a party: their leg's own RTP endpoint (a
// SIP phone), or one of a pair of endpoints sending to each other with the leg bridged to the
// other (the softphone's WebRTC leg only bridges to an endpoint).
type agentParty struct {
	a         *ACD
	q         *queueRec
	id        int64
	leg       AgentLeg
	ep        *media.Endpoint
	stop      func()
	closePair func()
	once      sync.Once
}

func (a *ACD) agentParty(c *Call, q *queueRec, id int64, leg AgentLeg) (*agentParty, error) {
	p := &agentParty{a: a, q: q, id: id, leg: leg, stop: func() {}, closePair: func() {}}
	if m, ok := leg.(*MediaAgentLeg); ok && m.Endpoint != nil {
		p.ep = m.Endpoint
		return p, nil
	}
	pr, ok := c.leg.(EndpointPairer)
	if !ok {
		return nil, errors.New("ivr: conference: the agent's leg has no RTP endpoint and the call cannot pair two")
	}
	x, y, closePair, err := pr.EndpointPair()
	if err != nil {
		return nil, fmt.Errorf("ivr: conference: endpoint pair: %w", err)
	}
	stop, err := leg.Bridge(y)
	if err != nil {
		closePair()
		return nil, fmt.Errorf("ivr: conference: bridge agent %d: %w", id, err)
	}
	p.ep, p.stop, p.closePair = x, stop, closePair
	return p, nil
}

func (p *agentParty) Endpoint() *media.Endpoint { return p.ep }
func (p *agentParty) Done() <-chan struct{}     { return p.leg.Done() }
func (p *agentParty) Hangup(ctx context.Context) error {
	return p.leg.Hangup(ctx)
}

// left undoes the agent's bridge, hangs their leg up and frees them (wrap-up).
func (p *agentParty) left() {
	p.once.Do(func() {
		p.stop()
		p.closePair()
		p.a.hangupAgent(context.Background(), p.leg)
		p.a.agentFree(p.id, p.q)
	})
}
