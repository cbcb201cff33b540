package media

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// parseReport returns the single report block of a compound SR/RR.
func parseReport(t *testing.T, b []byte) rtcp.ReceptionReport {
	t.Helper()
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []rtcp.ReceptionReport
	switch p := pkts[0].(type) {
	case *rtcp.SenderReport:
		blocks = p.Reports
	case *rtcp.ReceiverReport:
		blocks = p.Reports
	default:
		t.Fatalf("first RTCP packet is %T", p)
	}
	if len(pkts) < 2 {
		t.Error("no SDES CNAME in the compound packet (RFC 3550 §6.1)")
	} else if _, ok := pkts[1].(*rtcp.SourceDescription); !ok {
		t.Errorf("second RTCP packet is %T, want SDES", pkts[1])
	}
	if len(blocks) != 1 {
		t.Fatalf("%d report blocks", len(blocks))
	}
	return blocks[0]
}

// Rule (RFC 3550 §6.4): the endpoint sends periodic reports to RTP port + 1 with a block on the
// peer's stream, takes LSR/DLSR from the peer's SR, and reads what the peer reports about us.
func TestRTCPReportsExchanged(t *testing.T) {
	alloc := testAllocator(t, 8)
	e := newTestEndpoint(t, EndpointOptions{Allocator: alloc, RTCPInterval: 40 * time.Millisecond})
	e.SetCodec(0, PCMU)
	far := newPeerPair(t) // a raw peer with an RTP/RTCP pair
	farRTP := netip.AddrPortFrom(loopback, uint16(far.Port))
	e.SetRemote(farRTP)
	tap := newTapper(e)

	// The peer sends a little RTP and an SR reporting on our (not yet sent) stream.
	p := &peer{t: t, conn: far.RTP}
	p.send(e.LocalAddr(), audio(0, 10, 1600, 0x5150, 0xFF))
	p.send(e.LocalAddr(), audio(0, 11, 1760, 0x5150, 0xFF))
	tap.until(t, 11)
	sr := &rtcp.SenderReport{SSRC: 0x5150, NTPTime: 0x0102030405060708, Reports: []rtcp.ReceptionReport{
		{SSRC: e.SSRC(), TotalLost: 0xFFFFFF, Jitter: 80}, // −1 lost (duplicates), 10 ms
	}}
	b, _ := rtcp.Marshal([]rtcp.Packet{sr})
	rtcpAddr := netip.AddrPortFrom(loopback, e.LocalAddr().Port()+1)
	if _, err := far.RTCP.WriteToUDPAddrPort(b, rtcpAddr); err != nil {
		t.Fatal(err)
	}

	buf := make([]byte, 1500)
	far.RTCP.SetReadDeadline(time.Now().Add(wait))
	for range 200 {
		n, _, err := far.RTCP.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no RTCP report: %v", err)
		}
		rr := parseReport(t, buf[:n])
		if rr.SSRC != 0x5150 || rr.LastSequenceNumber != 11 {
			t.Fatalf("report block %+v", rr)
		}
		if rr.LastSenderReport == 0 {
			continue // sent before our SR arrived
		}
		if rr.LastSenderReport != 0x03040506 {
			t.Errorf("LSR %#x, want the middle of the SR's NTP time", rr.LastSenderReport)
		}
		st := e.Stats()
		if st.RemoteLost != -1 || st.RemoteJitter != 10*time.Millisecond {
			t.Errorf("remote view %d lost, %s jitter", st.RemoteLost, st.RemoteJitter)
		}
		// Closing says goodbye (RFC 3550 §6.3.7): a compound report ending in BYE for our SSRC.
		e.Close()
		for range 200 {
			n, _, err := far.RTCP.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("no RTCP BYE: %v", err)
			}
			pkts, err := rtcp.Unmarshal(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			if bye, ok := pkts[len(pkts)-1].(*rtcp.Goodbye); ok {
				if len(bye.Sources) != 1 || bye.Sources[0] != e.SSRC() {
					t.Errorf("BYE for %x", bye.Sources)
				}
				return
			}
		}
		t.Fatal("no BYE")
	}
	t.Fatal("no report ever carried the LSR")
}

func TestNTPTime(t *testing.T) {
	got := ntpTime(time.Unix(0, int64(time.Second/2)).UTC())
	if got != uint64(ntpEpochOffset)<<32|1<<31 {
		t.Errorf("ntpTime = %#x", got)
	}
}
