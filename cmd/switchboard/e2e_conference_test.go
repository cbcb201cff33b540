package main

import (
	bin "encoding/binary"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/media"
)

// Issue 21, a three-party conference through the whole gateway, with tone checks on every leg:
// a SIPp caller on line +15550199 (queue support), agent1's SIPp phone and an external party
// (the trunk's far end, SIPp) — each sending its own tone from a socket of the test named in
// its SIPp's SDP (SIPp only signals), which also hears what the gateway sends that leg.
// agent1 answers, adds +15551234567 through POST /calls/{id}/conference; the party answers.
// Then every leg hears the two others and not itself; agent1 hangs up (the phone's BYE, when the
// test tells it: sippRun.hangUp) and the caller and the party stay connected, hearing each other
// and no agent, while agent1 is released; the caller hangs up (when told) and the gateway hangs
// the party up. No SIPp pause times the phases: under load each takes as long as it needs. The call record
// is answered by agent1 with talk time past the agent's leaving; the recording's left channel
// is the caller, its right what the caller heard: the agent and the party.
func TestEndToEnd_ConferenceThreePartiesAgentLeaves(t *testing.T) {
	requireSipp(t)
	t0 := time.Now()
	step := func(what string) { t.Logf("%5.1f s: %s", time.Since(t0).Seconds(), what) }
	g := runAgentGateway(t)
	step("gateway ready")
	const agent, pass = "agent1@example.com", "agentpass"
	agentID := int64(g.agentByEmail(agent)["id"].(float64))
	const callerHz, agentHz, partyHz = 500, 900, 1300
	caller, phoneAudio, partyAudio := newToneLeg(t, callerHz), newToneLeg(t, agentHz), newToneLeg(t, partyHz)

	party := startSipp(t, "conf_party.xml", map[string]string{"TO_RE": `sip:\+15551234567@`, "RTP_PORT": strconv.Itoa(partyAudio.port)},
		"-p", strconv.Itoa(g.deskPort))
	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "RTP_PORT": strconv.Itoa(phoneAudio.port)}
	phone := startSipp(t, "conf_phone.xml", repl, "-p", strconv.Itoa(phonePort))
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", agent, "-ap", pass,
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", agentID), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT /agents/%d/state = %d %v", agentID, code, m)
	}
	g.awaitAgentState(agent, 10*time.Second, func(s string) bool { return s == "available" })
	carrier := startSipp(t, "conf_caller.xml", map[string]string{"RTP_PORT": strconv.Itoa(caller.port)},
		"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []struct {
				n string
				r *sippRun
			}{{"caller", carrier}, {"phone", phone}, {"party", party}} {
				t.Logf("%s SIPp output:\n%s", s.n, tail(s.r.out.String(), 2000))
			}
		}
	})

	step("agent available")
	// The live wallboard names agent1's call as soon as the phone answered (the call record's
	// state follows the events through the database, seconds later on a loaded machine).
	callID := g.awaitAgentCall(agentID, 20*time.Second)
	answered := time.Now()
	step("agent on the call")
	code, m := g.apiAs(agent, pass, "POST", "/calls/"+callID+"/conference", `{"conference":{"to":"+15551234567"}}`)
	if code != 202 {
		t.Fatalf("POST /calls/%s/conference = %d %v", callID, code, m)
	}

	// Three parties: each hears the two others, not itself.
	var wg sync.WaitGroup
	for _, c := range []struct {
		who           string
		leg           *toneLeg
		hear, notHear []float64
	}{
		{"caller", caller, []float64{agentHz, partyHz}, []float64{callerHz}},
		{"agent", phoneAudio, []float64{callerHz, partyHz}, []float64{agentHz}},
		{"party", partyAudio, []float64{callerHz, agentHz}, []float64{partyHz}},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.leg.awaitHearing(t, "in the conference, the "+c.who, c.hear, c.notHear, 20*time.Second)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	step("three parties heard")

	// agent1 hangs up: released at once (wrap-up), the caller and the party stay connected.
	// agent1 talks four seconds at least (a call length, not a wait for an event), so the
	// recording holds their voice for more than the two seconds it is checked for below.
	time.Sleep(time.Until(answered.Add(4 * time.Second)))
	phone.hangUp(t, "agent phone")
	agentTalked := time.Since(answered)
	phone.wait(t, "agent phone")
	g.awaitAgentState(agent, 10*time.Second, func(s string) bool { return s != "busy" })
	step("agent left")
	wg.Add(2)
	go func() {
		defer wg.Done()
		caller.awaitHearing(t, "after the agent left, the caller", []float64{partyHz}, []float64{agentHz, callerHz}, 20*time.Second)
	}()
	go func() {
		defer wg.Done()
		partyAudio.awaitHearing(t, "after the agent left, the party", []float64{callerHz}, []float64{agentHz, partyHz}, 20*time.Second)
	}()
	wg.Wait()
	if _, m := g.api("GET", "/calls/"+callID, ""); m["call"] != nil && m["call"].(map[string]any)["state"] == "ended" {
		t.Errorf("the call ended with the agent: %v", m["call"])
	}

	// The caller hangs up: the party is hung up, the call is over. The caller stays on with the
	// party for two seconds at least after the agent left, whatever the phases took (a call
	// length, not a wait for an event), so its talk time is past the agent's by that much.
	step("caller and party heard each other")
	time.Sleep(time.Until(answered.Add(agentTalked + 2*time.Second)))
	carrier.hangUp(t, "caller")
	carrier.wait(t, "caller")
	step("caller hung up")
	party.wait(t, "party")
	step("party hung up")
	ended := g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if ended["outcome"] != "answered" || ended["agent_id"] != float64(agentID) {
		t.Errorf("call record %v: want answered by agent1", ended)
	}
	if tt := seconds(ended, "talk_time"); tt <= agentTalked.Seconds() {
		t.Errorf("talk_time %v s: want more than the agent's %.1f s (the caller talked on with the party)", tt, agentTalked.Seconds())
	}
	_, wav := g.recordingOf("+15550199")
	step("recording read")
	chs, sr := channels(t, wav)
	left, rightAgent, rightParty := toneWindows(chs[0], callerHz, sr), toneWindows(chs[1], agentHz, sr), toneWindows(chs[1], partyHz, sr)
	t.Logf("recording: caller %d Hz in %d windows of 250 ms on the left; agent %d Hz in %d and party %d Hz in %d on the right",
		callerHz, left, agentHz, rightAgent, partyHz, rightParty)
	if left < 8 || rightAgent < 8 || rightParty < 8 {
		t.Errorf("recording: want the caller on the left and the agent and the party on the right, each for 2 s at least")
	}
}

