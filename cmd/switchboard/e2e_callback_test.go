package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// pageMessage is a message of the softphone page's signalling (web's protocol), as far as the
// tests read it.
type pageMessage struct {
	Type   string `json:"type"`
	CallID string `json:"call_id"`
	Call   *struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
		From      string `json:"from"`
		To        string `json:"to"`
		State     string `json:"state"`
	} `json:"call"`
}

// pageSocket is an agent's softphone page without a browser: its signalling WebSocket, whose
// messages the test reads and sends (answer, hangup) as the page's buttons would. No
// PeerConnection is negotiated: the gateway bridges calls into the agent's leg all the same.
type pageSocket struct {
	t   *testing.T
	ctx context.Context
	ws  *websocket.Conn
	in  chan pageMessage
}

// pageSocket logs email in, opens the page's WebSocket and waits for its first message; the
// socket is closed when the test ends.
func (g *testGateway) pageSocket(email, password string) *pageSocket {
	t := g.t
	t.Helper()
	cookie, st := pageLogin(t, g.base, email, password)
	if cookie == nil {
		t.Fatalf("page login %s: %d", email, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.base, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {cookie.String()}, "Origin": {g.base}}})
	if err != nil {
		t.Fatalf("WebSocket: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	p := &pageSocket{t: t, ctx: ctx, ws: ws, in: make(chan pageMessage, 256)}
	go func() { // ends when the socket is closed (cleanup) or ctx ends
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var m pageMessage
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			select {
			case p.in <- m:
			default: // a page nobody reads (openPage): drop
			}
		}
	}()
	p.await("", nil) // the first message: the session is up
	return p
}

// await returns the next message of type typ (any when empty) for which cond holds (nil: any),
// skipping the others; it fails the test after 30 s.
func (p *pageSocket) await(typ string, cond func(pageMessage) bool) pageMessage {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	var seen []string
	for {
		select {
		case m := <-p.in:
			if (typ == "" || m.Type == typ) && (cond == nil || cond(m)) {
				return m
			}
			seen = append(seen, m.Type)
		case <-deadline:
			p.t.Fatalf("the page got no %q message in 30 s; got %v", typ, seen)
		}
	}
}

// send writes one signalling message, as the page's script does.
func (p *pageSocket) send(msg string) {
	p.t.Helper()
	if err := p.ws.Write(p.ctx, websocket.MessageText, []byte(msg)); err != nil {
		p.t.Fatalf("page send %s: %v", msg, err)
	}
}

