package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/bench/procstat"
	"github.com/switchboard-voice/switchboard/bench/promtext"
	"github.com/switchboard-voice/switchboard/bench/rtpgen"
)

// gatewayConfig fills bench/config.yaml.tmpl.
type gatewayConfig struct {
	DatabaseURL string
	Dir         string
	HTTPPort    int
	AdminPort   int
	SIPPort     int
	DeskPort    int
	RTPMin      int
	RTPMax      int
	Recording   bool // recordings.enabled: off only in the recording-off step
}

// gatewayProc is the running `switchboard serve`.
type gatewayProc struct {
	cfg  gatewayConfig
	cmd  *exec.Cmd
	pid  int
	base string // http://127.0.0.1:port
	done chan struct{}
	err  error
	log  *os.File
}

// freePort returns a loopback port free for both UDP and TCP (SIP takes both numbers),
// outside the RTP generator's port range (a far end's port taken by a generator leg would
// make SIPp fail to bind).
func freePort() (int, error) {
	for range 200 {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p >= rtpgen.DefaultPortMin && p <= rtpgen.DefaultPortMax+1 {
			continue
		}
		if l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port")
}

// resetDatabase drops and creates the bench database, so every run starts empty: ticket
// counts and lag are then about this run only.
func resetDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	name := cfg.Database
	if name == "" || name == "postgres" || strings.ContainsAny(name, `"`) {
		return fmt.Errorf("database url: want a dedicated database name, got %q", name)
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("database: connect: %w", err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		fmt.Sprintf(`DROP DATABASE IF EXISTS "%s" WITH (FORCE)`, name),
		fmt.Sprintf(`CREATE DATABASE "%s"`, name),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("database: %s: %w", q, err)
		}
	}
	return nil
}

// startGateway writes the configuration and starts the gateway pinned to the gateway's
// core, then waits for /readyz.
func (b *bench) startGateway(ctx context.Context) error {
	var cfg gatewayConfig
	cfg.DatabaseURL, cfg.Dir, cfg.Recording = b.dbURL, b.work, !b.noRecording
	for _, p := range []*int{&cfg.HTTPPort, &cfg.AdminPort, &cfg.SIPPort, &cfg.DeskPort} {
		n, err := freePort()
		if err != nil {
			return err
		}
		*p = n
	}
	// The desk's line is stored in the database at the first start (lines are seeded once, then
	// managed through the API): a restarted gateway keeps that line, so the desk keeps its port.
	if b.deskPort == 0 {
		b.deskPort = cfg.DeskPort
	}
	cfg.DeskPort = b.deskPort
	// Below the kernel's ephemeral range (32768+), where the e2e tests and the generator live.
	cfg.RTPMin, cfg.RTPMax = 10000, 29999
	tmpl, err := template.ParseFiles(filepath.Join(b.root, "bench", "config.yaml.tmpl"))
	if err != nil {
		return fmt.Errorf("config template: %w", err)
	}
	path := filepath.Join(b.work, "switchboard.yaml")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := tmpl.Execute(f, cfg); err != nil {
		f.Close()
		return fmt.Errorf("config template: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(b.work, "gateway.log"))
	if err != nil {
		return err
	}
	cmd := b.pinned(b.gatewayCPUs, b.gatewayBin, "serve", "--config", path)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+b.dbURL)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start gateway: %w", err)
	}
	g := &gatewayProc{cfg: cfg, cmd: cmd, pid: cmd.Process.Pid, base: fmt.Sprintf("http://127.0.0.1:%d", cfg.HTTPPort),
		done: make(chan struct{}), log: logf}
	go func() { g.err = cmd.Wait(); close(g.done) }()
	b.gw = g
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-g.done:
			return fmt.Errorf("gateway exited at start (%v); see %s", g.err, logf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get(g.base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				pool, err := pgxpool.New(ctx, b.dbURL)
				if err != nil {
					return fmt.Errorf("database: %w", err)
				}
				b.db = pool
				return nil
			}
		}
	}
	return fmt.Errorf("gateway not ready after 90 s; see %s", logf.Name())
}

// stopGateway sends SIGTERM and waits for the drain, at most 30 s, then kills.
func (b *bench) stopGateway() {
	g := b.gw
	if g == nil {
		return
	}
	if b.db != nil {
		b.db.Close()
		b.db = nil
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	g.log.Close()
	b.gw = nil
}

// gatewayAlive reports an error when the gateway has exited.
func (b *bench) gatewayAlive() error {
	select {
	case <-b.gw.done:
		return fmt.Errorf("the gateway exited (%v); see %s", b.gw.err, b.gw.log.Name())
	default:
		return nil
	}
}

// metrics scrapes the gateway's /metrics.
// A gateway busy on its one core can be slow to answer: 30 s, and one more try.
func (b *bench) metrics(ctx context.Context) (promtext.Scrape, error) {
	var err error
	for range 2 {
		var sc promtext.Scrape
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sc, err = promtext.Fetch(tctx, b.gw.base+"/metrics")
		cancel()
		if err == nil || ctx.Err() != nil {
			return sc, err
		}
	}
	return nil, err
}

// usage is a CPU and wall-clock reading of one process.
type usage struct {
	cpu  time.Duration
	wall time.Time
}

func readUsage(pid int) (usage, error) {
	c, err := procstat.CPUTime(pid)
	return usage{cpu: c, wall: time.Now()}, err
}

// share is the CPU used between two readings, as a fraction of one core, and the CPU time.
func share(a, b usage) (frac float64, cpu time.Duration) {
	cpu = b.cpu - a.cpu
	return cpu.Seconds() / b.wall.Sub(a.wall).Seconds(), cpu
}

// waitFor polls cond every 100 ms until it holds or d has passed; it reports whether it held.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// idle waits until the gateway has no live call and no recording in progress, and the rules
// engine has applied every stored event, at most d. It reports what is still pending.
func (b *bench) idle(ctx context.Context, d time.Duration) error {
	return idle(ctx, b.gatewayTarget(), d)
}

// idle waits until t's nodes have no live call and no recording in progress, and the rules
// engine has applied every stored event, at most d. It reports what is still pending.
func idle(ctx context.Context, t *cpsTarget, d time.Duration) error {
	var calls, recs float64
	var pending int
	ok := waitFor(ctx, d, func() bool {
		m, _, err := t.metrics(ctx)
		if err != nil {
			return false
		}
		calls = m.Sum("switchboard_calls_active", nil)
		recs = m.Sum("switchboard_recordings_active", nil)
		if err := t.db.QueryRow(ctx, `SELECT count(*) FROM call_events_pending`).Scan(&pending); err != nil {
			return false
		}
		return calls == 0 && recs == 0 && pending == 0
	})
	if !ok {
		return fmt.Errorf("%s not idle after %v: %v calls, %v recordings, %d events pending", t.who, d, calls, recs, pending)
	}
	return nil
}