// awaitAgentCall polls the live wallboard until the agent is on a call and returns its id.
func (g *testGateway) awaitAgentCall(agentID int64, within time.Duration) string {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if code, m := g.api("GET", "/wallboard", ""); code == 200 {
			wb, _ := m["wallboard"].(map[string]any)
			agents, _ := wb["agents"].([]any)
			for _, a := range agents {
				am, _ := a.(map[string]any)
				if id, _ := am["id"].(float64); int64(id) == agentID {
					if c, _ := am["call_id"].(string); c != "" {
						return c
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("agent %d on no call within %s", agentID, within)
	return ""
}

// toneLeg is one party's audio in the conference test: a UDP socket on loopback that its SIPp
// names in its SDP. It answers the gateway symmetrically — once the gateway's RTP arrives it
// sends its tone (PCMU, 20 ms packets) back to where that came from — and keeps the last two
// seconds of what it hears.
type toneLeg struct {
	port  int
	conn  *net.UDPConn
	peer  atomic.Pointer[net.UDPAddr]
	mu    sync.Mutex
	heard []float64 // the last heardMax samples, oldest first
	total int       // samples heard since the start
}

const heardMax = 16000

func newToneLeg(t *testing.T, freq float64) *toneLeg {
	t.Helper()
	l := &toneLeg{port: testport.FreeUDP(t)}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.port})
	if err != nil {
		t.Fatal(err)
	}
	l.conn = conn
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.receive() }()
	go func() { defer wg.Done(); l.send(freq, stop) }()
	t.Cleanup(func() {
		close(stop)
		_ = conn.Close()
		wg.Wait()
	})
	return l
}

// receive keeps the PCMU audio the gateway sends, and where it comes from (until closed).
func (l *toneLeg) receive() {
	buf := make([]byte, 1500)
	for {
		n, from, err := l.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p := buf[:n]
		if n < 12 || p[0]>>6 != 2 || p[1]&0x7f != 0 {
			continue // not RTP, or not PCMU (telephone-event, RTCP)
		}
		off := 12 + 4*int(p[0]&0x0f)
		if p[0]&0x10 != 0 && n >= off+4 {
			off += 4 + 4*int(bin.BigEndian.Uint16(p[off+2:]))
		}
		if off >= n {
			continue
		}
		if l.peer.Load() == nil {
			l.peer.Store(from)
		}
		l.mu.Lock()
		for _, b := range p[off:] {
			l.heard = append(l.heard, float64(media.DecodeULaw(b))/32768)
		}
		if k := len(l.heard) - heardMax; k > 0 {
			l.heard = append(l.heard[:0], l.heard[k:]...)
		}
		l.total += n - off
		l.mu.Unlock()
	}
}

// send streams the tone every 20 ms to the gateway once it is known, until stop.
func (l *toneLeg) send(freq float64, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	bin.BigEndian.PutUint32(pkt[8:], uint32(freq)) // SSRC
	var seq uint16
	var ts uint32
	var n int
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		to := l.peer.Load()
		if to == nil {
			continue
		}
		for i := range 160 {
			pkt[12+i] = media.EncodeULaw(int16(8000 * math.Sin(2*math.Pi*freq*float64(n)/8000)))
			n++
		}
		seq++
		ts += 160
		bin.BigEndian.PutUint16(pkt[2:], seq)
		bin.BigEndian.PutUint32(pkt[4:], ts)
		_, _ = l.conn.WriteToUDP(pkt, to)
	}
}

// awaitHearing waits (bounded by within) for a second of fresh audio in which every tone of
// hear is present in 3 of its 4 windows and no tone of notHear in any; it fails the test with
// what was heard last otherwise.
func (l *toneLeg) awaitHearing(t *testing.T, who string, hear, notHear []float64, within time.Duration) {
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		l.mu.Lock()
		mark := l.total
		l.mu.Unlock()
		var win []float64
		for time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // bounded: the next second of audio, or the deadline
			l.mu.Lock()
			if l.total-mark >= 8000 {
				win = append([]float64(nil), l.heard[len(l.heard)-8000:]...)
			}
			l.mu.Unlock()
			if win != nil {
				break
			}
		}
		if win == nil {
			break
		}
		ok := true
		last = ""
		for _, f := range hear {
			w := toneWindows(win, f, 8000)
			last += fmt.Sprintf(" %g Hz in %d/4", f, w)
			ok = ok && w >= 3
		}
		for _, f := range notHear {
			w := toneWindows(win, f, 8000)
			last += fmt.Sprintf(" %g Hz in %d/4", f, w)
			ok = ok && w == 0
		}
		if ok {
			return
		}
	}
	t.Errorf("%s: want %v and not %v within %s; last second heard:%s", who, hear, notHear, within, last)
}
