package sip

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/web"
)

// phoneCallRig is a gateway whose agent1 (a staff user of a real PostgreSQL ticketing store, in
// queue "support" of a real ACD) places calls from their SIP phone through the trunk, checked
// by the page's outbound checks (web.Outbound.PhoneDial: the ticketing core's rules, a Guard
// refusing +1900), wired as cmd/switchboard wires them. Erin holds +15557770060.
type phoneCallRig struct {
	g      *testGateway
	acd    *ivr.ACD
	pool   *pgxpool.Pool
	store  *ticketing.Store
	engine *ticketing.Engine
	agent  ticketing.User
	admin  ticketing.User
	erin   ticketing.User
	guards *prometheus.Registry
	dir    string
}

const erinNumber = "+15557770060"

func newPhoneCallRig(t *testing.T, farPort int, trunkAllow string) *phoneCallRig {
	t.Helper()
	requireSipp(t)
	ctx := context.Background()
	r := &phoneCallRig{pool: pgtest.Pool(t), dir: t.TempDir(), guards: prometheus.NewRegistry()}
	r.store = ticketing.NewStore(r.pool, ticketing.StoreOptions{BcryptCost: 4})
	var err error
	if r.engine, err = r.store.NewEngine(ticketing.EngineOptions{GapTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if r.agent, err = r.store.EnsureUser(ctx, "agent1@example.com", "Agent One", "agent", "password1"); err != nil {
		t.Fatal(err)
	}
	if r.admin, err = r.store.EnsureUser(ctx, "admin@example.com", "Admin", "admin", "password1"); err != nil {
		t.Fatal(err)
	}
	if r.erin, err = r.store.CreateUser(ctx, ticketing.Actor(r.admin.ID), ticketing.NewUser{Name: "Erin", Role: "end-user"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.AddIdentity(ctx, ticketing.Actor(r.admin.ID), r.erin.ID, erinNumber); err != nil {
		t.Fatal(err)
	}
	r.acd, err = ivr.NewACD(ivr.ACDOptions{
		Queues: []ivr.Queue{{Name: "support", RingTimeout: 10 * time.Second}},
		Agents: []ivr.Agent{{ID: r.agent.ID, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.acd.Close)
	guard, err := web.NewOutboundGuard(web.GuardOptions{Deny: []string{"+1900"}, Registerer: r.guards})
	if err != nil {
		t.Fatal(err)
	}
	out := &web.Outbound{Store: r.store, Guard: guard}
	agentID := r.agent.ID
	writeULawWAVHz(t, filepath.Join(r.dir, "party.wav"), 2, 1400)
	writeULawWAV(t, filepath.Join(r.dir, "tone.wav"), 2)
	r.g = startGateway(t, func(o *Options) {
		o.Agents = func(u string) (AgentAccount, bool) {
			if u == "agent1" || u == "agent1@example.com" {
				return AgentAccount{ID: agentID, Username: "agent1", Password: "secret"}, true
			}
			return AgentAccount{}, false
		}
		o.Registrar.DigestAlgorithms = sippDigest()
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", farPort)
		if trunkAllow != "" {
			o.Trunks[0].Allow = []netip.Prefix{netip.MustParsePrefix(trunkAllow)}
		}
		o.OwnCalls, o.OwnCallBusy, o.PhoneHold = r.acd, r.acd, r.acd
		// As cmd/switchboard wires it (telephony.phoneCall): the page's checks, the plan's
		// ticket choices on call.started.
		o.PhoneCall = func(ctx context.Context, agentID int64, number string) (AgentCall, error) {
			d, err := out.PhoneDial(ctx, agentID, number)
			if err != nil {
				return AgentCall{}, err
			}
			return AgentCall{AgentID: agentID, Number: d.To, Ended: d.Ended, Started: func(e *callevent.Event) {
				e.RequesterID, e.TicketChoice, e.EnteredNumber = d.ContactID, d.TicketChoice, d.EnteredNumber
				if d.TicketID != nil {
					e.TicketID = *d.TicketID
				}
			}}, nil
		}
	})
	r.acd.SetDialer(r.g.s.PhoneDialer())
	return r
}

// register binds agent1's phone at 127.0.0.1:port (SIPp's REGISTER, digest).
func (r *phoneCallRig) register(t *testing.T, port int) {
	t.Helper()
	startSipp(t, r.dir, "uac_register.xml", fmt.Sprintf("127.0.0.1:%d", r.g.port()), "-s", "agent1", "-au", "agent1", "-ap", "secret",
		"-key", "contact_port", strconv.Itoa(port), "-p", strconv.Itoa(testport.FreeUDP(t)), "-m", "1").wait(t)
}

// phone starts SIPp as agent1's registered phone (its port) dialling number.
func (r *phoneCallRig) phone(t *testing.T, port int, scenario, number string, args ...string) *sippProc {
	t.Helper()
	gw := r.g.port()
	p := startSipp(t, r.dir, scenario, append([]string{fmt.Sprintf("127.0.0.1:%d", gw), "-s", number, "-au", "agent1", "-ap", "secret",
		"-auth_uri", fmt.Sprintf("%s@127.0.0.1:%d", number, gw), "-p", strconv.Itoa(port),
		"-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1"}, args...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent1's phone (%s):\n%s", scenario, tail(p.out.String(), 3000))
		}
	})
	return p
}

// ticketOf stores the call's events as the event log does, applies them with the rules engine,
// and returns the call record and its ticket.
func (r *phoneCallRig) ticketOf(t *testing.T, evs []callevent.Event) (ticketing.Call, ticketing.Ticket) {
	t.Helper()
	ctx := context.Background()
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if _, err := r.pool.Exec(ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT DO NOTHING`, e.ID, e.CallID, e.Seq, e.Type, e.At, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.engine.ApplyPending(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := r.store.Call(ctx, evs[0].CallID)
	if err != nil {
		t.Fatal(err)
	}
	if c.TicketID == nil {
		t.Fatalf("call %s has no ticket: %+v", c.ID, c)
	}
	tk, err := r.store.Ticket(ctx, *c.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	return c, tk
}

// awaitOwnCall waits for the call.started of the phone's call and for the ACD to show the
// agent busy on it; it returns the call's id.
func (r *phoneCallRig) awaitOwnCall(t *testing.T) string {
	t.Helper()
	id := ""
	if !waitFor(30*time.Second, func() bool {
		for _, e := range r.g.sink.all() {
			if e.Type == callevent.EventStarted && e.Direction == "outbound" {
				id = e.CallID
			}
		}
		return id != ""
	}) {
		t.Fatal("no call.started of the phone's call")
	}
	if !waitFor(10*time.Second, func() bool {
		st, err := r.acd.Agent(r.agent.ID)
		return err == nil && st.State == ivr.StateBusy && st.CallID == id
	}) {
		st, _ := r.acd.Agent(r.agent.ID)
		t.Fatalf("agent not busy on their phone's call %s: %+v", id, st)
	}
	return id
}

// checkTalked checks that every leg of the call carried at least `least` RTP packets each way
// (the far end's tone reached the phone, whose echo reached the far end, or the other way
// round).
func (r *phoneCallRig) checkTalked(t *testing.T, least uint64) {
	t.Helper()
	var sum CallSummary
	select {
	case sum = <-r.g.summary:
	case <-time.After(20 * time.Second):
		t.Fatal("no call summary")
	}
	if len(sum.Outbound) != 2 {
		t.Fatalf("%d legs in the summary, want 2 (the phone's and the far end's): %+v", len(sum.Outbound), sum.Outbound)
	}
	for i, st := range sum.Outbound {
		if st.PacketsReceived < least || st.PacketsSent < least {
			t.Errorf("leg %d carried %d packets in, %d out; want RTP both ways (all legs: %+v)", i, st.PacketsReceived, st.PacketsSent, sum.Outbound)
		}
	}
}

// TestSIPPhonePlacesItsOwnCallThroughTheTrunk: agent1's registered SIP phone (SIPp) dials
// Erin's number. Its INVITE is challenged (401) and, sent again with the agent's digest
// credentials, placed through the trunk as the page's outbound call is: the far end (SIPp
// playing a tone) is INVITEd with the trunk's caller ID, its 180 reaches the phone, its answer
// answers the phone, bridged: RTP flows both ways on both legs (the phone echoes the tone).
// While it lasts the ACD shows the agent busy on the call, the call reachable by supervisors
// (ACD.CallAgent), and the phone's hold key is counted (call.held, call.resumed, hold time);
// the phone hangs up, the gateway BYEs the far end, and the agent is available again. The
// events are an outbound call of agent1 over a SIP phone (call.started channel sip, the
// contact Erin as requester, call.answered agent1, call.ended answered, hung up by the
// caller), and the rules engine makes the outbound ticket: requester Erin, assigned to agent1,
// via outbound (TC-2, OB-1, CF-1). Before, the phone's INVITE was refused 403 (no call to
// consult on).
func TestSIPPhonePlacesItsOwnCallThroughTheTrunk(t *testing.T) {
	farPort := testport.FreeUDP(t)
	r := newPhoneCallRig(t, farPort, "")
	far := startSipp(t, r.dir, "uas_party_tone.xml", "-p", strconv.Itoa(farPort), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")
	phonePort := testport.FreeUDP(t)
	r.register(t, phonePort)
	if _, err := r.acd.SetState(r.agent.ID, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	ph := r.phone(t, phonePort, "uac_phone_call.xml", erinNumber, "-rtp_echo")
	id := r.awaitOwnCall(t)
	if !waitFor(20*time.Second, func() bool { a, ok := r.acd.CallAgent(id); return ok && a == r.agent.ID }) {
		t.Error("the phone's call is not reachable by supervisors (ACD.CallAgent)")
	}
	ph.wait(t)
	far.wait(t)
	evs := r.g.sink.waitEnded(t, 30*time.Second)
	st := lastOf(evs, callevent.EventStarted)
	if st == nil || st.Direction != "outbound" || st.To != erinNumber || st.Channel != callevent.ChannelSIP ||
		st.RequesterID != r.erin.ID || st.TicketChoice != ticketing.TicketChoiceExisting || st.EnteredNumber {
		t.Errorf("call.started %+v, want outbound to %s over sip, requester %d, ticket choice existing", st, erinNumber, r.erin.ID)
	}
	if a := lastOf(evs, callevent.EventAnswered); a == nil || a.AgentID != r.agent.ID || a.Channel != callevent.ChannelSIP {
		t.Errorf("call.answered %+v, want agent %d over sip", a, r.agent.ID)
	}
	if lastOf(evs, callevent.EventHeld) == nil || lastOf(evs, callevent.EventResumed) == nil {
		t.Errorf("the phone's hold key: events %v, want call.held and call.resumed", eventTypes(evs))
	}
	end := lastOf(evs, callevent.EventEnded)
	if end.Outcome != callevent.OutcomeAnswered || end.HangupBy != callevent.HangupByCaller || end.Cause != callevent.CauseBye {
		t.Errorf("call.ended %+v, want answered, hung up by the caller (the agent's phone) with BYE", end)
	}
	if end.Durations == nil || end.Durations.HoldTime < 1 {
		t.Errorf("call.ended durations %+v, want the phone's 1.5 s hold counted", end.Durations)
	}
	r.checkTalked(t, 50)
	if !waitFor(10*time.Second, func() bool { s, _ := r.acd.Agent(r.agent.ID); return s.State == ivr.StateAvailable }) {
		s, _ := r.acd.Agent(r.agent.ID)
		t.Errorf("agent after their call: %+v, want available again", s)
	}
	c, tk := r.ticketOf(t, evs)
	if tk.RequesterID != r.erin.ID || tk.AssigneeID == nil || *tk.AssigneeID != r.agent.ID || tk.Via.Source != "outbound" {
		t.Errorf("ticket %+v, want Erin's, assigned to agent %d, via outbound", tk, r.agent.ID)
	}
	if c.Direction != "outbound" || c.AgentID == nil || *c.AgentID != r.agent.ID {
		t.Errorf("call record %+v, want agent %d's outbound call", c, r.agent.ID)
	}
	if n := testutilCounter(t, r.guards, "switchboard_outbound_calls_total"); n != 1 {
		t.Errorf("switchboard_outbound_calls_total %v, want 1 (the phone's call counted as the page's)", n)
	}
}

// TestSIPPhoneOwnCallFarEndHangsUpAndEnteredNumber: with allow_entered_number on, agent1
// (away) dials from their phone a number nobody holds: placed, the far end (SIPp echoing)
// answers and hangs up after 2 s; the gateway BYEs the phone (which was playing a tone: RTP
// both ways). The agent was busy on it and is away again after. The ticket's requester is the
// callee resolved by the PM rules (a new user holding the number), the call noted as an
// entered number (OB-5, CD-8); call.ended says the callee hung up.
func TestSIPPhoneOwnCallFarEndHangsUpAndEnteredNumber(t *testing.T) {
	farPort := testport.FreeUDP(t)
	r := newPhoneCallRig(t, farPort, "")
	ctx := context.Background()
	set, err := r.store.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set.Outbound.AllowEnteredNumber = true
	if _, err := r.store.PutSettings(ctx, ticketing.Actor(r.admin.ID), set); err != nil {
		t.Fatal(err)
	}
	far := startSipp(t, r.dir, "uas_bye.xml", "-p", strconv.Itoa(farPort), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1", "-rtp_echo")
	phonePort := testport.FreeUDP(t)
	r.register(t, phonePort)
	if _, err := r.acd.SetState(r.agent.ID, ivr.StateAway); err != nil {
		t.Fatal(err)
	}
	const number = "+15557770199"
	ph := r.phone(t, phonePort, "uac_phone_call_wait_bye.xml", number)
	r.awaitOwnCall(t)
	far.wait(t)
	ph.wait(t)
	evs := r.g.sink.waitEnded(t, 30*time.Second)
	st := lastOf(evs, callevent.EventStarted)
	if st == nil || st.To != number || st.RequesterID != 0 || !st.EnteredNumber {
		t.Errorf("call.started %+v, want to %s, no contact, an entered number", st, number)
	}
	end := lastOf(evs, callevent.EventEnded)
	if end.Outcome != callevent.OutcomeAnswered || end.HangupBy != callevent.HangupByCallee {
		t.Errorf("call.ended %+v, want answered, hung up by the callee", end)
	}
	r.checkTalked(t, 20) // the far end hangs up 2 s after its answer
	if !waitFor(10*time.Second, func() bool { s, _ := r.acd.Agent(r.agent.ID); return s.State == ivr.StateAway }) {
		s, _ := r.acd.Agent(r.agent.ID)
		t.Errorf("agent after their call: %+v, want away again (their state before it)", s)
	}
	_, tk := r.ticketOf(t, evs)
	hs, err := r.store.UsersByPhone(ctx, number)
	if err != nil || len(hs) == 0 || tk.RequesterID != hs[0].User.ID {
		t.Errorf("ticket requester %d, holders of %s %+v (%v): want the callee resolved by number", tk.RequesterID, number, hs, err)
	}
}

// phoneInvite sends, from p, an INVITE to sip:to@127.0.0.1 whose From is user; when password is
// not empty it answers the 401 with it (MD5, qop=auth). It returns the final response to the
// last INVITE (the 401 itself without a password).
func phoneInvite(t *testing.T, p *udpPeer, user, password, to string) string {
	t.Helper()
	ip := p.c.LocalAddr().(*net.UDPAddr).IP.String()
	callID := fmt.Sprintf("pc-%d@test", time.Now().UnixNano())
	uri := "sip:" + to + "@127.0.0.1"
	body := strings.ReplaceAll(pcmuOffer, "\n", "\r\n")
	send := func(cseq int, auth string) string {
		p.send(fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s:LPORT;branch=z9hG4bK-%d-%d\nFrom: <sip:%s@127.0.0.1>;tag=pc%d\n"+
			"To: <sip:%s@127.0.0.1>\nCall-ID: %s\nCSeq: %d INVITE\nContact: <sip:%s@%s:LPORT>\nMax-Forwards: 70\n%s"+
			"Content-Type: application/sdp\nContent-Length: %d\n\n%s",
			uri, ip, time.Now().UnixNano(), cseq, user, cseq, to, callID, cseq, user, ip, auth, len(body), pcmuOffer))
		want := fmt.Sprintf("%d INVITE", cseq)
		m := p.recvUntil(15*time.Second, func(m string) bool {
			return strings.HasPrefix(m, "SIP/2.0 ") && !strings.HasPrefix(m, "SIP/2.0 1") &&
				len(header(m, "Call-ID")) == 1 && header(m, "Call-ID")[0] == callID && len(header(m, "CSeq")) == 1 && header(m, "CSeq")[0] == want
		})
		if m == "" {
			t.Fatalf("no final response to the INVITE to %s (CSeq %d)", to, cseq)
		}
		return m
	}
	ch := send(1, "")
	if password == "" || statusCode(ch) != 401 {
		return ch
	}
	var d map[string]string
	for _, wa := range header(ch, "WWW-Authenticate") {
		if c := parseDigest(wa); c["algorithm"] == "MD5" {
			d = c
		}
	}
	if d == nil {
		t.Fatalf("no MD5 challenge:\n%s", ch)
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	cnonce := "0a4f113b"
	resp := h(h(user+":"+d["realm"]+":"+password) + ":" + d["nonce"] + ":00000001:" + cnonce + ":auth:" + h("INVITE:"+uri))
	auth := fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"%s\"\n",
		user, d["realm"], d["nonce"], uri, resp, cnonce)
	return send(2, auth)
}

// TestSIPPhoneOwnCallRefusals: from 127.0.0.2 (no trunk's address: the trunk is 127.0.0.1
// only), agent1's INVITEs with the right digest are refused with the status that says why —
// 403 for a contact's number the trunk's destinations deny (+1900…, counted as the page's
// refusals), 484
// for a number that is none, 403 for a number no contact holds while entered numbers are off
// (OB-5), 403 for another agent (agent-to-agent calls are not built), 404 for a name that is
// neither — and 503 once the gateway drains. An INVITE without credentials is challenged
// (401); with a wrong password it is refused 403; one from a non-agent is refused too. The
// trunk's far end receives nothing at all: no toll call is placed, and no call event emitted.
func TestSIPPhoneOwnCallRefusals(t *testing.T) {
	far := newUDPPeer(t, 0)
	r := newPhoneCallRig(t, far.port, "127.0.0.1/32")
	gw := r.g.port()
	ctx := context.Background()
	premium, err := r.store.CreateUser(ctx, ticketing.Actor(r.admin.ID), ticketing.NewUser{Name: "Premium", Role: "end-user"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.AddIdentity(ctx, ticketing.Actor(r.admin.ID), premium.ID, "+19005550100"); err != nil {
		t.Fatal(err)
	}
	p := newUDPPeerAt(t, "127.0.0.2", 0, gw)
	for _, c := range []struct {
		to   string
		code int
	}{
		{"+19005550100", 403},
		{"123", 484},
		{"+15557770199", 403},
		{"agent1", 403},
		{"nobody", 404},
	} {
		if m := phoneInvite(t, p, "agent1", "secret", c.to); statusCode(m) != c.code {
			t.Errorf("INVITE to %s: %q, want %d", c.to, firstLine(m), c.code)
		}
	}
	if n := testutilCounter(t, r.guards, "switchboard_outbound_refused_total", "reason", web.RefusedDestinationDenied); n != 1 {
		t.Errorf("switchboard_outbound_refused_total{reason=destination_denied} %v, want 1", n)
	}
	if m := phoneInvite(t, p, "agent1", "", erinNumber); statusCode(m) != 401 {
		t.Errorf("INVITE without credentials: %q, want 401", firstLine(m))
	}
	if m := phoneInvite(t, newUDPPeerAt(t, "127.0.0.2", 0, gw), "mallory", "secret", erinNumber); statusCode(m)/100 < 4 {
		t.Errorf("INVITE from a non-agent: %q, want it refused", firstLine(m))
	}
	if m := phoneInvite(t, newUDPPeerAt(t, "127.0.0.2", 0, gw), "agent1", "wrong", erinNumber); statusCode(m) != 403 {
		t.Errorf("INVITE with a wrong password: %q, want 403", firstLine(m))
	}
	r.g.s.StopAccepting()
	if m := phoneInvite(t, newUDPPeerAt(t, "127.0.0.3", 0, gw), "agent1", "secret", erinNumber); statusCode(m) != 503 {
		t.Errorf("INVITE while draining: %q, want 503", firstLine(m))
	}
	if m := far.recvUntil(500*time.Millisecond, func(string) bool { return true }); m != "" {
		t.Errorf("the trunk's far end got %q, want nothing", firstLine(m))
	}
	if evs := r.g.sink.all(); len(evs) != 0 {
		t.Errorf("events %v, want none", eventTypes(evs))
	}
	if s, _ := r.acd.Agent(r.agent.ID); s.State != ivr.StateOffline {
		t.Errorf("agent %+v, want offline as before", s)
	}
}

// testutilCounter sums the samples of metric name (with the label pairs) in reg.
func testutilCounter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	g := &testGateway{reg: reg}
	return g.counter(name, labels...)
}

// TestSIPPhoneOwnCallCancelledWhileRinging: agent1's phone gives up its call while the far end
// rings (SIPp ringing until CANCELled): the phone's CANCEL is answered 200 and its INVITE 487,
// the gateway CANCELs the far end's INVITE, and the call ends abandoned, given up by the caller
// (cancel), unanswered (no call.answered); the agent, busy while it rang, is available again.
func TestSIPPhoneOwnCallCancelledWhileRinging(t *testing.T) {
	farPort := testport.FreeUDP(t)
	r := newPhoneCallRig(t, farPort, "")
	far := startSipp(t, r.dir, "uas_cancel.xml", "-p", strconv.Itoa(farPort), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")
	phonePort := testport.FreeUDP(t)
	r.register(t, phonePort)
	if _, err := r.acd.SetState(r.agent.ID, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	ph := r.phone(t, phonePort, "uac_phone_cancel.xml", erinNumber)
	r.awaitOwnCall(t)
	ph.wait(t)
	far.wait(t)
	evs := r.g.sink.waitEnded(t, 30*time.Second)
	if a := lastOf(evs, callevent.EventAnswered); a != nil {
		t.Errorf("call.answered %+v on a call the phone gave up", a)
	}
	end := lastOf(evs, callevent.EventEnded)
	if end.Outcome != callevent.OutcomeAbandoned || end.HangupBy != callevent.HangupByCaller || end.Cause != callevent.CauseCancel {
		t.Errorf("call.ended %+v, want abandoned, given up by the caller (cancel)", end)
	}
	if !waitFor(10*time.Second, func() bool { s, _ := r.acd.Agent(r.agent.ID); return s.State == ivr.StateAvailable }) {
		s, _ := r.acd.Agent(r.agent.ID)
		t.Errorf("agent after their call: %+v, want available again", s)
	}
}
