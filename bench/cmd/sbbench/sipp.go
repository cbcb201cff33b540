package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sippProc is one SIPp process, started in its own directory (where SIPp writes its trace
// files), pinned to the load generators' core, its screen output kept in sipp.out.
type sippProc struct {
	name string
	dir  string
	cmd  *exec.Cmd
	out  *os.File
	done chan struct{}
	err  error
}

// startSipp runs `sipp args...` in dir (created) under taskset when cpus is set.
func (b *bench) startSipp(name, dir string, args ...string) (*sippProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		return nil, err
	}
	// -buff_size: SIPp's socket buffers are 64 KiB by default, which its own receive queue
	// overflows at a few hundred calls a second while its core is busy (5,860 datagrams
	// dropped on a SIPp port in one 500/s step, session 14): the generator must not be what
	// loses messages. The kernel caps it at net.core.rmem_max/wmem_max.
	all := append([]string{"-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin", "-buff_size", "4194304"}, args...)
	cmd := b.pinned(b.loadCPUs, b.sipp, all...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive sbbench
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start sipp (%s): %w", name, err)
	}
	p := &sippProc{name: name, dir: dir, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

// wait waits for SIPp to exit by itself, at most d; then it is stopped.
func (p *sippProc) wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(d):
		p.stop()
		return fmt.Errorf("sipp (%s) still running after %v; stopped", p.name, d)
	}
}

// exitErr is nil for exit codes 0 (all calls succeeded) and 1 (some failed: the statistics
// say how many), an error otherwise (SIPp's fatal errors are 255 and 254).
func (p *sippProc) exitErr() error {
	var ee *exec.ExitError
	if p.err == nil || (errors.As(p.err, &ee) && ee.ExitCode() == 1) {
		return nil
	}
	return fmt.Errorf("sipp (%s): %v; see %s", p.name, p.err, filepath.Join(p.dir, p.name+".out"))
}

// stop ends SIPp: SIGTERM, then SIGKILL after 5 s.
func (p *sippProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// sippStats are the cumulative counters of SIPp's statistics file (-trace_stat -stf).
type sippStats struct {
	Created, Successful, Failed int
}

// readSippStats reads the last line of a -trace_stat file: columns named in its header,
// separated by ';' (the date columns hold tabs but no ';').
func readSippStats(path string) (sippStats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sippStats{}, fmt.Errorf("sipp statistics: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return sippStats{}, fmt.Errorf("sipp statistics %s: no data line", path)
	}
	head := strings.Split(strings.TrimSpace(lines[0]), ";")
	last := strings.Split(strings.TrimSpace(lines[len(lines)-1]), ";")
	col := func(name string) (int, error) {
		for i, h := range head {
			if h == name && i < len(last) {
				return strconv.Atoi(strings.TrimSpace(last[i]))
			}
		}
		return 0, fmt.Errorf("sipp statistics %s: no column %s", path, name)
	}
	var s sippStats
	var e1, e2, e3 error
	s.Created, e1 = col("TotalCallCreated")
	s.Successful, e2 = col("SuccessfulCall(C)")
	s.Failed, e3 = col("FailedCall(C)")
	return s, errors.Join(e1, e2, e3)
}

// rttSamples reads a -trace_rtt file (Date_ms;response_time_ms;rtd_no): the time of each
// response (ms since SIPp started) and its response time in ms, for response time rtd.
func rttSamples(path string, rtd int) (at, rt []float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sipp rtt: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(strings.TrimSpace(sc.Text()), ";")
		if len(p) != 3 {
			continue
		}
		n, err := strconv.Atoi(p[2])
		if err != nil || n != rtd {
			continue // the header, or another response time
		}
		a, err1 := strconv.ParseFloat(p[0], 64)
		v, err2 := strconv.ParseFloat(p[1], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		at, rt = append(at, a), append(rt, v)
	}
	return at, rt, sc.Err()
}

// findOne returns the single file matching pattern.
func findOne(pattern string) (string, error) {
	m, err := filepath.Glob(pattern)
	if err != nil {
		return "", err
	}
	if len(m) != 1 {
		return "", fmt.Errorf("%d files match %s", len(m), pattern)
	}
	return m[0], nil
}

// percentile is the nearest-rank q-quantile of v (sorted in place); NaN when empty.
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return nan
	}
	sort.Float64s(v)
	i := int(q*float64(len(v))+0.999999) - 1
	return v[min(max(i, 0), len(v)-1)]
}

// logTail follows a file SIPp appends lines to, handing each complete line to fn, until ctx
// ends. It polls every 20 ms (SIPp writes its <log> lines as they happen).
func logTail(ctx context.Context, path string, fn func(line string)) {
	var off int64
	var partial string
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 64*1024)
	for {
		if f, err := os.Open(path); err == nil {
			for range 1000 { // bounded per poll
				n, err := f.ReadAt(buf, off)
				if n > 0 {
					off += int64(n)
					text := partial + string(buf[:n])
					lines := strings.Split(text, "\n")
					partial = lines[len(lines)-1]
					for _, l := range lines[:len(lines)-1] {
						fn(l)
					}
				}
				if err != nil || n == 0 {
					break
				}
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
