package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
)

// lockedBuffer collects a process's output for the test to read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeSIPPort returns a loopback port free for UDP and TCP both (SIP listens on both), below
// the kernel's ephemeral range: the script's processes bind it tens of seconds later on a busy
// machine, and an ephemeral port may meanwhile become some connection's or SIPp's own.
func freeSIPPort(t *testing.T) int {
	t.Helper()
	for range 200 {
		p := 12000 + rand.IntN(8000)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		pc.Close()
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatal("no loopback port free for UDP and TCP in 12000-19999")
	return 0
}

// `make cluster`'s script on loopback ports of the test's own (the front never on 5060): three
// nodes become ready; SIPp calls sent to the front land on every node and become tickets in the
// one database; after kill -9 of node 2 the next calls all succeed on nodes 1 and 3 (the
// front's failover and OPTIONS probes take node 2 out); SIGINT (Ctrl-C) stops every process
// the script started.
func TestMakeCluster_CallsThroughFrontLandOnAllNodesAndSurviveANodeKill(t *testing.T) {
	requireSipp(t)
	if _, err := exec.LookPath("kamailio"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/kamailio"); err2 != nil {
			if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
				t.Fatalf("kamailio not installed and SWITCHBOARD_REQUIRE_PEERS is set: %v", err)
			}
			t.Skip("kamailio not installed (apt-get install kamailio)")
		}
	}
	bin, dbURL, dir := binary(t), pgtest.EmptyURL(t), t.TempDir()
	front := freeSIPPort(t)
	sip := []int{freeSIPPort(t), freeSIPPort(t), freeSIPPort(t)}
	httpPorts := []int{freeSIPPort(t), freeSIPPort(t), freeSIPPort(t)}
	rtpBase := testport.FreeRange(t, 20000, 32000, 300) // 100 ports a node, below the ephemeral range

	script, err := filepath.Abs(opsRepoRoot + "/scripts/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "CONFIG="+hashedDevConfig(t, dir), "DATABASE_URL="+dbURL, "SWITCHBOARD_BIN="+bin, "CLUSTER_DIR="+dir,
		"CLUSTER_FRONT_PORT="+strconv.Itoa(front), "CLUSTER_RTP_BASE="+strconv.Itoa(rtpBase), "CLUSTER_RTP_SIZE=100", "CLUSTER_PING=1",
		fmt.Sprintf("CLUSTER_SIP_PORTS=%d %d %d", sip[0], sip[1], sip[2]),
		fmt.Sprintf("CLUSTER_HTTP_PORTS=%d %d %d", httpPorts[0], httpPorts[1], httpPorts[2]))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group: the cleanup's last resort
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// done is closed when the script exited; exited carries its status once, to waitReady.
	done, exited := make(chan struct{}), make(chan error, 1)
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("cluster.sh output:\n%s", tail(out.String(), 4000))
			for _, f := range []string{"node1.log", "node2.log", "node3.log", "kamailio.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s:\n%s", f, tail(string(b), 3000))
			}
		}
	})
	for _, p := range httpPorts {
		waitReady(t, fmt.Sprintf("http://127.0.0.1:%d", p), exited)
	}
	// The script says ready once the front's dispatcher holds all three nodes active; calls
	// sent before that find no node (a CI run failed so).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("cluster.sh exited before the front was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the front did not see all three nodes active within 60 s")
		}
	}
	pids := map[string]int{}
	for _, name := range []string{"node1", "node2", "node3", "kamailio"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		if pids[name], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			t.Fatal(err)
		}
	}
	query := func(dst []any, sql string, args ...any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, sql, args...).Scan(dst...); err != nil {
			t.Fatal(err)
		}
	}
	// calls places n calls through the front (each talks 3 s, then the caller hangs up) and
	// returns the nodes their call.started named, with how many each.
	frontAddr := fmt.Sprintf("127.0.0.1:%d", front)
	calls := func(n int, since time.Time) map[string]int {
		t.Helper()
		startSippN(t, "carrier_rtp.xml", nil, n, 90*time.Second, "-s", "+15550199", "-l", strconv.Itoa(n), frontAddr).
			wait(t, "carrier through the front")
		var nodes string
		query([]any{&nodes}, `SELECT coalesce(string_agg(node || '=' || n, ' ' ORDER BY node), '') FROM
			(SELECT body->>'node' AS node, count(*) AS n FROM call_events WHERE type = 'call.started' AND received_at >= $1 GROUP BY 1) s`, since)
		got := map[string]int{}
		for _, f := range strings.Fields(nodes) {
			k, v, _ := strings.Cut(f, "=")
			got[k], _ = strconv.Atoi(v)
		}
		return got
	}
	awaitTickets := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var n int
		for time.Now().Before(deadline) {
			query([]any{&n}, `SELECT count(*) FROM calls WHERE ticket_id IS NOT NULL AND state = 'ended'`)
			if n == want {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%d ended calls with a ticket in the shared database, want %d", n, want)
	}

	// Each node recorded where the others reach it over the internal SIP leg: its own SIP
	// port (cluster.internal_address, written by the script).
	var addrs string
	query([]any{&addrs}, `SELECT coalesce(string_agg(name || '=' || coalesce(internal_sip, ''), ' ' ORDER BY name), '') FROM nodes`)
	if want := fmt.Sprintf("node1=127.0.0.1:%d node2=127.0.0.1:%d node3=127.0.0.1:%d", sip[0], sip[1], sip[2]); addrs != want {
		t.Errorf("nodes' internal SIP addresses %q, want %q", addrs, want)
	}

	t0 := time.Now().Add(-time.Second)
	got := calls(6, t0)
	if len(got) < 2 || got["node1"]+got["node2"]+got["node3"] != 6 {
		t.Fatalf("6 calls through the front landed on %v, want spread over the nodes (round robin)", got)
	}
	awaitTickets(6)

	if err := syscall.Kill(pids["node2"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	got = calls(6, t1)
	if got["node2"] != 0 || got["node1"]+got["node3"] != 6 {
		t.Errorf("6 calls after node2 was killed landed on %v, want all on node1 and node3", got)
	}
	awaitTickets(12)

	// Ctrl-C: every process the script started is gone, within the nodes' grace.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("cluster.sh did not stop within 30 s of SIGINT")
	}
	for name, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still runs after Ctrl-C", name, pid)
		}
	}
}

// hashedDevConfig writes the dev configuration with its accounts' passwords given as bcrypt
// hashes of the lowest cost (and the agents' SIP secrets kept), so that three race-built nodes
// starting side by side do not spend a minute hashing and comparing passwords on a busy
// machine (a CI run's nodes were not ready within 60 s for that alone). Logins are unchanged.
func hashedDevConfig(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(opsRepoRoot + "/deploy/dev/switchboard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, pw := range []string{"agentpass", "adminpass"} {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		with := fmt.Sprintf("password_hash: '%s'", h)
		if pw == "agentpass" {
			with += ", sip_secret: " + pw // an agent's phone registers with its password
		}
		if !strings.Contains(s, "password: "+pw) {
			t.Fatalf("the dev configuration has no account with password %q any more", pw)
		}
		s = strings.ReplaceAll(s, "password: "+pw, with)
	}
	path := filepath.Join(dir, "dev-hashed.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
