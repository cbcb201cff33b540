package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/bench/procstat"
	"github.com/switchboard-voice/switchboard/bench/promtext"
	"github.com/switchboard-voice/switchboard/bench/rtpgen"
)

// The cluster steps (BENCHMARKS.md, "Cluster"): `make cluster` (scripts/cluster.sh: Kamailio in
// front of three nodes on one database) is started once and carries, set up through the front,
// first N concurrent recorded calls with RTP both ways, measured as the single gateway's
// concurrency steps are — the same SIPp scenarios, the same RTP generator, the same pass rules
// — then the CPS steps of the single gateway (cps.go: the same code, the same pass rules,
// another target), so that the figures stand side by side. The whole cluster (its three nodes,
// Kamailio and HAProxy) is pinned to the core the single gateway had, and the single gateway is
// stopped first: the cluster gets the same CPU, and what it adds or costs is the figure.

// clusterTime is what the cluster's concurrency step is given on top of -budget: the cluster's
// start (up to 3 minutes on a loaded machine), a step of up to 600 calls and the stop.
const clusterTime = 5 * time.Minute

// clusterCPSTime is what the cluster's CPS steps are given on top of that (-cluster-cps): no
// step starts that would end after it if it passed; a failing last step may overrun it by its
// ticket wait.
const clusterCPSTime = 4 * time.Minute

// lateRinging is the carrier SIPp's flags through the front: it ignores a 180 Ringing that
// reaches it after the 200 OK instead of aborting the call. The front's worker processes relay
// the two over UDP in parallel and now and then swap them (BENCHMARKS.md, "Cluster"); a real UA
// ignores a provisional after the final (RFC 3261 §13.2.2.4).
var lateRinging = []string{"-default_behaviors", "all,-abortunexp"}

// clusterMaxCalls caps the default N: the dev configuration the nodes are generated from
// keeps its sip.max_calls of 250 per node, and the front's round robin puts a third on each.
const clusterMaxCalls = 600

// clusterStep is the cluster's concurrency step.
type clusterStep struct {
	Calls       int     `json:"calls"`
	Nodes       int     `json:"nodes"`
	LegsStarted int     `json:"legs_started"`
	SippFailed  int     `json:"sipp_failed"`
	RampS       float64 `json:"ramp_s"`
	WindowS     float64 `json:"window_s"`
	// In the window: the CPU of the three nodes together and of the front (Kamailio, all its
	// processes), in cores; each node's live calls at the window's start (where the front put
	// them); packets that reached the phones per second and the nodes' CPU per such packet.
	NodesCPU float64 `json:"nodes_cpu"`
	FrontCPU float64 `json:"front_cpu"`
	// The front's CPU while the calls were set up (from the first INVITE until every leg had
	// media), in cores: signalling passes through it, media does not.
	FrontSetupCPU  float64   `json:"front_setup_cpu"`
	NodeCPU        []float64 `json:"node_cpu"`
	CallsPerNode   []float64 `json:"calls_per_node"`
	ForwardedPPS   float64   `json:"forwarded_pps"`
	CPUUsPerPacket float64   `json:"cpu_us_per_packet"`
	// Over the step, summed over the nodes' counters (as concStep's).
	GatewayRx   float64      `json:"gateway_rx"`
	GatewayLost float64      `json:"gateway_lost"`
	LossPct     float64      `json:"loss_pct"`
	Gen         rtpgen.Stats `json:"generator"`
	GenLossPct  float64      `json:"generator_end_to_end_loss_pct"`
	// The nodes' RSS at the window's end, summed, and per call above the three idle nodes.
	RSSKB        int64   `json:"rss_kb"`
	RSSKBPerCall float64 `json:"rss_kb_per_call"`
	Load         loadUse `json:"load"`
	Pass         bool    `json:"pass"`
	Why          string  `json:"why,omitempty"`
}

// clusterProc is a running scripts/cluster.sh and what it started.
type clusterProc struct {
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
	log       *os.File
	dir       string
	frontPort int
	deskPort  int
	httpPorts [3]int
	nodePIDs  [3]int
	frontPID  int
}

