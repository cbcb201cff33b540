package sip

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// bridgeSetup starts a desk (SIPp uas) and a gateway whose line +15550197 bridges to it.
type bridgeSetup struct {
	g    *testGateway
	dir  string
	desk *sippProc
}

func newBridgeSetup(t *testing.T, deskScenario string, deskArgs []string, mod func(*Options)) *bridgeSetup {
	t.Helper()
	requireSipp(t)
	dir := t.TempDir()
	writeULawWAV(t, filepath.Join(dir, "tone.wav"), 2)
	deskPort := freeUDPPort(t)
	deskMedia := freeUDPPort(t)
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: BridgeTo(fmt.Sprintf("sip:desk@127.0.0.1:%d", deskPort))}}
		if mod != nil {
			mod(o)
		}
	})
	args := append([]string{"-p", strconv.Itoa(deskPort), "-mp", strconv.Itoa(deskMedia), "-m", "1"}, deskArgs...)
	var desk *sippProc
	if deskScenario != "" {
		desk = startSipp(t, dir, deskScenario, args...)
	}
	return &bridgeSetup{g: g, dir: dir, desk: desk}
}

func (b *bridgeSetup) carrier(t *testing.T, scenario string, args ...string) *sippProc {
	all := append([]string{fmt.Sprintf("127.0.0.1:%d", b.g.port()), "-s", "15550197", "-p", strconv.Itoa(freeUDPPort(t)),
		"-mp", strconv.Itoa(freeUDPPort(t)), "-m", "1"}, args...)
	return startSipp(t, b.dir, scenario, all...)
}

func (b *bridgeSetup) summary(t *testing.T) CallSummary {
	t.Helper()
	select {
	case s := <-b.g.summary:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no call summary")
		return CallSummary{}
	}
}

// TestBridgedCallRTPBothWays proves the dev line's bridge: SIPp carrier with RTP → gateway →
// SIPp desk with RTP echo; RTP flows both ways on both legs, events and metrics are right.
func TestBridgedCallRTPBothWays(t *testing.T) {
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-rtp_echo"}, nil)
	car := b.carrier(t, "uac_rtp.xml")
	car.wait(t)
	b.desk.wait(t)
	evs := b.g.sink.waitEnded(t, 20*time.Second)
	got := eventTypes(evs)
	want := []string{ticketing.EventStarted, ticketing.EventAnswered, ticketing.EventEnded}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	st := evs[0]
	if st.Direction != "inbound" || st.From != "+15551234567" || st.To != "+15550197" || st.Line != "+15550197" || st.CallerName != "Alice Caller" {
		t.Errorf("call.started = %+v", st)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) || e.ID == "" || e.CallID != st.CallID {
			t.Errorf("event %d: seq %d id %q call %q", i, e.Seq, e.ID, e.CallID)
		}
	}
	end := evs[2]
	if end.Outcome != ticketing.OutcomeAnswered || end.Durations == nil || end.Duration < 2 || end.TalkTime < 2 {
		t.Errorf("call.ended = %+v %+v", end, end.Durations)
	}
	sum := b.summary(t)
	if sum.Carrier.PacketsReceived < 50 || sum.Carrier.PacketsSent < 50 {
		t.Errorf("carrier leg RTP rx %d tx %d, want both ways", sum.Carrier.PacketsReceived, sum.Carrier.PacketsSent)
	}
	if len(sum.Outbound) != 1 || sum.Outbound[0].PacketsReceived < 50 || sum.Outbound[0].PacketsSent < 50 {
		t.Errorf("desk leg RTP %+v, want both ways", sum.Outbound)
	}
	if v := b.g.counter("switchboard_rtp_packets_total", "direction", "rx"); v < 100 {
		t.Errorf("switchboard_rtp_packets_total{rx} = %v", v)
	}
	if v := b.g.counter("switchboard_calls_total", "direction", "inbound", "outcome", "answered"); v != 1 {
		t.Errorf("switchboard_calls_total{answered} = %v", v)
	}
	if v := b.g.counter("switchboard_call_setup_seconds"); v != 1 {
		t.Errorf("switchboard_call_setup_seconds count = %v", v)
	}
	if v := b.g.counter("switchboard_sip_requests_total", "method", "INVITE"); v != 1 {
		t.Errorf("switchboard_sip_requests_total{INVITE} = %v", v)
	}
	if v := b.g.counter("switchboard_calls_active"); v != 0 {
		t.Errorf("switchboard_calls_active = %v after the call", v)
	}
}
