package sip

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Conferences of a call taken on another node (issues 19 and 21).
//
// The conference's mix lives on the node that owns the call (node A), where its ACD runs it
// exactly as on one node: the mix, the recording (everyone, as on one node), the party's own
// outbound call and its events. The agent is on node B, answering over the internal leg, whose
// endpoint on A is the agent's member of the mix: the agent hears every party through it.
// Node B only relays what the agent asks for (Add to call), in an INFO on the internal leg
// (ctlContentType, op=conference), as it relays hold and transfers (relay_transfer.go):
//
//   - An outside number (number=+E164, by=the agent): A dials it through its own trunk (the
//     first with an outbound URI, its caller ID) with Server.DialConference and its ACD's
//     Conference as the join, and answers 200 at once naming the party's call id
//     (X-Switchboard-Party): the party joins when it answers, as on one node. Once the party's
//     leg is over (it hung up, was refused, or the conference ended) A sends B an INFO
//     op=party_ended naming it, and B releases what it held for the party (the dial plan's
//     count of the agent's calls at once); B releases them all when its relay of the call ends.
//   - Another agent (agent=N): A's ACD's ConferenceAgent reserves and rings them wherever they
//     are attached (its dialer reaches other nodes over internal legs of their own) and
//     answers within the INFO's transaction.
//
// A refusal comes back as on one node: 404 (no such call), 409 with the ivr or sip sentinel
// error named in X-Switchboard-Error (relayErrors), which B's API answers with the status it
// would give on one node. A party leaves by hanging up, on A; the agent leaves by hanging up on
// B (the internal leg's BYE: A's ACD goes on with the caller and the parties); the conference
// ending ends the internal leg and so B's side. The agent's node checks who asks and what they
// name (web.ConferenceHandler: the agent on the call, the dial plan); the call's node trusts an
// in-dialog request on its own internal leg from the cluster's internal networks.

// hdrParty, in the call's node's 200 to a relayed conference dial, is the party leg's call id.
const hdrParty = "X-Switchboard-Party"

// relayConferenceTimeout bounds a relayed conference request (the call's node answers at
// once: nothing waits for the party to answer).
const relayConferenceTimeout = 10 * time.Second

// relayConferenceDial asks the call's node, whose call c relays, to dial d's party and join it
// to the call; it returns the party leg's call id. d.Ended is called once the party's leg is
// over there, or this node's relay of the call ended, whichever comes first.
func (c *Call) relayConferenceDial(ctx context.Context, d ConferenceDial) (string, error) {
	if !isDialNumber(d.Number) {
		return "", fmt.Errorf("sip: relay conference: %q is not an E.164 number", logValue(d.Number))
	}
	v := url.Values{"op": {"conference"}, "number": {d.Number}}
	if d.AgentID > 0 {
		v.Set("by", strconv.FormatInt(d.AgentID, 10))
	}
	ctx, cancel := context.WithTimeout(ctx, relayConferenceTimeout)
	defer cancel()
	res, err := c.carrier.sendInfo(ctx, v)
	if err := controlError("conference", res, err); err != nil {
		return "", err
	}
	party := ""
	if h := res.GetHeader(hdrParty); h != nil {
		party = cleanText(h.Value(), 64)
	}
	if party == "" {
		return "", errors.New("sip: relay conference: the call's node named no party")
	}
	if d.Ended != nil {
		c.trackParty(party, d.Ended)
	}
	return party, nil
}

// trackParty keeps ended, the release of conference party's leg, until the call's node says
// the party left (partyEnded) or the relay ends (endParties); when either came first it is
// called at once. It is called once in any case.
func (c *Call) trackParty(party string, ended func()) {
	var once sync.Once
	release := func() { once.Do(ended) }
	c.mu.Lock()
	gone, known := c.parties[party]
	if c.partiesOver || (known && gone == nil) {
		// The relay ended, or the party's leg too, before we got here.
		delete(c.parties, party)
		c.mu.Unlock()
		release()
		return
	}
	if c.parties == nil {
		c.parties = map[string]func(){}
	}
	c.parties[party] = release
	c.mu.Unlock()
}

// partyEnded takes the call's node's word that conference party's leg is over (an INFO
// op=party_ended on the internal leg this node answered).
func (c *Call) partyEnded(party string) {
	c.mu.Lock()
	ended, known := c.parties[party]
	if known {
		delete(c.parties, party)
	} else if !c.partiesOver && len(c.parties) < 64 {
		// Before our own answer was read (a party refused at once): a tombstone, which
		// relayConferenceDial finds. Bounded: a stray note cannot grow the map.
		if c.parties == nil {
			c.parties = map[string]func(){}
		}
		c.parties[party] = nil
	}
	c.mu.Unlock()
	if ended != nil {
		go ended()
	}
}

