package main

import (
	"bufio"
	"context"
	bin "encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// testGateway is a `switchboard serve` subprocess with a configuration shaped like the dev one
// (deploy/dev/switchboard.yaml) on free ports, and a short queue so that tests do not wait two minutes.
type testGateway struct {
	t        *testing.T
	base     string // HTTP
	sipPort  int
	deskPort int // where the +15550197 line's desk phone must listen
	dir      string
	cmd      *exec.Cmd
	exited   chan error
	mu       sync.Mutex
	logs     strings.Builder
}

// writeGatewayConfig writes the test configuration and returns the gateway's ports.
func writeGatewayConfig(t *testing.T, dbURL string) (path, base string, sipPort, deskPort int, dir string) {
	t.Helper()
	dir = t.TempDir()
	httpPort, sipPort, deskPort := freePort(t), testport.FreeUDP(t), testport.FreeUDP(t)
	// An RTP range of its own: 200 ports free now, from a random even start in 40000–50000,
	// clear of the unit tests' ranges (21000–31000); the allocator skips any port another
	// process takes later. (A benchmark's gateway beside the tests holds thousands of ports
	// there: a range drawn blind was all taken, and the softphone got no RTP port.)
	rtpMin := testport.FreeRange(t, 20000, 32000, 200)
	cfg := fmt.Sprintf(`node: test
shutdown_grace: 10s
log: {level: debug}
database:
  url: %q
  spool: %q
http: {listen: "127.0.0.1:%d"}
sip:
  listen:
    - {transport: udp, address: "127.0.0.1:%d"}
    - {transport: tcp, address: "127.0.0.1:%d"}
  # SIPp 3.6 answers only the first challenge and knows only MD5 (see deploy/dev).
  registrar: {digest_algorithms: [MD5, SHA-256]}
rtp: {address: 127.0.0.1, port_min: %d, port_max: %d}
trunks:
  - name: carrier
    inbound: {allow: [127.0.0.0/8]}
    outbound: {uri: "sip:127.0.0.1:%d", caller_id: "+15550100"}
lines:
  - {number: "+15550100", target: "ivr:main"}
  - {number: "+15550198", target: voicemail}
  - {number: "+15550197", target: "sip:desk@127.0.0.1:%d"}
ivr:
  main:
    prompt: greeting
    timeout: 5s
    retries: 1
    options: {"1": "queue:support", "9": voicemail}
    no_input: "queue:support"
queues:
  support: {ring_timeout: 2s, max_wait: 30s, overflow: voicemail}
agents:
  - {email: agent1@example.com, name: Agent One, password: agentpass, queues: [support]}
users:
  - {email: admin@example.com, name: Admin, password: adminpass, role: admin}
recordings: {enabled: true, dir: %q, start: answer, retention_days: 3650}
`, dbURL, filepath.Join(dir, "spool", "events.jsonl"), httpPort, sipPort, sipPort, rtpMin, rtpMin+199,
		deskPort, deskPort, filepath.Join(dir, "recordings"))
	path = filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, fmt.Sprintf("http://127.0.0.1:%d", httpPort), sipPort, deskPort, dir
}

// runEditedGateway is runGateway with the harness configuration changed first: edits(deskPort)
// gives pairs of text to find (it must be there: the test fails when the harness changed) and
// its replacement, each applied once.
func runEditedGateway(t *testing.T, edits func(deskPort int) [][2]string) *testGateway {
	t.Helper()
	exe := binary(t)
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, pgtest.EmptyURL(t))
	editConfig(t, path, edits(deskPort))
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(exe, path)
	return g
}

// editConfig replaces, in the configuration file at path, the first occurrence of each edit's
// first string by its second; an edit whose string is not there fails the test.
func editConfig(t *testing.T, path string, edits [][2]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, e := range edits {
		if !strings.Contains(cfg, e[0]) {
			t.Fatalf("the harness configuration no longer has %q", e[0])
		}
		cfg = strings.Replace(cfg, e[0], e[1], 1)
	}
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runGateway runs serve with a fresh database and waits for /readyz.
func runGateway(t *testing.T) *testGateway {
	t.Helper()
	bin := binary(t)
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, pgtest.EmptyURL(t))
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(bin, path)
	return g
}

// launch starts `serve --config path` as g's process, collecting its log, and waits for
// /readyz. Cleanup stops it (SIGTERM, SIGKILL after 20 s) unless it has exited already; g.exited
// keeps the exit status for every later reader.
func (g *testGateway) launch(bin, path string) {
	g.t.Helper()
	g.start(bin, path)
	waitReady(g.t, g.base, g.exited)
}

