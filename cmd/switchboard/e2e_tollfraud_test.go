package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Toll fraud through the API (issue 14, item 7), against the real binary: an agent's login
// dialling a premium-rate number is refused before anything reaches the trunk's far end (a
// plain UDP socket where the carrier would be), and spraying POST /calls beyond the agent's
// rate is refused and counted.
func TestEndToEnd_TollFraudPremiumDialNeverReachesTheTrunkAndSprayIsRateLimited(t *testing.T) {
	exe := binary(t)
	path, base, sipPort, deskPort, dir := writeGatewayConfig(t, pgtest.EmptyURL(t))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	trunk := fmt.Sprintf(`outbound: {uri: "sip:127.0.0.1:%d", caller_id: "+15550100"}`, deskPort)
	if !bytes.Contains(b, []byte(trunk)) {
		t.Fatalf("the harness configuration no longer has %q", trunk)
	}
	// The default deny list (premium rate +1900 …) stays; 2 calls a minute; no concurrency
	// limit, so that the calls the far end never answers do not count against the rate test.
	b = bytes.Replace(b, []byte(trunk), []byte(fmt.Sprintf(
		`outbound: {uri: "sip:127.0.0.1:%d", caller_id: "+15550100", agent_limits: {calls_per_minute: 2, max_calls: 0}}`, deskPort)), 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The carrier's far end: a UDP socket on the trunk's address that records what arrives.
	far, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", deskPort))
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	g := &testGateway{t: t, base: base, sipPort: sipPort, deskPort: deskPort, dir: dir}
	g.launch(exe, path)

	contact := func(name, phone string) int64 {
		code, m := g.api("POST", "/users", fmt.Sprintf(`{"user":{"name":%q,"phone":%q}}`, name, phone))
		u, _ := m["user"].(map[string]any)
		if code != 201 || u == nil {
			t.Fatalf("create %s: %d %v", name, code, m)
		}
		return int64(u["id"].(float64))
	}
	premium, ordinary := contact("Premium", "+19005550123"), contact("Ordinary", "+15551230077")
	dial := func(to string, id int64) (int, map[string]any) {
		return g.api("POST", "/calls", fmt.Sprintf(`{"call":{"to":%q,"contact_id":%d}}`, to, id))
	}

	// The admin's softphone page is open (a WebSocket is what the page's session needs to take
	// a call): an agent's dial is put on the page before anything is dialled, and a dial
	// without a page reaches nobody.
	g.openPage("admin@example.com", "adminpass")

	code, m := dial("+19005550123", premium)
	if code != 403 || m["reason"] != "destination_denied" {
		t.Fatalf("premium dial: %d %v", code, m)
	}
	// An ordinary dial goes out (the far end never answers: the call stays on the admin's
	// page, dialling): the first datagram at the far end must be that INVITE, so the premium
	// dial before it sent nothing.
	if code, m := dial("+15551230077", ordinary); code == 403 || code == 429 {
		t.Fatalf("ordinary dial refused: %d %v", code, m)
	}
	buf := make([]byte, 65535)
	_ = far.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, _, err := far.ReadFrom(buf)
	if err != nil {
		t.Fatalf("nothing reached the far end: %v", err)
	}
	invite := string(buf[:n])
	if !strings.HasPrefix(invite, "INVITE ") || !strings.Contains(invite, "15551230077") || strings.Contains(invite, "1900555") {
		t.Fatalf("the first datagram at the far end is not the ordinary INVITE:\n%s", invite)
	}

	// The spray: one more call fits in the minute, the next four are refused.
	answers := map[int]int{}
	for range 5 {
		code, m := dial("+15551230077", ordinary)
		answers[code]++
		if code == 429 && m["reason"] != "rate" {
			t.Fatalf("429 for %v", m)
		}
	}
	if answers[429] != 4 {
		t.Fatalf("spray answers %v, want four 429", answers)
	}
	if v := g.metric(`switchboard_outbound_refused_total{reason="rate"}`); v != 4 {
		t.Errorf(`switchboard_outbound_refused_total{reason="rate"} = %v, want 4`, v)
	}
	if v := g.metric(`switchboard_outbound_refused_total{reason="destination_denied"}`); v != 1 {
		t.Errorf(`switchboard_outbound_refused_total{reason="destination_denied"} = %v, want 1`, v)
	}
	if v := g.metric(`switchboard_outbound_calls_total`); v != 2 {
		t.Errorf("switchboard_outbound_calls_total = %v, want 2", v)
	}
	// Nothing the far end received names the premium number (what arrived so far; bounded).
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		_ = far.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := far.ReadFrom(buf)
		if err != nil {
			break
		}
		if bytes.Contains(buf[:n], []byte("1900555")) {
			t.Fatalf("the premium number reached the far end:\n%s", buf[:n])
		}
	}
}
