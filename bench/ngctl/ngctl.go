// Package ngctl drives rtpengine through its ng control protocol, so that `make bench` can run
// the same media load through rtpengine as through the gateway: a call is an `offer` (the
// caller's SDP in, the SDP the callee must send to out), an `answer` (the callee's SDP in, the
// SDP the caller must send to out) and a `delete`.
//
// The protocol (rtpengine's docs, "ng control protocol"): one UDP datagram per request, a
// cookie, a space, and a bencoded dictionary (bench/bencode) with "command", "call-id",
// "from-tag", "to-tag" and "sdp"; the reply is the same cookie, a space and a dictionary whose
// "result" is "ok" (then "sdp" holds the rewritten SDP) or "error" with an "error-reason".
// Requests are retried on timeout with the same cookie: rtpengine caches replies by cookie and
// answers a retransmission without doing the command twice.
package ngctl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/bench/bencode"
)

// Client is one ng control socket. Its methods may not be called concurrently.
type Client struct {
	conn    *net.UDPConn
	cookie  atomic.Uint64
	prefix  string
	timeout time.Duration
	tries   int
	buf     []byte
}

// Dial connects to rtpengine's ng port (e.g. 127.0.0.1:22222).
func Dial(addr netip.AddrPort) (*Client, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("ngctl: dial %v: %w", addr, err)
	}
	return &Client{conn: c, prefix: strconv.FormatInt(time.Now().UnixNano(), 36), timeout: 2 * time.Second, tries: 3, buf: make([]byte, 65536)}, nil
}

// Close closes the socket.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends one command (the dictionary req) and returns the reply's dictionary when its result
// is "ok" (or "pong" for ping).
func (c *Client) Do(req map[string]any) (map[string]any, error) {
	body, err := bencode.Marshal(req)
	if err != nil {
		return nil, err
	}
	cookie := c.prefix + "_" + strconv.FormatUint(c.cookie.Add(1), 10)
	msg := append([]byte(cookie+" "), body...)
	cmd, _ := req["command"].(string)
	for try := 0; try < c.tries; try++ {
		if _, err := c.conn.Write(msg); err != nil {
			return nil, fmt.Errorf("ngctl: %s: %w", cmd, err)
		}
		deadline := time.Now().Add(c.timeout)
		for {
			_ = c.conn.SetReadDeadline(deadline)
			n, err := c.conn.Read(c.buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // send again
			}
			if errors.Is(err, syscall.ECONNREFUSED) { // nothing bound yet (starting up): wait, send again
				time.Sleep(time.Until(deadline))
				break
			}
			if err != nil {
				return nil, fmt.Errorf("ngctl: %s: %w", cmd, err)
			}
			got, reply, err := ParseReply(c.buf[:n])
			if err != nil {
				return nil, fmt.Errorf("ngctl: %s: %w", cmd, err)
			}
			if got != cookie {
				continue // a late reply to an earlier request
			}
			switch r, _ := reply["result"].(string); r {
			case "ok", "pong":
				return reply, nil
			default:
				reason, _ := reply["error-reason"].(string)
				return nil, fmt.Errorf("ngctl: %s: result %q: %s", cmd, r, reason)
			}
		}
	}
	return nil, fmt.Errorf("ngctl: %s: no reply after %d tries of %v", cmd, c.tries, c.timeout)
}

// ParseReply splits a reply datagram into its cookie and dictionary.
func ParseReply(b []byte) (cookie string, dict map[string]any, err error) {
	s := string(b)
	cookie, body, ok := strings.Cut(s, " ")
	if !ok || cookie == "" {
		return "", nil, fmt.Errorf("reply without a cookie")
	}
	v, err := bencode.Unmarshal([]byte(body))
	if err != nil {
		return "", nil, err
	}
	dict, ok = v.(map[string]any)
	if !ok {
		return "", nil, fmt.Errorf("reply is a %T, not a dictionary", v)
	}
	return cookie, dict, nil
}

// Offer sends the caller's SDP and returns where rtpengine expects the callee's media to be
// sent: the address and port of the rewritten SDP's audio stream.
func (c *Client) Offer(callID, fromTag, sdp string) (netip.AddrPort, error) {
	return c.sdpCommand(map[string]any{"command": "offer", "call-id": callID, "from-tag": fromTag, "sdp": sdp})
}

// Answer sends the callee's SDP and returns where the caller's media goes.
func (c *Client) Answer(callID, fromTag, toTag, sdp string) (netip.AddrPort, error) {
	return c.sdpCommand(map[string]any{"command": "answer", "call-id": callID, "from-tag": fromTag, "to-tag": toTag, "sdp": sdp})
}

// Delete ends the call.
func (c *Client) Delete(callID, fromTag string) error {
	_, err := c.Do(map[string]any{"command": "delete", "call-id": callID, "from-tag": fromTag})
	return err
}

// Ping checks that rtpengine answers.
func (c *Client) Ping() error {
	_, err := c.Do(map[string]any{"command": "ping"})
	return err
}

func (c *Client) sdpCommand(req map[string]any) (netip.AddrPort, error) {
	reply, err := c.Do(req)
	if err != nil {
		return netip.AddrPort{}, err
	}
	sdp, ok := reply["sdp"].(string)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("ngctl: %s: reply without sdp", req["command"])
	}
	return AudioAddr(sdp)
}

// AudioSDP is a minimal SDP offer/answer (RFC 4566) of one PCMU audio stream (RFC 3551
// payload type 0) at addr:port.
func AudioSDP(addr netip.Addr, port int, sessionID int) string {
	return fmt.Sprintf("v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=ptime:20\r\n",
		sessionID, addr, addr, port)
}

// AudioAddr returns the address and port of the first audio stream of sdp: the stream's own
// c= line if it has one, else the session's (RFC 4566 §5.7).
func AudioAddr(sdp string) (netip.AddrPort, error) {
	var sess, media netip.Addr
	port, inAudio, seenAudio, inSession := 0, false, false, true
	for _, line := range strings.Split(strings.ReplaceAll(sdp, "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "m="):
			inSession = false
			if seenAudio {
				inAudio = false
				continue
			}
			f := strings.Fields(line[2:])
			if len(f) >= 2 && f[0] == "audio" {
				p, err := strconv.Atoi(f[1])
				if err != nil || p <= 0 || p > 65535 {
					return netip.AddrPort{}, fmt.Errorf("ngctl: bad audio port in %q", line)
				}
				port, inAudio, seenAudio = p, true, true
			} else {
				inAudio = false
			}
		case strings.HasPrefix(line, "c="):
			f := strings.Fields(line[2:])
			if len(f) != 3 || f[0] != "IN" || f[1] != "IP4" {
				continue
			}
			a, err := netip.ParseAddr(f[2])
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("ngctl: bad address in %q", line)
			}
			if inAudio {
				media = a
			} else if inSession {
				sess = a
			}
		}
	}
	if !seenAudio {
		return netip.AddrPort{}, fmt.Errorf("ngctl: no audio stream in the SDP")
	}
	if media.IsValid() {
		return netip.AddrPortFrom(media, uint16(port)), nil
	}
	if sess.IsValid() {
		return netip.AddrPortFrom(sess, uint16(port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("ngctl: no IPv4 connection address for the audio stream")
}