// start is launch without waiting for /readyz.
func (g *testGateway) start(bin, path string) {
	t := g.t
	t.Helper()
	g.exited = make(chan error, 1)
	g.cmd = exec.Command(bin, "serve", "--config", path)
	g.cmd.Env = append(os.Environ(), "DATABASE_URL=")
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			g.mu.Lock()
			g.logs.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
		}
	}()
	go func() { <-logsDone; g.exited <- g.cmd.Wait() }()
	t.Cleanup(func() {
		g.logMediaStalls()
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-g.exited:
			g.exited <- err
		case <-time.After(20 * time.Second):
			_ = g.cmd.Process.Kill()
			g.exited <- <-g.exited
		}
		if t.Failed() {
			t.Logf("gateway (pid %d) logs:\n%s", g.cmd.Process.Pid, tail(g.logText(), 8000))
		}
	})
}

// logMediaStalls logs, whether the test passed or not, the gateway's media stalls and late RTP
// arrivals when it counted any: a test that lost audio under load then says whether the gateway's
// media loop stalled (CPU starvation), or the packets came late (a sender that stalled).
func (g *testGateway) logMediaStalls() {
	if g.base == "" {
		return
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(g.base + "/metrics")
	if err != nil {
		return // not started, or exited already
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, l := range strings.Split(string(b), "\n") {
		if (strings.HasPrefix(l, "switchboard_media_loop_stall") || strings.HasPrefix(l, "switchboard_rtp_late_arrivals_total") ||
			strings.HasPrefix(l, "switchboard_media_ring_missed_wakeups_total")) &&
			!strings.HasSuffix(l, " 0") {
			g.t.Logf("gateway media: %s", l)
		}
	}
}

func (g *testGateway) logText() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// api calls the API as the admin and decodes the JSON answer.
func (g *testGateway) api(method, path string, body string) (int, map[string]any) {
	g.t.Helper()
	return g.apiAs("admin@example.com", "adminpass", method, path, body)
}

// awaitCall polls GET /calls?to=NUMBER until a call matches cond, bounded.
func (g *testGateway) awaitCall(to string, cond func(map[string]any) bool) map[string]any {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		code, m := g.api("GET", "/calls?to="+strings.ReplaceAll(to, "+", "%2B"), "")
		if code == 200 {
			for _, c := range m["calls"].([]any) {
				cm := c.(map[string]any)
				last = cm
				if cond(cm) {
					return cm
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.t.Fatalf("no call to %s reached the expected state; last seen %v", to, last)
	return nil
}

// sipp runs SIPp with a scenario (after replacing placeholders) in a temp dir holding
// tone.wav, and returns when it exited; it fails the test unless every call succeeded.
type sippRun struct {
	cmd   *exec.Cmd
	out   lockedBuffer // SIPp's output, written by exec's copying goroutine while it runs
	done  chan error
	limit time.Duration
	dir   string // its working directory: the scenario, and what its exec actions write
	port  int    // its local SIP port
}

func requireSipp(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
			t.Fatalf("sipp not installed and SWITCHBOARD_REQUIRE_PEERS is set: %v", err)
		}
		t.Skip("sipp not installed (apt-get install sip-tester)")
	}
	return p
}

func startSipp(t *testing.T, scenario string, repl map[string]string, args ...string) *sippRun {
	t.Helper()
	return startSippN(t, scenario, repl, 1, 120*time.Second, args...)
}

// startSippN is startSipp for a run of calls (-m calls) bounded by limit in wall time.
func startSippN(t *testing.T, scenario string, repl map[string]string, calls int, limit time.Duration, args ...string) *sippRun {
	t.Helper()
	bin := requireSipp(t)
	dir := t.TempDir()
	writeToneWAV(t, filepath.Join(dir, "tone.wav"), 20)
	b, err := os.ReadFile(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range repl {
		s = strings.ReplaceAll(s, k, v)
	}
	sf := filepath.Join(dir, scenario)
	if err := os.WriteFile(sf, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	// An explicit local SIP port unless the caller gave one: SIPp binds 5060 by default, and a
	// gateway the user runs there would collide with the test.
	if !slices.Contains(args, "-p") {
		args = append([]string{"-p", strconv.Itoa(testport.FreeUDP(t))}, args...)
	}
	port, _ := strconv.Atoi(args[slices.Index(args, "-p")+1])
	all := append([]string{"-sf", sf, "-nostdin", "-m", strconv.Itoa(calls), "-timeout", fmt.Sprintf("%ds", int((limit - 30*time.Second).Seconds())), "-timeout_error",
		"-recv_timeout", "60s", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", strconv.Itoa(testport.FreeMedia(t))}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	r := &sippRun{done: make(chan error, 1), limit: limit, dir: dir, port: port}
	r.cmd = exec.CommandContext(ctx, bin, all...)
	r.cmd.Dir = dir
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait(); cancel() }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
		}
	})
	return r
}

func (r *sippRun) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("sipp (%s) failed: %v\n%s", what, err, tail(r.out.String(), 3000))
		}
	case <-time.After(r.limit + 5*time.Second):
		t.Fatalf("sipp (%s) did not exit", what)
	}
}