// runCluster runs the cluster steps last (after the CPS steps, whose backlog is applied by
// then): it stops the single gateway for good, starts the cluster once, runs its concurrency
// step at -cluster-calls calls, or by default at the single gateway's best N (sameN), at most
// clusterMaxCalls, then its CPS steps at -cluster-cps rates, and stops it.
func (b *bench) runCluster(ctx context.Context) error {
	if !b.cluster {
		return nil
	}
	n := b.clusterCalls
	if n == 0 {
		n = min(b.sameN(), clusterMaxCalls)
	}
	cps := len(b.clusterCPSRates) > 0
	if n <= 0 && !cps {
		return nil
	}
	// The time kept for these steps is now theirs: the concurrency step leaves the CPS
	// steps' share.
	b.tail = 0
	var keep time.Duration
	if cps {
		keep = clusterCPSTime
		if !b.fits(time.Minute + time.Duration(b.cpsSeconds)*time.Second + 90*time.Second) {
			b.res.note("the cluster's CPS steps were skipped: the time budget")
			cps, keep = false, 0
		}
	}
	ramp := time.Duration(n/b.concRate+1) * time.Second
	if n > 0 && !b.fits(2*ramp+b.settle+b.concMeasure+2*time.Minute+keep) {
		b.res.note("the cluster's concurrency step was skipped: the time budget")
		n = 0
	}
	if n <= 0 && !cps {
		return nil
	}
	b.logf("cluster: stopping the single gateway; make cluster's front and 3 nodes on cores %q", b.gatewayCPUs)
	b.stopGateway()
	b.logf("  starting scripts/cluster.sh")
	var c *clusterProc
	var err error
	defer func() { c.stop() }()
	// Twice at most: its nine ports are free when picked, not reserved, and a process started
	// meanwhile on the same machine may take one (a node then exits at start: bind).
	for try := 1; try <= 2; try++ {
		c.stop()
		dir := filepath.Join(b.work, "cluster")
		if try > 1 {
			dir += strconv.Itoa(try)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if c, err = b.startCluster(ctx, dir); err == nil || ctx.Err() != nil {
			break
		}
		b.logf("  cluster: %v", err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// The cluster did not start: its steps fail, saying why.
		if n > 0 {
			b.res.Cluster = &clusterStep{Calls: n, Nodes: 3, Why: err.Error()}
		}
		if cps {
			b.res.ClusterCPS = []cpsStep{{Rate: b.clusterCPSRates[0], Seconds: b.cpsSeconds, Why: err.Error()}}
		}
		return nil
	}
	if n > 0 {
		b.logf("cluster: %d calls through the front", n)
		st, err := b.clusterConcStep(ctx, c, n)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			st.Pass, st.Why = false, err.Error()
		}
		b.res.Cluster = &st
		b.logf("  cluster: legs %d/%d, calls per node %v, nodes CPU %.0f%% (per node %v), front CPU %.0f%% (%.0f%% while the calls were set up), %.0f packets/s, %.2f µs/packet, loss %.4f%%, generator loss %.4f%%, RSS %.1f KiB/call: %s",
			st.LegsStarted, 2*n, st.CallsPerNode, 100*st.NodesCPU, st.NodeCPU, 100*st.FrontCPU, 100*st.FrontSetupCPU, st.ForwardedPPS, st.CPUUsPerPacket, st.LossPct, st.GenLossPct,
			st.RSSKBPerCall, passText(st.Pass, st.Why))
		if err := c.alive(); err != nil {
			b.res.note("the cluster's CPS steps were not run: %v", err)
			return nil // the concurrency step says why too
		}
	}
	if !cps {
		return nil
	}
	url, err := clusterDatabaseURL(b.dbURL)
	if err != nil {
		return err
	}
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("cluster database: %w", err)
	}
	defer db.Close()
	t := c.cpsTarget(db)
	// The concurrency step's recordings and hang-ups are applied before the first CPS step.
	if err := idle(ctx, t, 120*time.Second); err != nil {
		b.logf("  %v", err)
	}
	end := time.Now().Add(clusterCPSTime)
	fits := func(d time.Duration) bool {
		// The whole run's budget for the worst case, the CPS share for a passing step.
		return b.fits(d) && time.Now().Add(time.Duration(b.cpsSeconds)*time.Second+15*time.Second).Before(end)
	}
	b.res.ClusterCPS, err = b.cpsSteps(ctx, t, b.clusterCPSRates, fits)
	if err != nil && ctx.Err() == nil {
		// A node exited: the step that saw it failed, saying so; the run goes on to its report.
		b.logf("  cluster: %v", err)
		return nil
	}
	return err
}

