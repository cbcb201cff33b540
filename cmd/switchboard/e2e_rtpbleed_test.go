package main

import (
	bin "encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Attack (RTP bleed), end to end: while a carrier (SIPp, 440 Hz) calls the desk phone (SIPp,
// 880 Hz) through the real binary, a sprayer on 127.0.0.2 sends RTP with consecutive sequence
// numbers to every even port of the gateway's RTP range, from before the INVITE to after the
// BYE. The recording still holds the caller's tone on the left and the desk's on the right (each
// leg heard its own peer, not the sprayer), the sprayer receives nothing, and /metrics counts it
// in switchboard_security_events_total{type="rtp_source_rejected"}.
func TestEndToEnd_RTPBleedSprayerDuringBridgedCall(t *testing.T) {
	requireSipp(t)
	g := runGateway(t)
	cfg, err := os.ReadFile(filepath.Join(g.dir, "switchboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`port_min: (\d+), port_max: (\d+)`).FindSubmatch(cfg)
	if m == nil {
		t.Fatal("no RTP range in the test configuration")
	}
	rtpMin, _ := strconv.Atoi(string(m[1]))
	rtpMax, _ := strconv.Atoi(string(m[2]))

	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	defer conn.Close()
	var sweeps, received atomic.Int64
	stop, sprayed, drained := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { // what the gateway sends the sprayer
		defer close(drained)
		buf := make([]byte, 1500)
		for {
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	go func() {
		defer close(sprayed)
		pkt := make([]byte, 12+160)
		for i := range pkt[12:] {
			pkt[12+i] = 0x55 // a constant: no tone in any window it lands in
		}
		for sweep := 1; sweep <= 20000; sweep++ { // bounded: ~100 s at most
			select {
			case <-stop:
				return
			default:
			}
			pkt[0], pkt[1] = 0x80, 0 // RTP v2, PCMU
			bin.BigEndian.PutUint16(pkt[2:], uint16(sweep))
			bin.BigEndian.PutUint32(pkt[4:], uint32(sweep)*160)
			bin.BigEndian.PutUint32(pkt[8:], 0x5BEED)
			for port := rtpMin + rtpMin%2; port < rtpMax; port += 2 {
				_, _ = conn.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
			}
			sweeps.Add(1)
			time.Sleep(5 * time.Millisecond) // pacing the flood, not waiting for anything
		}
	}()
	halt := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-sprayed
	}
	defer halt()
	for deadline := time.Now().Add(10 * time.Second); sweeps.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sprayer did not get going")
		}
	}

	tones := t.TempDir()
	desk880 := filepath.Join(tones, "desk880.wav")
	writeToneFile(t, desk880, 880, 20)
	desk := startSipp(t, "desk_tone.xml", map[string]string{"TONE_FILE": desk880}, "-p", strconv.Itoa(g.deskPort))
	carrier := startSipp(t, "carrier_rtp.xml", nil, "-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")
	halt()

	_, raw := g.recordingOf("+15550197")
	w, err := parsePCMWAV(raw)
	if err != nil {
		t.Fatalf("recording: %v", err)
	}
	left, right := windows(w.left, 440, w.rate), windows(w.right, 880, w.rate)
	t.Logf("left  440 Hz (100 ms windows): %s", left)
	t.Logf("right 880 Hz (100 ms windows): %s", right)
	// The carrier talks 3 s: most windows of each side carry its peer's tone.
	if n := strings.Count(left, "t"); n < 20 {
		t.Errorf("left channel: the caller's 440 Hz in %d windows, want ≥ 20 of ~30: the carrier leg heard someone else", n)
	}
	if n := strings.Count(right, "t"); n < 20 {
		t.Errorf("right channel: the desk's 880 Hz in %d windows, want ≥ 20 of ~30: the desk leg heard someone else", n)
	}

	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body = []byte(withoutNodeLabel(string(body)))
	mm := regexp.MustCompile(`switchboard_security_events_total\{type="rtp_source_rejected"\} (\d+)`).FindSubmatch(body)
	if mm == nil || string(mm[1]) == "0" {
		t.Errorf("switchboard_security_events_total{type=\"rtp_source_rejected\"} missing or zero (%d sweeps sprayed)", sweeps.Load())
	}
	if !regexp.MustCompile(`"security_event":"rtp_source_rejected"[^\n]*"source":"127\.0\.0\.2:`).MatchString(g.logText()) {
		t.Error("no rtp_source_rejected security log line naming the sprayer (127.0.0.2)")
	}

	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) // loopback delivered everything at sendto
	<-drained
	if n := received.Load(); n != 0 {
		t.Errorf("the sprayer received %d datagrams from the gateway", n)
	}
}
