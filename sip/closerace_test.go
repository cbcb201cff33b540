package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/media"
)

// Close racing new INVITEs: a call admitted (it is in the server's calls) but not yet running
// must be hung up by Close like any other, not crash the gateway (Close called hangup on a
// call whose context was not made yet: a nil pointer). Loops the race; run under -race.
func TestCloseWhileInvitesArriveNeverPanics(t *testing.T) {
	for round := range 10 {
		// RTP ports of its own each round: the calls Close rejects keep theirs until their 503
		// is given up on (no ACK comes).
		base := testport.FreeRange(t, 20000, 32000, 200)
		ports, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), base, base+199)
		if err != nil {
			t.Fatal(err)
		}
		g := startGateway(t, func(o *Options) {
			o.Ports = ports
			// Ringing until the call is hung up: no dialog to BYE at Close (our peer answers nothing).
			o.Lines = []Line{{Number: "+15550197", Target: TargetFunc(func(ctx context.Context, c *Call) error {
				_ = c.Ringing()
				<-ctx.Done()
				return nil
			})}}
		})
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: g.port()}
		ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for i := 0; ctx.Err() == nil && i < 200; i++ {
				msg := rawInvite("+15550197", "", pcmuOffer)
				msg = strings.ReplaceAll(msg, "LPORT", fmt.Sprint(conn.LocalAddr().(*net.UDPAddr).Port))
				msg = strings.ReplaceAll(msg, "@test", fmt.Sprintf("-%d-%d@test", round, i))
				_, _ = conn.WriteTo([]byte(strings.ReplaceAll(msg, "\n", "\r\n")), dst)
			}
		}()
		// Close as the INVITEs are being admitted.
		waitFor(2*time.Second, func() bool { return g.s.ActiveCalls() > 0 })
		g.s.Close()
		stop()
		<-sent
		conn.Close()
	}
}
