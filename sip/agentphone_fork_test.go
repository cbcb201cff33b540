package sip

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// registerPhone registers agent1's contact on port (a second phone of the same agent).
func (a *agentSetup) registerPhone(t *testing.T, port int) {
	t.Helper()
	startSipp(t, a.dir, "uac_register.xml", fmt.Sprintf("127.0.0.1:%d", a.g.port()), "-s", "agent1", "-au", "agent1", "-ap", "secret",
		"-key", "contact_port", strconv.Itoa(port), "-p", strconv.Itoa(testport.FreeUDP(t)), "-m", "1").wait(t)
}

// longCarrier calls the line with the carrier talking ms from the gateway's answer (the offer
// rings within it: the slow phone answers after 3 s), then hanging up.
func (a *agentSetup) longCarrier(t *testing.T, ms int) *sippProc {
	t.Helper()
	return startSipp(t, a.dir, "uac_tone_bye.xml", fmt.Sprintf("127.0.0.1:%d", a.g.port()), "-s", "15550197", "-d", strconv.Itoa(ms),
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")
}

// secondPhone starts a SIPp uas for agent1's second phone and registers it after the first.
func (a *agentSetup) secondPhone(t *testing.T, scenario string) *sippProc {
	t.Helper()
	port := testport.FreeUDP(t)
	p := startSipp(t, a.dir, scenario, "-p", strconv.Itoa(port), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")
	a.register(t, "uac_register.xml", "agent1", "secret")
	a.registerPhone(t, port)
	if regs := a.g.s.Registrations(7); len(regs) != 2 {
		t.Fatalf("registrations = %+v, want agent1's two phones", regs)
	}
	return p
}

// An agent with two registered phones (a desk phone and a softphone app): an offer rings both
// at once; the first to answer takes the call, bridged both ways, and the other is cancelled
// with Reason "Call completed elsewhere" (RFC 3326, checked by its scenario) so it lists no
// missed call. Before, only the most recently registered phone rang: the second phone here
// never got an INVITE.
func TestSIPPhoneOfferRingsEveryPhoneOfTheAgent(t *testing.T) {
	a := newAgentSetup(t, 15*time.Second, "uas_agent_slow.xml", "-rtp_echo")
	other := a.secondPhone(t, "uas_cancel_elsewhere.xml")
	a.longCarrier(t, 8000).wait(t)
	a.phone.wait(t)
	other.wait(t)
	if r := a.result(t); r.err != nil || r.end != "caller" {
		t.Fatalf("offer: %+v", r)
	}
	var sum CallSummary
	select {
	case sum = <-a.g.summary:
	case <-time.After(20 * time.Second):
		t.Fatal("no call summary")
	}
	answered := 0
	for _, o := range sum.Outbound {
		if o.PacketsReceived >= 50 && o.PacketsSent >= 50 {
			answered++
		}
	}
	if len(sum.Outbound) != 2 || answered != 1 {
		t.Errorf("agent legs %+v: want two rung, one answered with RTP both ways", sum.Outbound)
	}
}

// One of the agent's phones refuses (486: set on do-not-disturb) while the other rings on: the
// offer goes on and the other phone's answer takes the call. Only when every phone refused is
// the offer refused.
func TestSIPPhoneOfferOnePhoneRefusesTheOtherAnswers(t *testing.T) {
	a := newAgentSetup(t, 15*time.Second, "uas_agent_slow.xml", "-rtp_echo")
	busy := a.secondPhone(t, "uas_busy.xml")
	a.longCarrier(t, 8000).wait(t)
	a.phone.wait(t)
	busy.wait(t)
	if r := a.result(t); r.err != nil || r.end != "caller" {
		t.Fatalf("offer: %+v; want the slower phone's answer after the other's 486", r)
	}
}
