package ngctl

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bench/bencode"
)

var lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})

func TestAudioAddrPrefersTheStreamsConnectionLine(t *testing.T) {
	for _, tc := range []struct{ sdp, want string }{
		{AudioSDP(lo, 40000, 1), "127.0.0.1:40000"},
		{"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 127.0.0.2\r\n", "127.0.0.2:5000"},
		{"v=0\nc=IN IP4 127.0.0.3\nm=video 6000 RTP/AVP 96\nc=IN IP4 10.9.9.9\nm=audio 7000 RTP/AVP 0\n", "127.0.0.3:7000"},
	} {
		got, err := AudioAddr(tc.sdp)
		if err != nil || got.String() != tc.want {
			t.Errorf("AudioAddr(%q) = %v, %v; want %s", tc.sdp, got, err, tc.want)
		}
	}
	for _, bad := range []string{"v=0\r\n", "m=audio x RTP/AVP 0\r\n", "m=audio 5000 RTP/AVP 0\r\n", "c=IN IP4 nope\r\nm=audio 1 RTP/AVP 0\r\n"} {
		if got, err := AudioAddr(bad); err == nil {
			t.Errorf("AudioAddr(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseReplySplitsCookieAndDictionary(t *testing.T) {
	c, d, err := ParseReply([]byte("abc_1 d6:result2:oke"))
	if err != nil || c != "abc_1" || d["result"] != "ok" {
		t.Fatalf("got %q %v %v", c, d, err)
	}
	for _, bad := range []string{"d6:result2:oke", "abc li1ee", "abc d6:result"} {
		if _, _, err := ParseReply([]byte(bad)); err == nil {
			t.Errorf("ParseReply(%q): no error", bad)
		}
	}
}

// fakeNG answers requests on loopback: it drops the first datagram (so the client must
// retry with the same cookie), sends a stray reply with another cookie, then replies.
func fakeNG(t *testing.T, reply func(req map[string]any) map[string]any) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		seen := map[string]bool{}
		for range 100 {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			cookie, body, _ := strings.Cut(string(buf[:n]), " ")
			if !seen[cookie] {
				seen[cookie] = true
				continue
			}
			v, err := bencode.Unmarshal([]byte(body))
			if err != nil {
				return
			}
			out, _ := bencode.Marshal(reply(v.(map[string]any)))
			_, _ = pc.WriteToUDPAddrPort([]byte("stray "+string(out)), from)
			_, _ = pc.WriteToUDPAddrPort([]byte(cookie+" "+string(out)), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestClientRetriesAndReadsResults(t *testing.T) {
	addr := fakeNG(t, func(req map[string]any) map[string]any {
		switch req["command"] {
		case "offer":
			return map[string]any{"result": "ok", "sdp": AudioSDP(lo, 30002, 9)}
		case "delete":
			return map[string]any{"result": "error", "error-reason": "Unknown call-id"}
		}
		return map[string]any{"result": "pong"}
	})
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.timeout = 100 * time.Millisecond
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Offer("call-1", "ft", AudioSDP(lo, 40000, 1))
	if err != nil || got.String() != "127.0.0.1:30002" {
		t.Fatalf("offer: %v %v", got, err)
	}
	if err := c.Delete("call-1", "ft"); err == nil || !strings.Contains(err.Error(), "Unknown call-id") {
		t.Fatalf("delete: %v, want the error reason", err)
	}
}

// TestRealRtpengineAnchorsACall runs the installed rtpengine (userspace only, loopback) and
// checks a whole offer/answer/delete: the benchmark's use of it. Skipped when rtpengine is
// not installed (scripts/deps.sh bench installs it).
func TestRealRtpengineAnchorsACall(t *testing.T) {
	bin, err := exec.LookPath("rtpengine")
	if err != nil {
		t.Skip("rtpengine not installed")
	}
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	ng := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	cmd := exec.Command(bin, "--config-file=none", "--foreground", "--log-stderr", "--table=-1", "--interface=127.0.0.1",
		"--listen-ng="+ng.String(), "--port-min=31000", "--port-max=31099", "--num-threads=1", "-L", "3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c, err := Dial(ng)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.timeout = 200 * time.Millisecond
	c.tries = 50 // until it has bound its ng port
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	toCallee, err := c.Offer("bench-1", "from1", AudioSDP(lo, 40000, 1))
	if err != nil {
		t.Fatal(err)
	}
	toCaller, err := c.Answer("bench-1", "from1", "to1", AudioSDP(lo, 40002, 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.AddrPort{toCallee, toCaller} {
		if a.Addr() != lo || a.Port() < 31000 || a.Port() > 31099 {
			t.Fatalf("rtpengine gave %v, want 127.0.0.1 in 31000-31099", a)
		}
	}
	if toCallee == toCaller {
		t.Fatalf("one port %v for both sides", toCallee)
	}
	if err := c.Delete("bench-1", "from1"); err != nil {
		t.Fatal(err)
	}
}