// hangUp tells a SIPp whose scenario waits for it (conf_phone.xml, conf_caller.xml) to hang
// its call up now: an INFO in the call's dialog — SIPp matches it to the call by the Call-ID the
// scenario wrote to callid.txt — sent once to its SIP port (loopback; SIPp answers it towards
// the call's peer, the gateway, not to us: the caller awaits the SIPp's exit with wait). A test
// that decides when a leg leaves, instead of a SIPp pause, has no timer that a loaded
// machine's slow phases can overrun.
func (r *sippRun) hangUp(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var callID string
	for callID == "" {
		b, _ := os.ReadFile(filepath.Join(r.dir, "callid.txt"))
		callID = strings.TrimSpace(string(b))
		if callID == "" {
			if time.Now().After(deadline) {
				t.Fatalf("sipp (%s) wrote no Call-ID within 20 s:\n%s", what, tail(r.out.String(), 2000))
			}
			time.Sleep(50 * time.Millisecond) // bounded by deadline: SIPp's exec writes it meanwhile
		}
	}
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: r.port})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	me := conn.LocalAddr().(*net.UDPAddr)
	info := fmt.Sprintf("INFO sip:sipp@127.0.0.1:%d SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-hangup-%d\r\n"+
		"From: <sip:test@127.0.0.1>;tag=hangup\r\nTo: <sip:sipp@127.0.0.1>\r\n"+
		"Call-ID: %s\r\nCSeq: 1 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		r.port, me.Port, me.Port, callID)
	if _, err := conn.Write([]byte(info)); err != nil {
		t.Fatalf("sipp (%s): hang-up INFO: %v", what, err)
	}
}

// writeToneWAV writes secs seconds of a 440 Hz μ-law tone for SIPp's rtp_stream.
func writeToneWAV(t *testing.T, path string, secs int) {
	t.Helper()
	writeToneFile(t, path, 440, secs)
}

// ticketOf returns the call's ticket and its comments.
func (g *testGateway) ticketOf(call map[string]any) (map[string]any, []any) {
	g.t.Helper()
	id, ok := call["ticket_id"].(float64)
	if !ok {
		g.t.Fatalf("call has no ticket: %v", call)
	}
	code, tk := g.api("GET", fmt.Sprintf("/tickets/%d", int64(id)), "")
	if code != 200 {
		g.t.Fatalf("GET ticket = %d %v", code, tk)
	}
	code, cs := g.api("GET", fmt.Sprintf("/tickets/%d/comments", int64(id)), "")
	if code != 200 {
		g.t.Fatalf("GET comments = %d %v", code, cs)
	}
	return tk["ticket"].(map[string]any), cs["comments"].([]any)
}

// recordingOf waits for the call's voice comment to carry a recording and fetches it.
func (g *testGateway) recordingOf(to string) (map[string]any, []byte) {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		call := g.awaitCall(to, func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
		_, comments := g.ticketOf(call)
		for _, c := range comments {
			cm := c.(map[string]any)
			rec, _ := cm["recording"].(map[string]any)
			if cm["type"] != "VoiceComment" || rec == nil {
				continue
			}
			req, _ := http.NewRequest("GET", g.base+"/api/v2/recordings/"+rec["id"].(string), nil)
			req.SetBasicAuth("admin@example.com", "adminpass")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				g.t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/wav" {
				g.t.Fatalf("GET recording = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			return cm, b
		}
		time.Sleep(200 * time.Millisecond)
	}
	g.t.Fatalf("no recording on the voice comment of the call to %s", to)
	return nil, nil
}

// wavChannels reads the channel count and data length of a PCM WAV.
func wavChannels(t *testing.T, b []byte) (channels int, seconds float64) {
	t.Helper()
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("not a WAV file (%d bytes)", len(b))
	}
	channels = int(bin.LittleEndian.Uint16(b[22:24]))
	rate := bin.LittleEndian.Uint32(b[24:28])
	bits := bin.LittleEndian.Uint16(b[34:36])
	data := len(b) - 44
	return channels, float64(data) / float64(rate) / float64(channels) / float64(bits/8)
}