// Rules TU-3/TU-4 through the real binary, with SIPp as the caller, as the agent's SIP phone
// and as the carrier's far end: agent1's phone answers a caller and hangs up; the agent's
// callback from the softphone page (POST /calls/{id}/callback) goes out over the trunk to the
// caller's number, from the line the caller had called, is answered, and joins the first call's
// ticket — not the contact's newer unsolved ticket, which an ordinary dial would pick (OB-1) —
// as the public API shows.
func TestRule_TU3_CallbackThroughTheTrunkJoinsTheCallersTicket(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	const agent, pass = "agent1@example.com", "agentpass"
	agentID := int64(g.agentByEmail(agent)["id"].(float64))
	// The page is open all along (a callback is placed on it), without a PeerConnection: offers
	// go to the agent's registered SIP phone (web.PreferSoftphone).
	page := g.pageSocket(agent, pass)
	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "2000"}
	phone := startSipp(t, "agent_answer.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", agent, "-ap", pass,
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", agentID), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT /agents/%d/state = %d %v", agentID, code, m)
	}
	g.awaitAgentState(agent, 10*time.Second, func(s string) bool { return s == "available" })

	// The caller (+15551234567) on the line straight into queue support; the phone answers,
	// talks 2 s and hangs up, and the gateway's BYE ends the caller.
	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
		"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	phone.wait(t, "agent phone")
	carrier.wait(t, "caller")
	inbound := g.awaitCall("+15550199", func(c map[string]any) bool {
		return c["state"] == "ended" && c["ticket_id"] != nil && c["requester_id"] != nil
	})
	if inbound["outcome"] != "answered" || inbound["agent_id"] != float64(agentID) || inbound["from"] != "+15551234567" {
		t.Fatalf("inbound call %v: want answered by agent1, from +15551234567", inbound)
	}
	inboundID := inbound["id"].(string)
	ticketID := int64(inbound["ticket_id"].(float64))
	requester := int64(inbound["requester_id"].(float64))
	// A newer unsolved ticket of the same person: an ordinary dial to them would join it (OB-1).
	code, m := g.api("POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"subject":"Another matter"}}`, requester))
	if code != 201 {
		t.Fatalf("POST /tickets = %d %v", code, m)
	}
	decoyID := int64(m["ticket"].(map[string]any)["id"].(float64))

	// The callback: the trunk's far end must see the caller's number in To and the line the
	// caller called (+15550199) in From, and answers.
	far := startSippN(t, "trunk_answer.xml", map[string]string{"TO_RE": `sip:\+15551234567@`, "FROM_RE": `sip:\+15550199@`},
		1, 90*time.Second, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
	code, m = g.apiAs(agent, pass, "POST", "/calls/"+inboundID+"/callback", "")
	if code != 201 {
		t.Fatalf("POST /calls/%s/callback = %d %v", inboundID, code, m)
	}
	cb := m["call"].(map[string]any)
	if cb["callback_of"] != inboundID || cb["to"] != "+15551234567" || cb["ticket_id"] != float64(ticketID) ||
		cb["ticket_choice"] != "existing" || cb["from_line"] != "+15550199" {
		t.Errorf("callback answer %v: want the caller's number from line +15550199 on ticket %d (existing), callback_of %s",
			cb, ticketID, inboundID)
	}
	cbID, _ := cb["id"].(string)
	page.await("call", func(m pageMessage) bool { return m.Call != nil && m.Call.ID == cbID && m.Call.State == "talking" })
	page.send(`{"type":"hangup"}`)
	page.await("ended", func(m pageMessage) bool { return m.CallID == cbID })
	far.wait(t, "the trunk's far end answering the callback")

	rec := g.awaitCallByID(cbID, func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if rec["direction"] != "outbound" || rec["outcome"] != "answered" || rec["to"] != "+15551234567" ||
		rec["ticket_id"] != float64(ticketID) || rec["agent_id"] != float64(agentID) {
		t.Errorf("callback call record %v: want outbound, answered, to +15551234567, by agent %d, on ticket %d", rec, agentID, ticketID)
	}
	voiceCalls := func(id int64) map[string]bool {
		code, cs := g.api("GET", fmt.Sprintf("/tickets/%d/comments", id), "")
		if code != 200 {
			t.Fatalf("GET /tickets/%d/comments = %d %v", id, code, cs)
		}
		out := map[string]bool{}
		for _, c := range cs["comments"].([]any) {
			if cm := c.(map[string]any); cm["type"] == "VoiceComment" {
				out[fmt.Sprint(cm["call_id"])] = true
			}
		}
		return out
	}
	// Both calls' voice comments on the first ticket (the callback's once it has ended).
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]bool
	for got = voiceCalls(ticketID); !(got[inboundID] && got[cbID]) && time.Now().Before(deadline); got = voiceCalls(ticketID) {
		time.Sleep(200 * time.Millisecond)
	}
	if !got[inboundID] || !got[cbID] {
		t.Errorf("ticket %d voice comments of calls %v: want the call (%s) and its callback (%s)", ticketID, got, inboundID, cbID)
	}
	if d := voiceCalls(decoyID); len(d) != 0 {
		t.Errorf("the newer ticket %d got voice comments %v: the callback must join the called-back call's ticket", decoyID, d)
	}
}
