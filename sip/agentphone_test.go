package sip

import (
	"context"
	"errors"
	"fmt"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// offerResult is what the queue-like test target saw of one offer.
type offerResult struct {
	err     error
	elapsed time.Duration
	end     string // "caller" or "agent": who ended the talk
}

// agentSetup is a gateway whose line +15550197 behaves like the ACD: it answers the carrier,
// offers the call to agent 7 through PhoneDialer with ringTimeout, bridges the returned leg
// (AgentLeg.Bridge) and holds until either side hangs up. SIPp plays the agent's phone: a uas
// on phonePort, registered by a SIPp uac with -au/-ap.
type agentSetup struct {
	g         *testGateway
	dir       string
	phonePort int
	phone     *sippProc
	results   chan offerResult
}

func newAgentSetup(t *testing.T, ringTimeout time.Duration, phoneScenario string, phoneArgs ...string) *agentSetup {
	t.Helper()
	return newAgentSetupWith(t, nil, ringTimeout, phoneScenario, phoneArgs...)
}

// newAgentSetupWith is newAgentSetup with mod applied to the gateway's options too.
func newAgentSetupWith(t *testing.T, mod func(*Options), ringTimeout time.Duration, phoneScenario string, phoneArgs ...string) *agentSetup {
	t.Helper()
	requireSipp(t)
	a := &agentSetup{dir: t.TempDir(), phonePort: testport.FreeUDP(t), results: make(chan offerResult, 4)}
	writeULawWAV(t, filepath.Join(a.dir, "tone.wav"), 2)
	var srv atomic.Pointer[Server]
	a.g = startRegistrar(t, func(o *Options) {
		o.Registrar.DigestAlgorithms = sippDigest()
		if mod != nil {
			mod(o)
		}
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			if err := c.Answer(ctx); err != nil {
				return err
			}
			octx, cancel := context.WithTimeout(ctx, ringTimeout)
			defer cancel()
			start := time.Now()
			leg, err := srv.Load().PhoneDialer().Offer(octx, ivr.Offer{CallID: c.ID(), AgentID: 7, Queue: "support",
				From: c.From(), CallerName: c.CallerName()})
			res := offerResult{err: err, elapsed: time.Since(start)}
			if err != nil {
				a.results <- res
				return nil
			}
			stop, err := leg.Bridge(c.Endpoint())
			if err != nil {
				res.err = err
				a.results <- res
				return err
			}
			defer stop()
			select {
			case <-ctx.Done():
				res.end = "caller"
			case <-leg.Done():
				res.end = "agent"
			}
			_ = leg.Hangup(context.Background())
			a.results <- res
			return nil
		})}}
	})
	srv.Store(a.g.s)
	args := append([]string{"-p", strconv.Itoa(a.phonePort), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1"}, phoneArgs...)
	a.phone = startSipp(t, a.dir, phoneScenario, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("phone SIPp output:\n%s", tail(a.phone.out.String(), 3000))
		}
	})
	return a
}

// register runs the SIPp uac that REGISTERs the phone's contact (answering the 401).
func (a *agentSetup) register(t *testing.T, scenario, user, password string) {
	t.Helper()
	startSipp(t, a.dir, scenario, fmt.Sprintf("127.0.0.1:%d", a.g.port()), "-s", user, "-au", user, "-ap", password,
		"-key", "contact_port", strconv.Itoa(a.phonePort), "-p", strconv.Itoa(testport.FreeUDP(t)), "-m", "1").wait(t)
}

