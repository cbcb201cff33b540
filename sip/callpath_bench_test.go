package sip

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// BenchmarkInboundBridgedCall is the gateway's side of `make bench`'s CPS step in one process:
// a zero-length call from the carrier to a line bridged to a far end — on the carrier's leg
// INVITE (with SDP) → 100, 180, 200 → ACK → BYE → 200, on the far end's INVITE → 180 → 200
// (with SDP) → ACK, then the gateway's BYE → 200 — one call after the other, each awaited
// until its call.ended reached the sink. The two peers are hand-driven loopback UDP sockets
// of this process that allocate little (a string per message); the gateway runs as `make
// bench` configures it but for the database: session timers at their default, no rate
// limit, no max_calls, a warn-level JSON logger writing nowhere, metrics registered, no
// recording and a sink that takes every event at once (the event log, the recordings and
// the rules engine are not in this figure).
//
// Besides ns/op (wall time of one call, round trips included) and -benchmem's figures, it
// reports cpu-µs/call: this process's user + system CPU (getrusage) per call, both peers
// included, which on a shared machine depends on the load less than the wall time does.
func BenchmarkInboundBridgedCall(b *testing.B) {
	desk := newBenchPeer(b)
	go desk.serveDesk()
	ended := make(chan struct{}, 16)
	reg := prometheus.NewRegistry()
	mm, err := media.NewMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
	lo := testport.FreeRange(b, 20000, 32000, 200)
	ports, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), lo, lo+199)
	if err != nil {
		b.Fatal(err)
	}
	// A gateway carrying calls keeps its media poll loop running (started with its first
	// socket, stopped with its last); one idle endpoint keeps it so here, or each call of this
	// one-at-a-time loop would start and stop it (an epoll instance, an io_uring and their
	// buffers), which the gateway in the CPS step seldom does.
	keep, err := media.NewEndpoint(media.EndpointOptions{Allocator: ports})
	if err != nil {
		b.Fatal(err)
	}
	defer keep.Close()
	port := testport.FreeUDP(b)
	opts := DefaultOptions()
	opts.UDPAddr = fmt.Sprintf("127.0.0.1:%d", port)
	opts.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	opts.Lines = []Line{{Number: "+15550197", Target: BridgeTo(fmt.Sprintf("sip:desk@127.0.0.1:%d", desk.port))}}
	opts.MaxCalls = 0
	opts.RateLimit.PerSecond = 0
	opts.Ports = ports
	opts.MediaMetrics = mm
	opts.Registerer = reg
	opts.Sink = benchSink{ended: ended}
	opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	carrier := newBenchPeer(b)
	carrier.gw = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}

	call := func(i int) {
		carrier.carrierCall(i, port)
		select {
		case <-ended:
		case <-time.After(20 * time.Second):
			b.Fatalf("call %d: no call.ended within 20 s", i)
		}
	}
	for i := range 20 { // warm up: pools, the allocator's sockets, the metrics' label values
		call(-1 - i)
	}
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		call(i)
		i++
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cpu.Microseconds())/float64(i), "cpu-µs/call")
	desk.c.Close()
}

// benchSink takes every event at once and signals each call.ended.
type benchSink struct{ ended chan struct{} }

func (s benchSink) Emit(_ context.Context, e callevent.Event) error {
	if e.Type == callevent.EventEnded {
		s.ended <- struct{}{}
	}
	return nil
}

func (s benchSink) EmitBatch(ctx context.Context, events []callevent.Event) error {
	for _, e := range events {
		_ = s.Emit(ctx, e)
	}
	return nil
}

// benchPeer is one hand-driven SIP peer of BenchmarkInboundBridgedCall on a loopback UDP
// socket: the carrier (carrierCall) or the far end (serveDesk).
type benchPeer struct {
	tb   testing.TB
	c    *net.UDPConn
	port int
	gw   *net.UDPAddr
	buf  []byte
	out  bytes.Buffer
}

func newBenchPeer(tb testing.TB) *benchPeer {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &benchPeer{tb: tb, c: c, port: c.LocalAddr().(*net.UDPAddr).Port, buf: make([]byte, 65535)}
}

// read returns the next message and its source, or "" once d passed or the socket closed.
func (p *benchPeer) read(d time.Duration) (string, *net.UDPAddr) {
	_ = p.c.SetReadDeadline(time.Now().Add(d))
	n, from, err := p.c.ReadFromUDP(p.buf)
	if err != nil {
		return "", nil
	}
	return string(p.buf[:n]), from
}

// send sends what out holds; the far end's errors (its socket closed at the end) are dropped.
func (p *benchPeer) send(to *net.UDPAddr) error {
	_, err := p.c.WriteToUDP(p.out.Bytes(), to)
	return err
}

// sendOrFail is the carrier's send.
func (p *benchPeer) sendOrFail(to *net.UDPAddr) {
	if err := p.send(to); err != nil {
		p.tb.Fatal(err)
	}
}