// cpsTarget is the cluster as a CPS target: calls to the front, figures from the three nodes
// (their metrics summed; the CPU of each node and of Kamailio) and from the cluster's database.
func (c *clusterProc) cpsTarget(db *pgxpool.Pool) *cpsTarget {
	return &cpsTarget{
		name: "cluster-cps", who: "the cluster", tagBase: 70, sipAddr: fmt.Sprintf("127.0.0.1:%d", c.frontPort), deskPort: c.deskPort, db: db,
		sippArgs: lateRinging,
		metrics: func(ctx context.Context) (promtext.Scrape, []promtext.Scrape, error) {
			all, each, err := c.metrics(ctx)
			return all, each[:], err
		},
		cpu: func() ([]usage, usage, bool, error) {
			nodes := make([]usage, 0, len(c.nodePIDs))
			for _, pid := range c.nodePIDs {
				u, err := readUsage(pid)
				if err != nil {
					return nil, usage{}, true, err
				}
				nodes = append(nodes, u)
			}
			return nodes, usage{cpu: frontCPU(c.frontPID), wall: time.Now()}, true, nil
		},
		alive: c.alive,
	}
}

// clusterDatabaseURL is the bench database's URL with the database name suffixed _cluster.
func clusterDatabaseURL(url string) (string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", fmt.Errorf("database url: %w", err)
	}
	name := cfg.Database
	if name == "" {
		return "", errors.New("database url: no database name")
	}
	// Only the path's last segment changes; the rest of the URL stays as given.
	i := strings.LastIndex(url, "/"+name)
	if i < 0 {
		return "", fmt.Errorf("database url: cannot find the database name %q in it", name)
	}
	return url[:i] + "/" + name + "_cluster" + url[i+1+len(name):], nil
}

// clusterConfig is the dev configuration (scripts/cluster.sh edits it per node) with what the
// benchmark changes: the desk's port, the carrier's calls_per_second off (as
// scripts/bench-cluster.sh), and warnings only in the log. Every edit must find its line.
func (b *bench) clusterConfig(path string, deskPort int) error {
	src, err := os.ReadFile(filepath.Join(b.root, "deploy", "dev", "switchboard.yaml"))
	if err != nil {
		return err
	}
	s := string(src)
	for _, r := range [][2]string{
		{"target: sip:desk@127.0.0.1:5090\n", fmt.Sprintf("target: sip:desk@127.0.0.1:%d\n", deskPort)},
		{"      allow: [127.0.0.0/8]\n", "      allow: [127.0.0.0/8]\n      calls_per_second: 0\n"},
		{"log:\n  level: info\n", "log:\n  level: warn\n"},
	} {
		if strings.Count(s, r[0]) != 1 {
			return fmt.Errorf("deploy/dev/switchboard.yaml changed: %q is not there once", strings.TrimSpace(r[0]))
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// startCluster starts scripts/cluster.sh pinned to the gateway's cores, on a fresh database,
// and waits for its ready file.
func (b *bench) startCluster(ctx context.Context, dir string) (*clusterProc, error) {
	url, err := clusterDatabaseURL(b.dbURL)
	if err != nil {
		return nil, err
	}
	if err := resetDatabase(ctx, url); err != nil {
		return nil, err
	}
	c := &clusterProc{dir: filepath.Join(dir, "cluster"), done: make(chan struct{})}
	ports := make([]int, 9)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	c.frontPort, c.deskPort = ports[0], ports[1]
	sip := []string{strconv.Itoa(ports[2]), strconv.Itoa(ports[3]), strconv.Itoa(ports[4])}
	http := []string{strconv.Itoa(ports[5]), strconv.Itoa(ports[6]), strconv.Itoa(ports[7])}
	c.httpPorts = [3]int{ports[5], ports[6], ports[7]}
	cfgPath := filepath.Join(dir, "dev.yaml")
	if err := b.clusterConfig(cfgPath, c.deskPort); err != nil {
		return nil, err
	}
	if c.log, err = os.Create(filepath.Join(dir, "cluster.log")); err != nil {
		return nil, err
	}
	cmd := b.pinned(b.gatewayCPUs, "bash", filepath.Join(b.root, "scripts", "cluster.sh"))
	cmd.Dir = b.root
	// RTP: three ranges of 6,000 ports from 10,000, below the generator's (40,000+) and the
	// kernel's ephemeral range.
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "CONFIG="+cfgPath, "CLUSTER_DIR="+c.dir,
		"CLUSTER_FRONT_PORT="+strconv.Itoa(c.frontPort), "CLUSTER_SIP_PORTS="+strings.Join(sip, " "),
		"CLUSTER_HTTP_PORTS="+strings.Join(http, " "), "CLUSTER_WEB_PORT="+strconv.Itoa(ports[8]),
		"CLUSTER_RTP_BASE=10000", "CLUSTER_RTP_SIZE=6000", "SWITCHBOARD_BIN="+b.gatewayBin)
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		c.log.Close()
		return nil, fmt.Errorf("start scripts/cluster.sh: %w", err)
	}
	c.cmd = cmd
	go func() { c.err = cmd.Wait(); close(c.done) }()
	ready := waitFor(ctx, 180*time.Second, func() bool {
		select {
		case <-c.done:
			return true
		default:
		}
		_, err := os.Stat(filepath.Join(c.dir, "ready"))
		return err == nil
	})
	select {
	case <-c.done:
		return c, fmt.Errorf("scripts/cluster.sh exited at start (%v); see %s", c.err, c.log.Name())
	default:
	}
	if !ready {
		return c, fmt.Errorf("cluster not ready after 180 s; see %s", c.log.Name())
	}
	readPID := func(name string) (int, error) {
		s, err := os.ReadFile(filepath.Join(c.dir, name))
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(s)))
	}
	for i := range 3 {
		if c.nodePIDs[i], err = readPID(fmt.Sprintf("node%d.pid", i+1)); err != nil {
			return c, err
		}
	}
	if c.frontPID, err = readPID("kamailio.pid"); err != nil {
		return c, err
	}
	return c, nil
}

