package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
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
	return testport.FreeUDP(t) // free for UDP and TCP, claimed across the test processes
}

// scriptCluster is `make cluster` (scripts/cluster.sh) started by a test on loopback ports of
// its own (the front never on 5060), on a fresh database, with the dev configuration (its
// passwords hashed at the lowest cost, see hashedDevConfig) and a cluster secret the test knows.
type scriptCluster struct {
	t                       *testing.T
	bin, dbURL, dir, secret string
	front, web              int // the SIP front's port (Kamailio), the HTTP front's (HAProxy)
	sip, http               []int
	cmd                     *exec.Cmd
	out                     lockedBuffer
	done                    chan struct{}  // closed when the script exited
	pids                    map[string]int // node1, node2, node3, kamailio, haproxy
}

// dumpStuckNodes logs, for each node still running, the goroutines of the Go runtime (SIGQUIT
// makes a node write them to its log and exit): where a node that did not stop waits.
func (c *scriptCluster) dumpStuckNodes() {
	// The script's own state: whether it holds SIGINT pending, ignored or caught, and where it waits.
	pid := c.cmd.Process.Pid
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	stack, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", pid))
	c.t.Logf("cluster.sh (pid %d) did not stop: wchan %s\n%s\n%s", pid, wchan, st, stack)
	for _, name := range []string{"node1", "node2", "node3"} {
		pid, ok := c.pids[name]
		if !ok || syscall.Kill(pid, syscall.SIGQUIT) != nil {
			continue
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil; {
			time.Sleep(100 * time.Millisecond)
		}
		b, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
		if i := strings.Index(string(b), "SIGQUIT"); i >= 0 {
			c.t.Logf("%s did not stop; its goroutines:\n%s", name, b[i:min(len(b), i+60000)])
		}
	}
}

// startScriptCluster starts cluster.sh and returns once every node answers /readyz and the
// script wrote CLUSTER_DIR/ready (the front's dispatcher holds all three nodes active). edit,
// when given, changes the dev configuration the nodes' configurations are made from. Cleanup
// stops the script (SIGINT, as Ctrl-C) and, failing that, its process group.
func startScriptCluster(t *testing.T, edit func(cfg string) string) *scriptCluster {
	t.Helper()
	requireSipp(t)
	if _, err := exec.LookPath("kamailio"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/kamailio"); err2 != nil {
			if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
				t.Fatalf("kamailio not installed and SWITCHBOARD_REQUIRE_PEERS is set: %v", err)
			}
			t.Skip("kamailio not installed (apt-get install kamailio)")
		}
	}
	c := &scriptCluster{t: t, bin: binary(t), dbURL: pgtest.EmptyURL(t), dir: t.TempDir(),
		secret: "e2e-make-cluster-secret-0123456789abcdef", done: make(chan struct{}), pids: map[string]int{}}
	c.front = freeSIPPort(t)
	c.web = freeSIPPort(t)
	c.sip = []int{freeSIPPort(t), freeSIPPort(t), freeSIPPort(t)}
	c.http = []int{freeSIPPort(t), freeSIPPort(t), freeSIPPort(t)}
	rtpBase := testport.FreeRange(t, 20000, 32000, 300) // 100 ports a node, below the ephemeral range
	config := hashedDevConfig(t, c.dir)
	if edit != nil {
		b, err := os.ReadFile(config)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(config, []byte(edit(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	script, err := filepath.Abs(opsRepoRoot + "/scripts/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	// Through env --default-signal: a suite started in the background of a shell without job
	// control inherits SIGINT ignored, and a script cannot trap a signal ignored at its start —
	// Ctrl-C (the SIGINT below) would do nothing.
	c.cmd = exec.Command("env", "--default-signal=INT", script)
	c.cmd.Env = append(os.Environ(), "CONFIG="+config, "DATABASE_URL="+c.dbURL, "SWITCHBOARD_BIN="+c.bin, "CLUSTER_DIR="+c.dir,
		"CLUSTER_FRONT_PORT="+strconv.Itoa(c.front), "CLUSTER_RTP_BASE="+strconv.Itoa(rtpBase), "CLUSTER_RTP_SIZE=100", "CLUSTER_PING=1",
		"CLUSTER_SECRET="+c.secret, "CLUSTER_WEB_PORT="+strconv.Itoa(c.web),
		fmt.Sprintf("CLUSTER_SIP_PORTS=%d %d %d", c.sip[0], c.sip[1], c.sip[2]),
		fmt.Sprintf("CLUSTER_HTTP_PORTS=%d %d %d", c.http[0], c.http[1], c.http[2]))
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group: the cleanup's last resort
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited carries the script's status once, to waitReady.
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
		if t.Failed() {
			t.Logf("cluster.sh output:\n%s", tail(c.out.String(), 4000))
			for _, f := range []string{"node1.log", "node2.log", "node3.log", "kamailio.log", "haproxy.log"} {
				b, _ := os.ReadFile(filepath.Join(c.dir, f))
				t.Logf("%s:\n%s", f, tail(string(b), 3000))
			}
		}
	})
	for i := range c.http {
		waitReady(t, c.base(i+1), exited)
	}
	// The script says ready once the front's dispatcher holds all three nodes active; calls
	// sent before that find no node (a CI run failed so).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(c.dir, "ready")); err == nil {
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
	for _, name := range []string{"node1", "node2", "node3", "kamailio", "haproxy"} {
		b, err := os.ReadFile(filepath.Join(c.dir, name+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		if c.pids[name], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// webBase is the HTTP front's base URL (HAProxy in front of the three nodes).
func (c *scriptCluster) webBase() string { return fmt.Sprintf("http://127.0.0.1:%d", c.web) }

// base is node n's (1-3) HTTP base URL.
func (c *scriptCluster) base(n int) string { return fmt.Sprintf("http://127.0.0.1:%d", c.http[n-1]) }

// node is node n (1-3) as a testGateway for its API and metrics (the process is the script's).
func (c *scriptCluster) node(n int) *testGateway {
	return &testGateway{t: c.t, base: c.base(n), sipPort: c.sip[n-1], dir: filepath.Join(c.dir, fmt.Sprintf("node%d", n))}
}

// frontAddr is the front's SIP address.
func (c *scriptCluster) frontAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.front) }

// query runs one SQL query on the shared database and scans its single row into dst.
func (c *scriptCluster) query(dst []any, sql string, args ...any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.dbURL)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql, args...).Scan(dst...); err != nil {
		c.t.Fatal(err)
	}
}

// startedOn returns the nodes the call.started events received since then named, with how
// many each.
func (c *scriptCluster) startedOn(since time.Time) map[string]int {
	c.t.Helper()
	var nodes string
	c.query([]any{&nodes}, `SELECT coalesce(string_agg(node || '=' || n, ' ' ORDER BY node), '') FROM
		(SELECT body->>'node' AS node, count(*) AS n FROM call_events WHERE type = 'call.started' AND received_at >= $1 GROUP BY 1) s`, since)
	got := map[string]int{}
	for _, f := range strings.Fields(nodes) {
		k, v, _ := strings.Cut(f, "=")
		got[k], _ = strconv.Atoi(v)
	}
	return got
}

// awaitTickets waits until the shared database holds want ended calls with a ticket.
func (c *scriptCluster) awaitTickets(want int) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var n int
	for time.Now().Before(deadline) {
		c.query([]any{&n}, `SELECT count(*) FROM calls WHERE ticket_id IS NOT NULL AND state = 'ended'`)
		if n == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("%d ended calls with a ticket in the shared database, want %d", n, want)
}

// `make cluster`'s script on loopback ports of the test's own (the front never on 5060): three
// nodes become ready; SIPp calls sent to the front land on every node and become tickets in the
// one database; an agent logs in through the HTTP front (HAProxy) pinned to node 2; after kill
// -9 of node 2 that login still holds through the front, which sends it to another node at once
// (sessions in PostgreSQL, redispatch), and the next calls all succeed on nodes 1 and 3 (the
// SIP front's failover and OPTIONS probes take node 2 out); SIGINT (Ctrl-C) stops every process
// the script started, HAProxy included.
func TestMakeCluster_CallsThroughFrontLandOnAllNodesAndSurviveANodeKill(t *testing.T) {
	c := startScriptCluster(t, nil)
	// calls places n calls through the front (each talks 3 s, then the caller hangs up) and
	// returns the nodes their call.started named, with how many each.
	calls := func(n int, since time.Time) map[string]int {
		t.Helper()
		startSippN(t, "carrier_rtp.xml", nil, n, 90*time.Second, "-s", "+15550199", "-l", strconv.Itoa(n), c.frontAddr()).
			wait(t, "carrier through the front")
		return c.startedOn(since)
	}

	// Each node recorded where the others reach it over the internal SIP leg: its own SIP
	// port (cluster.internal_address, written by the script).
	var addrs string
	c.query([]any{&addrs}, `SELECT coalesce(string_agg(name || '=' || coalesce(internal_sip, ''), ' ' ORDER BY name), '') FROM nodes`)
	if want := fmt.Sprintf("node1=127.0.0.1:%d node2=127.0.0.1:%d node3=127.0.0.1:%d", c.sip[0], c.sip[1], c.sip[2]); addrs != want {
		t.Errorf("nodes' internal SIP addresses %q, want %q", addrs, want)
	}

	t0 := time.Now().Add(-time.Second)
	got := calls(6, t0)
	if len(got) < 2 || got["node1"]+got["node2"]+got["node3"] != 6 {
		t.Fatalf("6 calls through the front landed on %v, want spread over the nodes (round robin)", got)
	}
	c.awaitTickets(6)

	// The HTTP front: an agent logs in through HAProxy, its stickiness cookie naming node 2.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	front, err := url.Parse(c.webBase())
	if err != nil {
		t.Fatal(err)
	}
	jar.SetCookies(front, []*http.Cookie{{Name: "SWITCHBOARD_NODE", Value: "node2"}})
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	session := func(what string) int {
		t.Helper()
		resp, err := browser.Get(c.webBase() + "/session")
		if err != nil {
			t.Fatalf("GET /session through the front %s: %v", what, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	resp, err := browser.Post(c.webBase()+"/login", "application/json", strings.NewReader(`{"email":"agent1@example.com","password":"agentpass"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /login through the front = %d", resp.StatusCode)
	}
	if code := session("before the kill"); code != http.StatusOK {
		t.Fatalf("GET /session through the front = %d, want 200", code)
	}

	if err := syscall.Kill(c.pids["node2"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	// The login made on node 2 holds on the node the front sends the browser to now (the
	// sessions are in the database): at once, whether or not the checks noticed node 2 gone.
	if code := session("after node 2 was killed"); code != http.StatusOK {
		t.Errorf("GET /session through the front after node 2's kill = %d, want 200 from another node", code)
	}
	for _, ck := range jar.Cookies(front) {
		if ck.Name == "SWITCHBOARD_NODE" && ck.Value == "node2" {
			t.Errorf("the front still pins the browser to the killed node2")
		}
	}
	got = calls(6, t1)
	if got["node2"] != 0 || got["node1"]+got["node3"] != 6 {
		t.Errorf("6 calls after node2 was killed landed on %v, want all on node1 and node3", got)
	}
	c.awaitTickets(12)

	// Ctrl-C: every process the script started is gone, within the nodes' grace.
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.dumpStuckNodes()
		t.Fatal("cluster.sh did not stop within 30 s of SIGINT")
	}
	for name, pid := range c.pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still runs after Ctrl-C", name, pid)
		}
	}
}

// hashedDevConfig writes the dev configuration with its accounts' passwords given as bcrypt
// hashes of the lowest cost (and the agents' SIP secrets and usernames kept), so that three
// race-built nodes starting side by side do not spend a minute hashing and comparing passwords
// on a busy machine (a CI run's nodes were not ready within 60 s for that alone). Logins are
// unchanged.
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
	// With a sip_secret the digest username defaults to the email only; the dev phones
	// register as agent1, agent2, agent3 (the local part, as with a plain password).
	for _, a := range []string{"agent1", "agent2", "agent3"} {
		from := "{email: " + a + "@example.com,"
		if !strings.Contains(s, from) {
			t.Fatalf("the dev configuration has no agent %s any more", a)
		}
		s = strings.Replace(s, from, from+" sip_username: "+a+",", 1)
	}
	path := filepath.Join(dir, "dev-hashed.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
