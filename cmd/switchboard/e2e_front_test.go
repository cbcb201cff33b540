package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireKamailio returns the kamailio and kamcmd paths, failing when SWITCHBOARD_REQUIRE_PEERS
// is set and Kamailio is missing, skipping otherwise.
func requireKamailio(t *testing.T) (kamailio, kamcmd string) {
	t.Helper()
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/sbin/" + name); err == nil {
			return "/usr/sbin/" + name
		}
		return ""
	}
	kamailio, kamcmd = find("kamailio"), find("kamcmd")
	if kamailio == "" || kamcmd == "" {
		if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
			t.Fatal("kamailio not installed and SWITCHBOARD_REQUIRE_PEERS is set")
		}
		t.Skip("kamailio not installed (apt-get install kamailio)")
	}
	return kamailio, kamcmd
}

// startFront runs the shipped deploy/kamailio/kamailio.cfg on 127.0.0.1:port in front of the
// one gateway node at 127.0.0.1:node, as scripts/cluster.sh does, and waits until its
// dispatcher holds the node active, probing it every ping seconds. Cleanup stops it.
func startFront(t *testing.T, port, node, ping int) {
	t.Helper()
	kamailio, kamcmd := requireKamailio(t)
	cfg, err := filepath.Abs(opsRepoRoot + "/deploy/kamailio/kamailio.cfg")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(list, []byte(fmt.Sprintf("1 sip:127.0.0.1:%d 0 0 duid=node1\n", node)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The control socket in a short directory: a Unix socket path holds at most 107 bytes.
	run, err := os.MkdirTemp("", "sbfront")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	ctl := "unix:" + filepath.Join(run, "ctl")
	cmd := exec.Command(kamailio, "-DD", "-E", "-f", cfg, "-Y", run, "-P", filepath.Join(run, "pid"),
		"-A", "FRONT_ADDR=127.0.0.1", "-A", "FRONT_PORT="+strconv.Itoa(port), "-A", `DISPATCHER_LIST="`+list+`"`,
		"-A", "DS_PING_INTERVAL="+strconv.Itoa(ping), "-A", `CTL_SOCKET="`+ctl+`"`, "-A", `RPC_FIFO="`+filepath.Join(run, "fifo")+`"`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children with it, as a last resort
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("kamailio log:\n%s", tail(out.String(), 4000))
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("kamailio exited while starting:\n%s", tail(out.String(), 4000))
		default:
		}
		b, _ := exec.Command(kamcmd, "-s", ctl, "dispatcher.list").Output()
		if strings.Contains(string(b), "FLAGS: A") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the front did not hold the node active within 30 s:\n%s", b)
		}
	}
}

// securityEvents returns the gateway's "sip: security event" log lines of type typ.
func (g *testGateway) securityEvents(typ string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(g.logText(), "\n") {
		var m map[string]any
		if !strings.Contains(line, `"sip: security event"`) || json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m["security_event"] == typ {
			out = append(out, m)
		}
	}
	return out
}