// endParties releases the conference parties of c, whose relay ended (endRelays).
func (c *Call) endParties() {
	c.mu.Lock()
	parties := c.parties
	c.parties = nil
	c.partiesOver = true
	c.mu.Unlock()
	for _, ended := range parties {
		if ended != nil {
			go ended()
		}
	}
}

// controlError maps the call's node's answer to a relayed request to an error (nil: taken).
func controlError(op string, res *sip.Response, err error) error {
	if err != nil {
		return fmt.Errorf("sip: relay %s to the call's node: %w", op, err)
	}
	if res.IsSuccess() {
		return nil
	}
	if h := res.GetHeader(hdrError); h != nil {
		if e := tokenErr(h.Value()); e != nil {
			return fmt.Errorf("sip: relay %s: the call's node: %w", op, e)
		}
	}
	switch res.StatusCode {
	case 404, 481:
		return fmt.Errorf("sip: relay %s: %w", op, ivr.ErrNoCall)
	case 409:
		return fmt.Errorf("sip: relay %s: %w", op, ivr.ErrAgentUnavailable)
	}
	return fmt.Errorf("sip: relay %s: the call's node answered %d", op, res.StatusCode)
}

// ConferenceAgent adds agent id to the call callID: on a call this node relays for the node
// that owns it, that node's ACD reserves and rings them (wherever they are attached) and joined
// is not told here (the call's node logs an agent who did not join); else this node's ACD's.
// Refusals are the ACD's (ivr.ErrUnknownAgent, ivr.ErrAgentUnavailable, ivr.ErrNoCall, …),
// whichever node refused.
func (a ClusterACD) ConferenceAgent(callID string, id int64, joined func(error)) error {
	c := a.SIP.relayedCall(callID)
	if c == nil {
		return a.ACD.ConferenceAgent(callID, id, joined)
	}
	ctx, cancel := context.WithTimeout(context.Background(), relayConferenceTimeout)
	defer cancel()
	res, err := c.carrier.sendInfo(ctx, url.Values{"op": {"conference"}, "agent": {strconv.FormatInt(id, 10)}})
	return controlError("conference", res, err)
}

// handleConference runs a conference request relayed by the agent's node (op=conference) on
// ClusterOptions.Control: a party dialled through this node's trunk (200 naming its call id in
// X-Switchboard-Party), or an agent rung (200); refusals as handleButton's.
func (l *leg) handleConference(v url.Values) (int, string, string, []sip.Header) {
	ctl := l.s.opts.Cluster.Control
	if ctl == nil || l.call == nil {
		return 501, "Not Implemented", "", nil
	}
	id := l.call.id
	number, agent := v.Get("number"), v.Get("agent")
	if (number == "") == (agent == "") {
		return 400, "Bad Request", "", nil
	}
	var (
		err   error
		hdrs  []sip.Header
		party string
	)
	if agent != "" {
		target, perr := strconv.ParseInt(agent, 10, 64)
		if perr != nil || target <= 0 {
			return 400, "Bad Request", "", nil
		}
		err = ctl.ConferenceAgent(id, target, func(err error) {
			if err != nil {
				l.s.log.Info("sip: relayed conference: the agent did not join", "call_id", id, "agent_id", target, "error", err)
			}
		})
	} else {
		if !isDialNumber(number) {
			return 400, "Bad Request", "", nil
		}
		var by int64
		if b := v.Get("by"); b != "" {
			if by, err = strconv.ParseInt(b, 10, 64); err != nil || by < 0 {
				return 400, "Bad Request", "", nil
			}
		}
		// The party's end is told once its id is known (Ended may come at once: refused).
		named := make(chan string, 1)
		ended := func() {
			go func() {
				if p := <-named; p != "" {
					l.sendNote(url.Values{"op": {"party_ended"}, "party": {p}})
				}
			}()
		}
		ctx, cancel := context.WithTimeout(l.call.ctx, relayConferenceTimeout)
		party, err = l.s.dialConference(ctx, ConferenceDial{CallID: id, AgentID: by, Number: number,
			Join: ctl.Conference, Ended: ended})
		cancel()
		named <- party
		if err == nil {
			hdrs = append(hdrs, sip.NewHeader(hdrParty, party))
		}
	}
	tok := errToken(err)
	switch {
	case err == nil:
		return 200, "OK", "", hdrs
	case errors.Is(err, ivr.ErrNoCall):
		return 404, "Not Found", tok, nil
	case tok != "internal":
		return 409, "Conflict", tok, nil
	}
	l.s.log.Info("sip: relayed conference", "call_id", id, "error", err)
	return 500, "Server Internal Error", "", nil
}
