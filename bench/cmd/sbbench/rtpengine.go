package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/bench/ngctl"
	"github.com/switchboard-voice/switchboard/bench/procstat"
	"github.com/switchboard-voice/switchboard/bench/rtpgen"
)

// peerStep is rtpengine carrying the load of the gateway's best step: the same generator, the
// same N calls, its process pinned where the gateway runs.
type peerStep struct {
	Version        string  `json:"version"`
	Threads        int     `json:"threads"`
	Calls          int     `json:"calls"`
	LegsStarted    int     `json:"legs_started"`
	SetupS         float64 `json:"setup_s"` // offer + answer for every call, one after the other
	WindowS        float64 `json:"window_s"`
	CPU            float64 `json:"cpu"`
	ForwardedPPS   float64 `json:"forwarded_pps"`
	CPUUsPerPacket float64 `json:"cpu_us_per_packet"`
	// Resident memory before the first offer and at the window's end, and the difference ÷ N.
	RSSIdleKB    int64   `json:"rss_idle_kb"`
	RSSKB        int64   `json:"rss_kb"`
	RSSKBPerCall float64 `json:"rss_kb_per_call"`
	FDsPerCall   float64 `json:"fds_per_call"`
	// Loss as the phones saw it over the whole step (rtpengine counts none of its own here):
	// 1 − received ÷ sent, read after the senders stopped and the last packets arrived.
	LossPct        float64      `json:"loss_pct"`
	SocketDrops    uint64       `json:"socket_drops"` // the kernel's drops on rtpengine's ports
	Gen            rtpgen.Stats `json:"generator"`
	GenSocketDrops uint64       `json:"generator_socket_drops"`
	Load           loadUse      `json:"load"`
}

// rtpengine's media ports: the upper half of the gateway's RTP range, which the gateway does
// not use while it is idle (no call), and away from the generator's 40000–59999.
const rtpenginePortMin, rtpenginePortMax = 20000, 29999

// runRtpengine runs the peer step when rtpengine is installed; without it the step is
// skipped with a note and the run goes on.
func (b *bench) runRtpengine(ctx context.Context) error {
	n := b.sameN()
	if n == 0 || b.rtpengine == "" || b.rtpengine == "off" {
		return nil
	}
	bin, err := exec.LookPath(b.rtpengine)
	if err != nil {
		b.res.note("rtpengine was not run: %q not found (Debian: apt-get install rtpengine-daemon)", b.rtpengine)
		return nil
	}
	if !b.fits(b.settle + b.concMeasure + time.Duration(n/100+60)*time.Second) {
		b.res.note("rtpengine was skipped: the time budget")
		return nil
	}
	b.logf("rtpengine: %d calls through %s", n, bin)
	st, err := b.peerStep(ctx, bin, n)
	if err != nil {
		// The peer is a comparison, not the system under test: its failure is a note.
		b.res.note("rtpengine: %v", err)
		b.logf("  %v", err)
		return nil
	}
	b.res.Rtpengine = &st
	b.logf("  rtpengine CPU %.0f%%, %.0f packets/s forwarded, %.2f µs/packet, loss %.4f%%, RSS %.1f KiB/call",
		100*st.CPU, st.ForwardedPPS, st.CPUUsPerPacket, st.LossPct, st.RSSKBPerCall)
	return nil
}