// benchHeader returns the first value of header name in msg ("" when absent).
func benchHeader(msg, name string) string {
	_, rest, _ := strings.Cut(msg, "\r\n")
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		if line == "" {
			return ""
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// benchVias returns every Via line of msg, in order, as written.
func benchVias(msg string) []string {
	var out []string
	_, rest, _ := strings.Cut(msg, "\r\n")
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		if line == "" {
			break
		}
		if k, _, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "Via") || strings.TrimSpace(k) == "v") {
			out = append(out, line)
		}
	}
	return out
}

const benchSDP = "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"

// carrierCall places call i and returns once the gateway answered its BYE.
func (p *benchPeer) carrierCall(i, gwPort int) {
	callID := "bench-" + strconv.Itoa(i) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	from := fmt.Sprintf("<sip:+1650%07d@127.0.0.1:%d>;tag=c%d", i&0xffffff, p.port, i&0xffffff)
	sdp := fmt.Sprintf(benchSDP, 40000)
	p.out.Reset()
	fmt.Fprintf(&p.out, "INVITE sip:+15550197@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKi%s\r\nFrom: %s\r\nTo: <sip:+15550197@127.0.0.1:%d>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:carrier@127.0.0.1:%d>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		gwPort, p.port, callID, from, gwPort, callID, p.port, len(sdp), sdp)
	p.sendOrFail(p.gw)
	to := ""
	sendAck := func() {
		p.out.Reset()
		fmt.Fprintf(&p.out, "ACK sip:switchboard@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKa%s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			gwPort, p.port, callID, from, to, callID)
		p.sendOrFail(p.gw)
	}
	deadline := time.Now().Add(20 * time.Second)
	for to == "" {
		m, _ := p.read(time.Until(deadline))
		if m == "" {
			p.tb.Fatalf("call %d: no 200 to the INVITE", i)
		}
		if benchHeader(m, "Call-ID") != callID || !strings.HasPrefix(m, "SIP/2.0 ") {
			continue
		}
		code := m[8:11]
		switch {
		case code == "200" && strings.HasSuffix(benchHeader(m, "CSeq"), "INVITE"):
			to = benchHeader(m, "To")
		case code[0] != '1':
			p.tb.Fatalf("call %d: %s", i, m[:min(len(m), 200)])
		}
	}
	sendAck()
	p.out.Reset()
	fmt.Fprintf(&p.out, "BYE sip:switchboard@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKb%s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		gwPort, p.port, callID, from, to, callID)
	p.sendOrFail(p.gw)
	for {
		m, _ := p.read(time.Until(deadline))
		if m == "" {
			p.tb.Fatalf("call %d: no 200 to the BYE", i)
		}
		if benchHeader(m, "Call-ID") != callID || !strings.HasPrefix(m, "SIP/2.0 ") {
			continue
		}
		cseq := benchHeader(m, "CSeq")
		switch {
		case strings.HasSuffix(cseq, "INVITE") && m[8:11] == "200":
			sendAck() // our ACK crossed a retransmission of the 200
		case strings.HasSuffix(cseq, "BYE"):
			if m[8:11] != "200" {
				p.tb.Fatalf("call %d: BYE answered %s", i, m[:min(len(m), 200)])
			}
			return
		}
	}
}

// serveDesk is the far end: every INVITE gets 180 and 200 with SDP (again on a
// retransmission), every BYE 200, ACKs nothing; it returns once its socket is closed.
func (p *benchPeer) serveDesk() {
	for {
		_ = p.c.SetReadDeadline(time.Time{})
		n, from, err := p.c.ReadFromUDP(p.buf)
		if err != nil {
			return
		}
		m := string(p.buf[:n])
		method, _, _ := strings.Cut(m, " ")
		switch method {
		case "INVITE":
			p.respond(m, from, "180 Ringing", "")
			p.respond(m, from, "200 OK", fmt.Sprintf(benchSDP, 41000))
		case "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO":
			p.respond(m, from, "200 OK", "")
		}
	}
}

func (p *benchPeer) respond(req string, to *net.UDPAddr, status, sdp string) {
	p.out.Reset()
	p.out.WriteString("SIP/2.0 " + status + "\r\n")
	for _, v := range benchVias(req) {
		p.out.WriteString(v + "\r\n")
	}
	toHdr := benchHeader(req, "To")
	if !strings.Contains(toHdr, "tag=") {
		toHdr += ";tag=desk"
	}
	fmt.Fprintf(&p.out, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContact: <sip:desk@127.0.0.1:%d>\r\n",
		benchHeader(req, "From"), toHdr, benchHeader(req, "Call-ID"), benchHeader(req, "CSeq"), p.port)
	if sdp != "" {
		fmt.Fprintf(&p.out, "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(sdp), sdp)
	} else {
		p.out.WriteString("Content-Length: 0\r\n\r\n")
	}
	_ = p.send(to)
}