func (a *agentSetup) carrier(t *testing.T, scenario string) *sippProc {
	return startSipp(t, a.dir, scenario, fmt.Sprintf("127.0.0.1:%d", a.g.port()), "-s", "15550197",
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")
}

func (a *agentSetup) result(t *testing.T) offerResult {
	t.Helper()
	select {
	case r := <-a.results:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the target never finished its offer")
		return offerResult{}
	}
}

// TestSIPPhoneAgentAnswersOffer: a SIPp phone REGISTERs (401, digest, 200); a call from a SIPp
// carrier is offered to it through PhoneDialer().Offer; the INVITE reaches the registered
// contact with the Contact URI as Request-URI (the phone scenario checks it), the phone answers
// with SDP and echoes RTP, and the returned AgentLeg bridges: RTP flows both ways on both legs.
// The carrier's BYE ends the call and the phone gets a BYE. sip does not emit call.answered
// (the ACD does). No goroutine or fd is left behind.
func TestSIPPhoneAgentAnswersOffer(t *testing.T) {
	requireSipp(t)
	ignore := goleak.IgnoreCurrent()
	baseFDs := openFDs(t)
	baseG := runtime.NumGoroutine()
	func() {
		a := newAgentSetup(t, 10*time.Second, "uas_agent.xml", "-rtp_echo")
		a.register(t, "uac_register.xml", "agent1", "secret")
		regs := a.g.s.Registrations(7)
		if len(regs) != 1 || regs[0].Contact != fmt.Sprintf("sip:agent1@127.0.0.1:%d;line=sbtest7", a.phonePort) {
			t.Fatalf("registrations = %+v", regs)
		}
		if v := a.g.counter("switchboard_sip_registrations"); v != 1 {
			t.Errorf("switchboard_sip_registrations = %v", v)
		}
		a.carrier(t, "uac_rtp.xml").wait(t)
		a.phone.wait(t)
		r := a.result(t)
		if r.err != nil || r.end != "caller" {
			t.Fatalf("offer: %+v", r)
		}
		evs := a.g.sink.waitEnded(t, 20*time.Second)
		if lastOf(evs, callevent.EventAnswered) != nil {
			t.Error("sip emitted call.answered for an agent offer (the ACD emits it)")
		}
		var sum CallSummary
		select {
		case sum = <-a.g.summary:
		case <-time.After(20 * time.Second):
			t.Fatal("no call summary")
		}
		if sum.Carrier.PacketsReceived < 50 || sum.Carrier.PacketsSent < 50 {
			t.Errorf("carrier leg RTP rx %d tx %d, want both ways", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
		}
		if len(sum.Outbound) != 1 || sum.Outbound[0].PacketsReceived < 50 || sum.Outbound[0].PacketsSent < 50 {
			t.Errorf("agent leg RTP %+v, want both ways", sum.Outbound)
		}
		gwFDs := openFDs(t)
		a.g.s.Close()
		if v := a.g.counter("switchboard_sip_registrations"); v != 0 {
			t.Errorf("switchboard_sip_registrations = %v after Close", v)
		}
		_ = gwFDs
	}()
	if !waitFor(20*time.Second, func() bool { return runtime.NumGoroutine() <= baseG+2 }) {
		t.Errorf("goroutines after Close %d, baseline %d", runtime.NumGoroutine(), baseG)
	}
	if !waitFor(10*time.Second, func() bool { return openFDs(t) <= baseFDs+2 }) {
		t.Errorf("open fds after Close %d, baseline %d", openFDs(t), baseFDs)
	}
	goleak.VerifyNone(t, ignore)
}

// TestSIPPhoneAgentHangsUp: the agent's phone answers and hangs up with BYE; the agent leg's
// Done ends the talk and the carrier gets a BYE.
func TestSIPPhoneAgentHangsUp(t *testing.T) {
	a := newAgentSetup(t, 10*time.Second, "uas_bye.xml", "-rtp_echo")
	a.register(t, "uac_register.xml", "agent1", "secret")
	a.carrier(t, "uac_wait_bye.xml").wait(t)
	a.phone.wait(t)
	if r := a.result(t); r.err != nil || r.end != "agent" {
		t.Fatalf("offer: %+v", r)
	}
}

// TestSIPPhoneRingTimeoutCancels: the phone only rings (180); when the ACD's ring timeout
// cancels ctx, Offer CANCELs the INVITE (the phone answers 200 and 487, checked by its
// scenario) and returns ctx's error.
func TestSIPPhoneRingTimeoutCancels(t *testing.T) {
	a := newAgentSetup(t, 1500*time.Millisecond, "uas_cancel.xml")
	a.register(t, "uac_register.xml", "agent1", "secret")
	car := a.carrier(t, "uac_wait_bye.xml")
	r := a.result(t)
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("Offer error %v, want the ring timeout's context.DeadlineExceeded", r.err)
	}
	if r.elapsed < 1400*time.Millisecond || r.elapsed > 5*time.Second {
		t.Errorf("Offer returned after %s, want about the 1.5 s ring timeout", r.elapsed)
	}
	a.phone.wait(t)
	car.wait(t)
}

// TestSIPpRegisterWrongPassword: SIPp answering the challenge with a wrong password gets 403,
// counted as an auth_failure security event; nothing is bound.
func TestSIPpRegisterWrongPassword(t *testing.T) {
	requireSipp(t)
	dir := t.TempDir()
	g := startRegistrar(t, func(o *Options) { o.Registrar.DigestAlgorithms = sippDigest() })
	startSipp(t, dir, "uac_register_badpw.xml", fmt.Sprintf("127.0.0.1:%d", g.port()), "-s", "agent1", "-au", "agent1",
		"-ap", "wrong", "-key", "contact_port", "5099", "-p", strconv.Itoa(testport.FreeUDP(t)), "-m", "1").wait(t)
	if v := g.counter("switchboard_security_events_total", "type", "auth_failure"); v != 1 {
		t.Errorf("auth_failure = %v, want 1", v)
	}
	if n := len(g.s.Registrations(0)); n != 0 {
		t.Errorf("%d bindings after a wrong password", n)
	}
}

// sippDigest is the challenge order SIPp 3.6 copes with: it answers only the first
// WWW-Authenticate and knows only MD5 (RFC 8760 §2.4 wants the topmost one it supports).
func sippDigest() []string { return []string{DigestMD5, DigestSHA256} }