func (b *bench) peerStep(ctx context.Context, bin string, n int) (peerStep, error) {
	st := peerStep{Calls: n, Version: rtpengineVersion(bin), Threads: 1}
	if cpus, err := cpuList(b.gatewayCPUs); err == nil && len(cpus) > 0 {
		st.Threads = len(cpus) // one worker per core it is given, as the gateway's GOMAXPROCS
	}
	ngPort, err := freePort()
	if err != nil {
		return st, err
	}
	ngAddr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(ngPort))
	logf, err := os.Create(filepath.Join(b.work, "rtpengine.log"))
	if err != nil {
		return st, err
	}
	defer logf.Close()
	// Userspace forwarding only (--table=-1: no kernel module), in the foreground, logging
	// warnings to stderr, no configuration file (the Debian package's would set its own
	// ports and table), loopback only.
	cmd := b.pinned(b.gatewayCPUs, bin, "--config-file=none", "--foreground", "--log-stderr", "--table=-1",
		"--interface=127.0.0.1", "--listen-ng="+ngAddr.String(),
		"--port-min="+strconv.Itoa(rtpenginePortMin), "--port-max="+strconv.Itoa(rtpenginePortMax),
		"--num-threads="+strconv.Itoa(st.Threads), "--timeout=120", "--log-level=4")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return st, fmt.Errorf("start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	pid := cmd.Process.Pid

	ng, err := ngctl.Dial(ngAddr)
	if err != nil {
		return st, err
	}
	defer ng.Close()
	if !waitFor(ctx, 15*time.Second, func() bool { return ng.Ping() == nil }) {
		return st, fmt.Errorf("no answer on its ng port %v after 15 s; see %s", ngAddr, logf.Name())
	}
	if st.RSSIdleKB, err = procstat.RSSKB(pid); err != nil {
		return st, err
	}
	fds0, err := procstat.FDCount(pid)
	if err != nil {
		return st, err
	}

	gen, err := rtpgen.New(rtpgen.Options{}, 2*n)
	if err != nil {
		return st, err
	}
	defer gen.Close()
	gen.Run()
	legs := gen.Legs()
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	ports := map[int]bool{}
	began := time.Now()
	for i := range n {
		callID, from, to := fmt.Sprintf("bench-%d", i), fmt.Sprintf("c%d", i), fmt.Sprintf("d%d", i)
		caller, callee := legs[i], legs[n+i]
		toCallee, err := ng.Offer(callID, from, ngctl.AudioSDP(lo, caller.Port(), 2*i+1))
		if err != nil {
			return st, err
		}
		toCaller, err := ng.Answer(callID, from, to, ngctl.AudioSDP(lo, callee.Port(), 2*i+2))
		if err != nil {
			return st, err
		}
		if err := gen.Start(caller, toCaller); err != nil {
			return st, err
		}
		if err := gen.Start(callee, toCallee); err != nil {
			return st, err
		}
		for _, p := range []uint16{toCallee.Port(), toCaller.Port()} {
			ports[int(p)], ports[int(p)+1] = true, true
		}
	}
	st.SetupS = time.Since(began).Seconds()
	st.LegsStarted = gen.Stats().Started

	sleepCtx(ctx, b.settle)
	u0, err := readUsage(pid)
	if err != nil {
		return st, err
	}
	l0 := b.readLoad()
	g0 := gen.Stats()
	sleepCtx(ctx, b.concMeasure)
	u1, err := readUsage(pid)
	if err != nil {
		return st, err
	}
	st.Load = loadShare(l0, b.readLoad())
	g1 := gen.Stats()
	if st.RSSKB, err = procstat.RSSKB(pid); err != nil {
		return st, err
	}
	if fds, err := procstat.FDCount(pid); err == nil {
		st.FDsPerCall = float64(fds-fds0) / float64(n)
	}
	st.SocketDrops, _, _ = procstat.UDPDrops(ports)
	st.GenSocketDrops, _ = gen.Drops()
	st.WindowS = u1.wall.Sub(u0.wall).Seconds()
	var cpu time.Duration
	st.CPU, cpu = share(u0, u1)
	fwd := float64(g1.Received - g0.Received)
	st.ForwardedPPS = fwd / st.WindowS
	if fwd > 0 {
		st.CPUUsPerPacket = float64(cpu.Microseconds()) / fwd
	}
	st.RSSKBPerCall = float64(st.RSSKB-st.RSSIdleKB) / float64(n)

	gen.StopSending()
	sleepCtx(ctx, 500*time.Millisecond) // the last packets in flight
	st.Gen = gen.Stats()
	if st.Gen.Sent > 0 {
		st.LossPct = 100 * (1 - float64(st.Gen.Received)/float64(st.Gen.Sent))
	}
	for i := range n {
		if err := ng.Delete(fmt.Sprintf("bench-%d", i), fmt.Sprintf("c%d", i)); err != nil {
			b.res.note("rtpengine: delete: %v", err)
			break
		}
	}
	return st, nil
}

// rtpengineVersion is the "Version: …" of `rtpengine --version`, or "unknown".
func rtpengineVersion(bin string) string {
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if _, v, ok := strings.Cut(l, "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