// stop ends scripts/cluster.sh (SIGTERM: it stops the nodes and the fronts), at most 60 s.
func (c *clusterProc) stop() {
	if c == nil || c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.log.Close()
}

// alive reports an error when a node or the script has exited.
func (c *clusterProc) alive() error {
	select {
	case <-c.done:
		return fmt.Errorf("scripts/cluster.sh exited (%v); see %s", c.err, c.log.Name())
	default:
	}
	for i, pid := range c.nodePIDs {
		if err := syscall.Kill(pid, 0); err != nil {
			return fmt.Errorf("node%d exited; see %s", i+1, filepath.Join(c.dir, fmt.Sprintf("node%d.log", i+1)))
		}
	}
	return nil
}

// metrics scrapes the three nodes; the samples of all three in one Scrape (Sum adds them up),
// and each node's own.
func (c *clusterProc) metrics(ctx context.Context) (all promtext.Scrape, each [3]promtext.Scrape, err error) {
	for i, p := range c.httpPorts {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sc, ferr := promtext.Fetch(tctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", p))
		cancel()
		if ferr != nil {
			return nil, each, fmt.Errorf("node%d metrics: %w", i+1, ferr)
		}
		each[i] = sc
		all = append(all, sc...)
	}
	return all, each, nil
}

// frontCPU is Kamailio's CPU: its main process and every process it forked (its workers).
func frontCPU(pid int) time.Duration {
	total, _ := procstat.CPUTime(pid)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			t, _ := procstat.CPUTime(child)
			total += t
		}
	}
	return total
}

