package sip

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	sipgosip "github.com/emiago/sipgo/sip"
)

// viaSentBy matches the sent-by of Via header lines, so the torture messages name our loopback
// test socket and nothing is ever sent elsewhere.
var viaSentBy = regexp.MustCompile(`(?im)^((?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*)([A-Za-z]+)([ \t]+)([^;\s,]+)`)

func loadTorture(t *testing.T, kind string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "torture", kind, "*.dat"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no torture files for %s: %v", kind, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".dat")] = b
	}
	return out
}

// retarget points the first Via at our test socket, on the transport we send with.
func retarget(msg []byte, network, hostport string) []byte {
	done := false
	return viaSentBy.ReplaceAllFunc(msg, func(m []byte) []byte {
		if done {
			return viaSentBy.ReplaceAll(m, []byte("${1}${2}${3}127.0.0.1:9"))
		}
		done = true
		return viaSentBy.ReplaceAll(m, []byte("${1}"+strings.ToUpper(network)+"${3}"+hostport))
	})
}

// sendTorture sends msg over network and returns the first response after any 100 Trying
// (nil when none).
func sendTorture(t *testing.T, network string, port int, msg []byte) []byte {
	t.Helper()
	c, err := net.Dial(network, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	if _, err := c.Write(retarget(msg, network, local)); err != nil {
		return nil
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(400 * time.Millisecond)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			return nil
		}
		r := buf[:n]
		// Skip 100 Trying, also when a stream read holds it and the next response together.
		for bytes.HasPrefix(r, []byte("SIP/2.0 100 ")) {
			i := bytes.Index(r[12:], []byte("SIP/2.0 "))
			if i < 0 {
				r = nil
				break
			}
			r = r[12+i:]
		}
		if r == nil {
			continue
		}
		return r
	}
}

func respCode(r []byte) int {
	if !bytes.HasPrefix(r, []byte("SIP/2.0 ")) || len(r) < 11 {
		return 0
	}
	n, _ := strconv.Atoi(string(r[8:11]))
	return n
}

// TestTortureMessages sends the RFC 4475 torture messages over UDP and TCP at a running gateway:
// it stays up, requests sipgo can parse get an answer, invalid ones get a 4xx or nothing, and a
// normal bridged call works afterwards.
func TestTortureMessages(t *testing.T) {
	b := newBridgeSetup(t, "uas_echo.xml", []string{"-rtp_echo"}, nil)
	port := b.g.port()
	parser := sipgosip.NewParser()
	valid := loadTorture(t, "valid")
	invalid := loadTorture(t, "invalid")
	for _, network := range []string{"udp", "tcp"} {
		for name, msg := range valid {
			r := sendTorture(t, network, port, msg)
			parsed, err := parser.ParseSIP(msg)
			_, isReq := parsed.(*sipgosip.Request)
			// Over UDP sipgo refuses to send a response larger than the MTU (longreq's answer
			// copies its 30 Vias); that request is answered over TCP instead.
			// dblreq is defined as one UDP datagram with trailing octets (RFC 4475 §3.1.1.11);
			// on a stream it is two messages, the second one broken.
			if network == "tcp" && name == "dblreq" {
				continue
			}
			if err == nil && isReq && r == nil && (network == "tcp" || len(msg) < 1300) {
				t.Errorf("%s/valid/%s: parseable request got no answer", network, name)
			}
			if r != nil && respCode(r) >= 500 {
				t.Errorf("%s/valid/%s: answered %d", network, name, respCode(r))
			}
		}
		for name, msg := range invalid {
			r := sendTorture(t, network, port, msg)
			if r != nil {
				// badbranch (a bare magic cookie) and zeromf (Max-Forwards: 0 at the UAS) are
				// OPTIONS a UAS may answer normally (RFC 3261 §8.2, §16.3 applies to proxies).
				if c := respCode(r); (c < 400 || c > 499) && !(c == 200 && (name == "badbranch" || name == "zeromf")) {
					t.Errorf("%s/invalid/%s: answered %d, want 4xx or nothing\n%s", network, name, c, r)
				}
			}
		}
	}
	// Still alive and serving: OPTIONS answers, and a full bridged call works.
	opts := strings.Replace(strings.Replace(rawInvite("100", "", ""), "INVITE sip", "OPTIONS sip", 1), "1 INVITE", "1 OPTIONS", 1)
	if r := udpExchange(t, port, opts, 2*time.Second); statusCode(r) != 200 {
		t.Fatalf("OPTIONS after torture: %q", r)
	}
	b.carrier(t, "uac_rtp.xml").wait(t)
	b.desk.wait(t)
}

// FuzzHandleRequest feeds arbitrary bytes through sipgo's parser into our request handling
// (without a network): nothing may panic.
func FuzzHandleRequest(f *testing.F) {
	for _, kind := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "torture", kind, "*.dat"))
		for _, fn := range files {
			if b, err := os.ReadFile(fn); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(strings.ReplaceAll(rawInvite("+15550197", "", pcmuOffer), "\n", "\r\n")))
	parser := sipgosip.NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := parser.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sipgosip.Request)
		if !ok {
			return
		}
		// The pieces of our handling that read headers of untrusted requests.
		if h := req.GetHeader("Authorization"); h != nil {
			_ = trunkDigestOK(parseDigest(h.Value()), Trunk{Username: "u", Password: "p", Realm: "r"}, "r", "INVITE")
		}
		for _, h := range req.GetHeaders("Record-Route") {
			for _, v := range splitHeaderList(h.Value()) {
				var rr sipgosip.RouteHeader
				_ = parseRouteValue(v, &rr)
			}
		}
		if req.Body() != nil {
			_, _, _ = Negotiate(req.Body(), testLocal)
		}
		_, _ = callerOf(req, Trunk{Region: "US"})
		_, _, _ = linesServer("+15550197").lineFor(req, Trunk{Region: "FR"})
	})
}
