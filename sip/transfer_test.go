package sip

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestTransferLeg_DialsTheNumberOnTheTrunkAndPairsEndpoints: the IVR's view of an answered
// carrier call (what the ACD's transfers use) pairs two RTP endpoints that reach each other
// on real sockets (two softphones talking during a consult), and dials an outside number
// through the trunk: an INVITE to sip:NUMBER@trunk with the trunk's caller ID and the carrier's
// codec offered first. The far end's 486 comes back as a *StatusError (the ACD returns the
// caller to the agent), it is ACKed (RFC 3261 §17.1.1.3), and the leg's Call-ID is one of the
// call's (call.ended's sip_call_ids).
func TestTransferLeg_DialsTheNumberOnTheTrunkAndPairsEndpoints(t *testing.T) {
	requireSipp(t)
	dir := t.TempDir()
	writeULawWAV(t, filepath.Join(dir, "tone.wav"), 2)
	trunk := newUDPPeer(t, 0)
	dialled, paired := make(chan error, 1), make(chan error, 1)
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", trunk.port)
		o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
			if err := c.Answer(ctx); err != nil {
				return err
			}
			l := ivrLeg{c: c, done: ctx.Done()}
			paired <- pairCarries(ctx, l)
			_, err := l.DialExternal(ctx, "+15557770000")
			dialled <- err
			return nil
		})}}
	})
	trunk.gw.Port = g.port()
	carrier := startSipp(t, dir, "uac_wait_bye.xml", fmt.Sprintf("127.0.0.1:%d", g.port()), "-s", "15550197",
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)), "-m", "1")

	select {
	case err := <-paired:
		if err != nil {
			t.Fatalf("endpoint pair: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call never reached its target")
	}
	inv := trunk.recvUntil(10*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("no INVITE on the trunk")
	}
	if want := fmt.Sprintf("INVITE sip:+15557770000@127.0.0.1:%d SIP/2.0", trunk.port); !strings.HasPrefix(inv, want) {
		t.Errorf("request line %q, want %q", strings.SplitN(inv, "\r\n", 2)[0], want)
	}
	if from := header(inv, "From"); len(from) != 1 || !strings.Contains(from[0], "sip:+15550100@") {
		t.Errorf("From %v, want the trunk's caller ID +15550100", from)
	}
	if !strings.Contains(inv, "m=audio ") || !strings.Contains(inv, " RTP/AVP 0 8") {
		t.Errorf("offer does not put the carrier's PCMU first:\n%s", inv)
	}
	trunk.send(respondTo(inv, 486, "Busy Here", ""))
	if ack := trunk.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "ACK ") }); ack == "" {
		t.Error("the 486 was not ACKed")
	}
	select {
	case err := <-dialled:
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 486 {
			t.Errorf("DialExternal after a 486: %v, want a *StatusError 486", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DialExternal did not return after the 486")
	}
	carrier.wait(t)
	evs := g.sink.waitEnded(t, 10*time.Second)
	ended := lastOf(evs, callevent.EventEnded)
	if ids := ended.SIPCallIDs.List(); len(ids) != 2 || ids[1] != header(inv, "Call-ID")[0] {
		t.Errorf("sip_call_ids %v, want the carrier's and the dialled leg's %s", ids, header(inv, "Call-ID")[0])
	}
}

// pairCarries makes an endpoint pair and checks that audio played on one arrives at the other.
func pairCarries(ctx context.Context, l ivrLeg) error {
	x, y, closePair, err := l.EndpointPair()
	if err != nil {
		return err
	}
	defer closePair()
	got := make(chan struct{}, 1)
	y.AddTap(func(p media.TapPacket) {
		if p.Flow == media.Received && p.PayloadType == 0 {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = x.Play(pctx, strings.NewReader(strings.Repeat("\x55", 8000)), media.PCMU) }()
	select {
	case <-got:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("no RTP from one endpoint of the pair reached the other")
	}
}
