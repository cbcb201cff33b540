package ivr

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard-voice/switchboard/media"
)

// Conference (issue 21): the agent adds third parties to a call connected to them — another
// agent's phone, or an external number dialled through the trunk (the dial plan checks it as
// an outbound call) — and every party hears every other one (media.Mixer, N-1 mixing: the
// caller, the agent and each party, all sending and heard by all).
//
// The call's recording taps the caller's endpoint: its left channel is what the caller said,
// its right channel what the caller heard — in a conference the mix of everyone else (the
// agent and every added party). So the recording keeps everyone.
//
// A party leaves by hanging up (its leg's Done): it is taken out of the mix and, once the last
// added party has left, the mixer closes and the caller and the agent hear each other through
// their bridge again. The caller or the agent hanging up ends the call, which hangs up every
// party still in it (the call is the caller's with its agent: handing it to a remaining party
// is a transfer).

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
	// ErrConferenced is returned by Supervise on a call in a conference (one mix per call).
	ErrConferenced = errors.New("ivr: the call is a conference")
)

// conference is a call's mix of more than two parties.
type conference struct {
	sess   *session
	mixer  *media.Mixer
	caller *media.MixMember
	agent  *media.MixMember
	// parties counts the added parties still in; guarded by ACD.mu.
	parties int
	closed  bool // guarded by ACD.mu
}

// Conference adds leg, answered, to the call callID connected to an agent on this node: from
// now on the caller, the agent and every added party hear one another. It returns ErrNoCall,
// ErrNotBridged (on hold), ErrConferenceFull, or the mixer's error; on an error leg is hung
// up. The party is in the call until it hangs up or the call ends (then it is hung up).
func (a *ACD) Conference(callID string, leg ConferenceLeg) error {
	err := a.conference(callID, leg)
	if err != nil {
		_ = leg.Hangup(context.Background())
	}
	return err
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
		cf = &conference{sess: s, mixer: media.NewMixer()}
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
		if s.conf != nil { // another party's request made it meanwhile: join that one
			other := s.conf
			a.mu.Unlock()
			cf.mixer.Close()
			cf = other
		} else {
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
	}()
	return nil
}

// partyLeft counts a party out; the last one closes the mix (the bridge is heard again).
func (a *ACD) partyLeft(cf *conference) {
	a.mu.Lock()
	cf.parties--
	last := cf.parties == 0 && !cf.closed
	if last {
		cf.closed = true
		if cf.sess.conf == cf {
			cf.sess.conf = nil
		}
	}
	a.mu.Unlock()
	if last {
		cf.mixer.Close()
	}
}

// endConferenceWithCall closes the mix when the call leaves its agent.
func (a *ACD) endConferenceWithCall(cf *conference) {
	<-cf.sess.done
	a.mu.Lock()
	cf.closed = true
	if cf.sess.conf == cf {
		cf.sess.conf = nil
	}
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
