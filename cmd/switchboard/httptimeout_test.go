package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/config"
)

// startTimedHTTP serves a trivial handler with the gateway's HTTP server construction and
// the given timeouts on a free loopback port.
func startTimedHTTP(t *testing.T, to httpTimeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), to, nil)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedIn waits (at most limit) for the server to close c and returns how long it took; ok is
// false when c is still open at limit.
func closedIn(c net.Conn, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, isNet := err.(net.Error); isNet && ne.Timeout() {
		return time.Since(start), false
	}
	return time.Since(start), true
}

func TestDefaultHTTPTimeoutsAreAllSet(t *testing.T) {
	to := defaultHTTPTimeouts()
	srv := newHTTPServer(http.NotFoundHandler(), to, nil)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("HTTP server timeouts: header %s, read %s, write %s, idle %s; all must be set",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}

// Slowloris: a client from 127.0.0.2 sends headers a line at a time and never finishes them;
// the read-header timeout cuts it.
func TestHTTPSlowlorisHeadersNeverFinishedAreCut(t *testing.T) {
	addr := startTimedHTTP(t, httpTimeouts{readHeader: 500 * time.Millisecond, read: 3 * time.Second, write: 3 * time.Second, idle: 3 * time.Second})
	c := dialFrom(t, "127.0.0.2", addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: gw\r\n"); err != nil {
		t.Fatal(err)
	}
	go func() { // a header line now and then, never the blank line
		for range 10 {
			time.Sleep(200 * time.Millisecond)
			if _, err := io.WriteString(c, "X-Slow: 1\r\n"); err != nil {
				return
			}
		}
	}()
	if took, ok := closedIn(c, 2500*time.Millisecond); !ok {
		t.Fatalf("slowloris connection still open after %s", took)
	}
}

// An idle-connection flood: keep-alive connections from 127.0.0.2 that made one request and
// then stay silent are closed after the idle timeout instead of holding file descriptors.
func TestHTTPIdleKeepAliveFloodIsClosedAfterIdleTimeout(t *testing.T) {
	addr := startTimedHTTP(t, httpTimeouts{readHeader: 5 * time.Second, read: 5 * time.Second, write: 5 * time.Second, idle: 500 * time.Millisecond})
	var conns []net.Conn
	for range 5 {
		c := dialFrom(t, "127.0.0.2", addr)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || strings.TrimSpace(string(b)) != "ok" {
			t.Fatalf("request: %d %q", res.StatusCode, b)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		if took, ok := closedIn(c, 3*time.Second); !ok {
			t.Fatalf("idle keep-alive connection %d still open after %s", i, took)
		}
	}
}

// The descriptor budget counts both RTP sockets of every port pair and the SIP connection caps,
// so a flood held to the caps leaves RTP its sockets.
func TestFDBudgetCountsRTPAndConnectionCaps(t *testing.T) {
	cfg := config.Default()
	cfg.RTP.PortMin, cfg.RTP.PortMax = 10000, 10999 // 500 pairs
	cfg.SIP.Connections.Max = 100
	// Default listeners: UDP and TCP.
	if got, want := fdNeeded(&cfg), 2*500+100+maxHTTPConns+fdOther; got != want {
		t.Fatalf("fdNeeded = %d, want %d", got, want)
	}
	if lim, ok := openFileLimit(); ok && lim < uint64(fdNeeded(&cfg)) {
		t.Logf("note: this machine's open-file limit %d is below the default budget", lim)
	}
}