// The shipped Kamailio front and a gateway that trusts it (sip.trusted_fronts: 127.0.0.1/32),
// whose only trunk is the carrier at 127.0.0.3: a scanner on 127.0.0.2 calling through the
// front is dropped, its security event and log line naming 127.0.0.2 (the front beside it),
// and the carrier on 127.0.0.3 calling through the same front right after keeps getting its
// calls answered (the scanner neither got in nor took the node out of the front). A client on
// 127.0.0.2 writing X-Switchboard-Source itself straight to the gateway is not believed
// (403, source_spoofed, logged as 127.0.0.2); the same forged header sent through the front is
// replaced by the front's own (403 for 127.0.0.2, not the carrier's 127.0.0.3 it named).
func TestFront_GatewaysSeeTheRealSourceThroughKamailio(t *testing.T) {
	requireSipp(t)
	requireKamailio(t)
	g := runEditedGateway(t, func(int) [][2]string {
		return [][2]string{
			{"    inbound: {allow: [127.0.0.0/8]}\n", "    inbound: {allow: [127.0.0.3/32]}\n"},
			{"  registrar: {digest_algorithms: [MD5, SHA-256]}\n", "  registrar: {digest_algorithms: [MD5, SHA-256]}\n  trusted_fronts: [127.0.0.1/32]\n"},
		}
	})
	front := freeSIPPort(t)
	// Probes 10 s apart, as in production: a node the front took out stays out that long.
	startFront(t, front, g.sipPort, 10)
	frontAddr := fmt.Sprintf("127.0.0.1:%d", front)
	gwAddr := fmt.Sprintf("127.0.0.1:%d", g.sipPort)
	refused := func(what, from, to, ua, extra string, code, n int) {
		t.Helper()
		startSippN(t, "front_refused.xml", map[string]string{"FRONT_UA": ua, "FRONT_EXTRA": extra, "FRONT_CODE": strconv.Itoa(code)},
			n, 60*time.Second, "-i", from, "-s", "+15550100", "-l", strconv.Itoa(n), to).wait(t, what)
	}
	// awaitEvent waits for the n-th security event of type typ and returns it.
	awaitEvent := func(typ string, n int) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if evs := g.securityEvents(typ); len(evs) >= n {
				return evs[n-1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %d-th %s security event logged within 10 s", n, typ)
			}
		}
	}

	// The scanner through the front, two INVITEs at once: the gateway drops them without a
	// word, so the front answers each 408 itself once its 2 s timer fires — without taking the
	// node out for that (two silent INVITEs did, for two probe intervals).
	refused("scanner through the front", "127.0.0.2", frontAddr, "friendly-scanner", "X-Probe: 1", 408, 2)
	ev := awaitEvent("scanner_drop", 1)
	if src := fmt.Sprint(ev["source"]); !strings.HasPrefix(src, "127.0.0.2:") || ev["front"] != frontAddr {
		t.Errorf("scanner_drop logged source %s front %v, want 127.0.0.2 through %s", src, ev["front"], frontAddr)
	}
	// One per transmission of the INVITE (the front retransmits it, RFC 3261 §17.1.1.2).
	if v := g.metric(`switchboard_security_events_total{type="scanner_drop"}`); v < 1 {
		t.Errorf("scanner_drop = %v, want at least 1", v)
	}

	// The carrier through the same front, right after: every call answered.
	startSippN(t, "carrier_rtp.xml", nil, 3, 90*time.Second, "-i", "127.0.0.3", "-s", "+15550100", "-l", "3", frontAddr).
		wait(t, "carrier on 127.0.0.3 through the front")
	if v := g.metric(`switchboard_security_events_total{type="acl_reject"}`); v != 0 {
		t.Fatalf("acl_reject = %v after the carrier's calls, want 0", v)
	}

	// A forged header straight to the gateway: ignored, counted, logged as the sender.
	refused("forged header straight to the gateway", "127.0.0.2", gwAddr, "mallory",
		"X-Switchboard-Source: udp 127.0.0.3:5060", 403, 1)
	ev = awaitEvent("source_spoofed", 1)
	if src := fmt.Sprint(ev["source"]); !strings.HasPrefix(src, "127.0.0.2:") || ev["front"] != nil {
		t.Errorf("source_spoofed logged source %s front %v, want 127.0.0.2 and no front", src, ev["front"])
	}
	if ev := awaitEvent("acl_reject", 1); !strings.HasPrefix(fmt.Sprint(ev["source"]), "127.0.0.2:") {
		t.Errorf("acl_reject of the forged INVITE logged source %v, want 127.0.0.2", ev["source"])
	}

	// The same forgery through the front (in two spellings of the name): the front deletes
	// both and writes the real source, so the gateway refuses 127.0.0.2.
	refused("forged header through the front", "127.0.0.2", frontAddr, "mallory",
		"X-Switchboard-Source: udp 127.0.0.3:5060\nx-switchboard-source: udp 127.0.0.3:5060", 403, 1)
	ev = awaitEvent("acl_reject", 2)
	if src := fmt.Sprint(ev["source"]); !strings.HasPrefix(src, "127.0.0.2:") || ev["front"] != frontAddr {
		t.Errorf("acl_reject through the front logged source %s front %v, want 127.0.0.2 through %s", src, ev["front"], frontAddr)
	}
	if v := g.metric(`switchboard_security_events_total{type="source_spoofed"}`); v != 1 {
		t.Errorf("source_spoofed = %v, want 1 (the front's own header is no spoof)", v)
	}
	if v := g.metric(`switchboard_security_events_total{type="malformed"}`); v != 0 {
		t.Errorf("malformed = %v, want 0 (the front left one header of its own)", v)
	}
}