// A call from the carrier to the bridged line (+15550197) reaches the desk phone with RTP
// both ways; it becomes a call record, a ticket with a voice comment, and a stereo recording
// that the admin can download.
func TestEndToEnd_BridgedCallBecomesTicketWithRecording(t *testing.T) {
	requireSipp(t)
	g := runGateway(t)
	desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
	carrier := startSipp(t, "carrier_rtp.xml", nil, "-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")

	call := g.awaitCall("+15550197", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["from"] != "+15551234567" || call["direction"] != "inbound" {
		t.Errorf("call record %v", call)
	}
	if d, _ := call["talk_time"].(float64); d < 2 || d > 5 {
		t.Errorf("talk_time %v, want about 3 s", call["talk_time"])
	}
	tk, _ := g.ticketOf(call)
	via := tk["via"].(map[string]any)
	if via["channel"] != "voice" || viaRel(tk) != "inbound" {
		t.Errorf("ticket via %v", via)
	}
	comment, wav := g.recordingOf("+15550197")
	if comment["call_id"] != call["id"] || comment["from"] != "+15551234567" {
		t.Errorf("voice comment %v", comment)
	}
	ch, secs := wavChannels(t, wav)
	if ch != 2 || secs < 2 || secs > 5 {
		t.Errorf("recording: %d channels, %.1f s; want stereo, about 3 s", ch, secs)
	}
	// RTP went both ways through the gateway.
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body = []byte(withoutNodeLabel(string(body)))
	for _, want := range []string{`switchboard_calls_total{direction="inbound",outcome="answered"} 1`, `switchboard_rtp_packets_total{direction="rx"}`,
		`switchboard_ticketing_events_total{type="call.recording_ready"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A caller presses 9 in the main menu (RFC 4733 from SIPp's capture) and leaves a message:
// a voicemail ticket (TC-3) with the message as its recording; the menu path is on the call.
func TestEndToEnd_IVRDigitToVoicemailTicket(t *testing.T) {
	requireSipp(t)
	g := runGateway(t)
	carrier := startSipp(t, "carrier_ivr.xml", map[string]string{"KEY_PCAP": "/usr/share/sip-tester/dtmf_2833_9.pcap", "TALK_MS": "9000"},
		"-s", "+15550100", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	call := g.awaitCall("+15550100", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["menu_path"] != "main>9" || call["outcome"] != "voicemail" {
		t.Errorf("call %v: want menu path main>9, outcome voicemail", call)
	}
	tk, _ := g.ticketOf(call)
	if tk["via"].(map[string]any)["channel"] != "voicemail" {
		t.Errorf("ticket %v: want a voicemail ticket", tk)
	}
	_, wav := g.recordingOf("+15550100")
	if ch, secs := wavChannels(t, wav); ch != 1 || secs < 1 {
		t.Errorf("voicemail message: %d channels, %.1f s; want mono with the message", ch, secs)
	}
}

// A caller presses 1 (queue support), nobody is available, and hangs up while waiting: the call
// was queued and abandoned there, and gets an abandoned ticket (TC-5, default on).
func TestEndToEnd_IVRQueueAbandonedTicket(t *testing.T) {
	requireSipp(t)
	g := runGateway(t)
	carrier := startSipp(t, "carrier_ivr.xml", map[string]string{"KEY_PCAP": "/usr/share/sip-tester/dtmf_2833_1.pcap", "TALK_MS": "3000"},
		"-s", "+15550100", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	call := g.awaitCall("+15550100", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["queue"] != "support" || call["outcome"] != "abandoned" || call["menu_path"] != "main>1" {
		t.Errorf("call %v: want queue support, outcome abandoned, menu path main>1", call)
	}
	if q, _ := call["queue_time"].(float64); q < 2 {
		t.Errorf("queue_time %v, want the seconds waited", call["queue_time"])
	}
	tk, _ := g.ticketOf(call)
	tags, _ := tk["tags"].([]any)
	found := false
	for _, tg := range tags {
		found = found || tg == "abandoned"
	}
	if !found {
		t.Errorf("ticket %v: want tag abandoned", tk)
	}
}

// customField reads a call field of a ticket as the API returns it: Zendesk's custom_fields
// list [{id, value}] (ids of GET /ticket_fields) or the object of earlier versions.
func customField(tk map[string]any, key string) any {
	switch cf := tk["custom_fields"].(type) {
	case map[string]any:
		return cf[key]
	case []any:
		want := float64(ticketing.TicketFieldID(key))
		for _, it := range cf {
			if f, _ := it.(map[string]any); f["id"] == want {
				return f["value"]
			}
		}
	}
	return nil
}

// viaRel is a ticket's via source as Zendesk writes it (source.rel: inbound, outbound), or the
// plain string of earlier versions.
func viaRel(tk map[string]any) any {
	via, _ := tk["via"].(map[string]any)
	if src, ok := via["source"].(map[string]any); ok {
		return src["rel"]
	}
	return via["source"]
}