// clusterConcStep is the cluster's concurrency step of n calls on the running cluster c.
func (b *bench) clusterConcStep(ctx context.Context, c *clusterProc, n int) (clusterStep, error) {
	st := clusterStep{Calls: n, Nodes: 3}
	dir := filepath.Join(b.work, fmt.Sprintf("cluster-%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, err
	}
	var baseRSS int64
	for _, pid := range c.nodePIDs {
		r, err := procstat.RSSKB(pid)
		if err != nil {
			return st, c.alive()
		}
		baseRSS += r
	}

	gen, carrierXML, err := b.concInputs(dir, n, 95)
	if err != nil {
		return st, err
	}
	defer gen.Close()
	ramp, hold := b.concTimes(n)
	mBefore, _, err := c.metrics(ctx)
	if err != nil {
		return st, err
	}
	desk, err := b.startSipp("desk", dir, "-sf", filepath.Join(b.root, "bench", "scenarios", "conc_desk.xml"),
		"-inf", filepath.Join(dir, "desk.csv"), "-p", strconv.Itoa(c.deskPort),
		"-trace_logs", "-log_file", filepath.Join(dir, "desk.log"), "-trace_stat", "-stf", "desk-stat.csv", "-trace_err")
	if err != nil {
		return st, err
	}
	defer desk.stop()
	if err := waitBound(ctx, c.deskPort); err != nil {
		return st, err
	}
	// Each leg's media starts as soon as SIPp logs the node's port for it (concStep).
	var mu sync.Mutex
	var startErr error
	onLine := func(line string) {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "C" && f[0] != "D") {
			return
		}
		ours, err1 := strconv.Atoi(f[1])
		theirs, err2 := strconv.Atoi(f[2])
		leg := gen.Leg(ours)
		mu.Lock()
		defer mu.Unlock()
		if err1 != nil || err2 != nil || leg == nil || theirs <= 0 || theirs > 65535 {
			startErr = fmt.Errorf("bad sipp log line %q", line)
			return
		}
		if err := gen.Start(leg, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(theirs))); err != nil {
			startErr = err
		}
	}
	tailCtx, stopTail := context.WithCancel(ctx)
	var tails sync.WaitGroup
	defer func() { stopTail(); tails.Wait() }()
	for _, name := range []string{"desk.log", "carrier.log"} {
		tails.Add(1)
		go func() { defer tails.Done(); logTail(tailCtx, filepath.Join(dir, name), onLine) }()
	}
	port, err := freePort()
	if err != nil {
		return st, err
	}
	front0 := frontCPU(c.frontPID)
	began := time.Now()
	carrier, err := b.startSipp("carrier", dir, "-sf", carrierXML, "-inf", filepath.Join(dir, "carrier.csv"),
		"-p", strconv.Itoa(port), "-r", strconv.Itoa(b.concRate), "-rp", "1000", "-m", strconv.Itoa(n), "-l", strconv.Itoa(n),
		"-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", c.frontPort),
		"-trace_logs", "-log_file", filepath.Join(dir, "carrier.log"), "-trace_stat", "-stf", "carrier-stat.csv", "-trace_err",
		"-recv_timeout", "10000", "-timeout", fmt.Sprintf("%ds", int((hold+ramp).Seconds())+60), "-timeout_error",
		lateRinging[0], lateRinging[1])
	if err != nil {
		return st, err
	}
	defer carrier.stop()
	waitFor(ctx, ramp+10*time.Second, func() bool {
		select {
		case <-carrier.done:
			return true
		default:
		}
		return gen.Started() == 2*n
	})
	st.RampS = time.Since(began).Seconds()
	st.LegsStarted = gen.Started()
	// The front works while calls are set up (and hung up), not while they are held.
	if ramp := time.Since(began); ramp > 0 {
		st.FrontSetupCPU = (frontCPU(c.frontPID) - front0).Seconds() / ramp.Seconds()
	}

	sleepCtx(ctx, b.settle)
	measure := min(b.concMeasure, time.Until(began.Add(hold-35*time.Second)))
	read := func() (nodes [3]usage, front usage, err error) {
		for i, pid := range c.nodePIDs {
			if nodes[i], err = readUsage(pid); err != nil {
				return nodes, front, c.alive()
			}
		}
		return nodes, usage{cpu: frontCPU(c.frontPID), wall: time.Now()}, nil
	}
	n0, f0, err := read()
	if err != nil {
		return st, err
	}
	_, each0, err := c.metrics(ctx)
	if err != nil {
		return st, err
	}
	for _, m := range each0 {
		st.CallsPerNode = append(st.CallsPerNode, m.Sum("switchboard_calls_active", nil))
	}
	l0 := b.readLoad()
	g0 := gen.Stats()
	sleepCtx(ctx, measure)
	n1, f1, err := read()
	if err != nil {
		return st, err
	}
	st.Load = loadShare(l0, b.readLoad())
	g1 := gen.Stats()
	for _, pid := range c.nodePIDs {
		r, err := procstat.RSSKB(pid)
		if err != nil {
			return st, c.alive()
		}
		st.RSSKB += r
	}
	st.RSSKBPerCall = float64(st.RSSKB-baseRSS) / float64(n)
	win := f1.wall.Sub(f0.wall)
	st.WindowS = win.Seconds()
	var cpu time.Duration
	for i := range n0 {
		frac, d := share(n0[i], n1[i])
		st.NodeCPU = append(st.NodeCPU, round(frac, 3))
		st.NodesCPU += frac
		cpu += d
	}
	st.FrontCPU, _ = share(f0, f1)
	fwd := float64(g1.Received + g1.Discarded - g0.Received - g0.Discarded)
	st.ForwardedPPS = fwd / win.Seconds()
	if fwd > 0 {
		st.CPUUsPerPacket = float64(cpu.Microseconds()) / fwd
	}

	sippErr := carrier.wait(hold + ramp + 60*time.Second)
	gen.StopSending()
	if ss, err := readSippStats(filepath.Join(dir, "carrier-stat.csv")); err == nil {
		st.SippFailed = ss.Failed + (n - ss.Successful - ss.Failed)
	} else {
		st.SippFailed = n
	}
	waitFor(ctx, 60*time.Second, func() bool {
		m, _, err := c.metrics(ctx)
		return err == nil && m.Sum("switchboard_calls_active", nil) == 0 && m.Sum("switchboard_recordings_active", nil) == 0
	})
	desk.stop()
	stopTail()
	tails.Wait()
	mAfter, _, err := c.metrics(ctx)
	if err != nil {
		return st, err
	}
	rx := map[string]string{"direction": "rx"}
	st.GatewayRx = mAfter.Sum("switchboard_rtp_packets_total", rx) - mBefore.Sum("switchboard_rtp_packets_total", rx)
	st.GatewayLost = mAfter.Sum("switchboard_rtp_packets_lost_total", nil) - mBefore.Sum("switchboard_rtp_packets_lost_total", nil)
	if st.GatewayRx+st.GatewayLost > 0 {
		st.LossPct = 100 * st.GatewayLost / (st.GatewayRx + st.GatewayLost)
	}
	st.Gen = gen.Stats()
	if st.Gen.Sent > 0 {
		st.GenLossPct = 100 * (1 - float64(st.Gen.Received+st.Gen.Discarded)/float64(st.Gen.Sent))
	}
	removeRecordings(c.dir)

	mu.Lock()
	serr := startErr
	mu.Unlock()
	switch {
	case serr != nil:
		return st, serr
	case sippErr != nil:
		st.Why = sippErr.Error()
	case st.SippFailed > 0:
		st.Why = fmt.Sprintf("%d calls failed", st.SippFailed)
	case st.LegsStarted < 2*n:
		st.Why = fmt.Sprintf("only %d of %d legs had media", st.LegsStarted, 2*n)
	case st.LossPct >= lossLimitPct:
		st.Why = fmt.Sprintf("loss %.3f%% ≥ %.1f%%", st.LossPct, lossLimitPct)
	case st.NodesCPU+st.FrontCPU >= cpuLimit:
		st.Why = fmt.Sprintf("nodes' and front's CPU %.0f%% ≥ %.0f%% of their core", 100*(st.NodesCPU+st.FrontCPU), 100*cpuLimit)
	default:
		st.Pass = true
	}
	return st, c.alive()
}

// printCluster prints the cluster's concurrency step beside the single gateway's step of the
// same N, then the cluster's CPS steps.
func (r *report) printCluster(w io.Writer) {
	if len(r.ClusterCPS) > 0 {
		defer func() {
			fmt.Fprintln(w)
			printCPSTable(w, "cluster CPS", r.ClusterCPS)
			for _, c := range r.ClusterCPS {
				if len(c.CallsPerNode) > 0 {
					fmt.Fprintf(w, "  %d/s: calls per node %v, CPU per node %v\n", c.Rate, c.CallsPerNode, c.NodeCPU)
				}
			}
		}()
	}
	c := r.Cluster
	if c == nil {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "cluster (make cluster: Kamailio + 3 nodes on the gateway's core), %d calls set up through the front: %s\n", c.Calls, passText(c.Pass, c.Why))
	fmt.Fprintf(w, "  calls per node %v; CPU: nodes %.0f%% (each %v), front %.0f%% (%.0f%% during set-up); %.0f packets/s out, %.2f µs/packet; loss %.4f%%, generator loss %.4f%%; RSS %.1f KiB/call\n",
		c.CallsPerNode, 100*c.NodesCPU, c.NodeCPU, 100*c.FrontCPU, 100*c.FrontSetupCPU, c.ForwardedPPS, c.CPUUsPerPacket, c.LossPct, c.GenLossPct, c.RSSKBPerCall)
	for _, s := range r.Conc {
		if s.Calls == c.Calls {
			fmt.Fprintf(w, "  one node, same %d calls: CPU %.0f%%, %.2f µs/packet, loss %.4f%%, RSS %.1f KiB/call: %s\n",
				s.Calls, 100*s.GatewayCPU, s.CPUUsPerPacket, s.LossPct, s.RSSKBPerCall, passText(s.Pass, s.Why))
		}
	}
}
