// Package procstat reads what the benchmarks need from Linux's /proc: a process's CPU time and
// resident memory, and the kernel's per-socket UDP drop counters (never the machine-wide ones,
// which every loopback user on the machine pollutes).
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/<pid>/stat's utime and stime (sysconf(_SC_CLK_TCK)), which the
// Linux ABI fixes at 100 on every architecture Go supports.
const userHZ = 100

// CPUTime returns the user plus system CPU time that process pid (all its threads) has used,
// from fields 14 and 15 of /proc/<pid>/stat (proc(5)). The resolution is 10 ms.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: cpu time of %d: %w", pid, err)
	}
	return parseStat(b)
}

// parseStat reads utime+stime from the text of /proc/<pid>/stat. The command name (field 2)
// is in parentheses and may itself hold spaces and parentheses, so fields are counted from
// the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("procstat: parse stat: no command field")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: parse stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("procstat: parse stat: utime %q stime %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// RSSKB returns the resident set size of process pid in KiB (VmRSS of /proc/<pid>/status).
func RSSKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: rss of %d: %w", pid, err)
	}
	return parseRSS(b)
}

func parseRSS(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		f := strings.Fields(line[len("VmRSS:"):])
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("procstat: parse VmRSS %q", line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("procstat: no VmRSS line")
}

// UDPDrops sums the "drops" column of /proc/net/udp over the IPv4 sockets bound to one of
// ports (any local address): datagrams the kernel discarded for those sockets, mostly
// because their receive buffer was full. It also returns how many of the ports it found.
func UDPDrops(ports map[int]bool) (drops uint64, found int, err error) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, 0, fmt.Errorf("procstat: udp drops: %w", err)
	}
	return parseUDP(b, ports)
}

func parseUDP(b []byte, ports map[int]bool) (drops uint64, found int, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
		if len(f) < 13 {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || !ports[int(port)] {
			continue
		}
		d, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("procstat: parse udp drops %q: %w", f[len(f)-1], err)
		}
		drops += d
		found++
	}
	return drops, found, sc.Err()
}

// FDCount returns the number of open file descriptors of process pid (the entries of
// /proc/<pid>/fd: sockets, files, epoll and timer descriptors alike).
func FDCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: fds of %d: %w", pid, err)
	}
	return len(ents), nil
}

// CoreTimes are one core's busy and total time from /proc/stat, in USER_HZ ticks.
type CoreTimes struct{ Busy, Total uint64 }

// Cores returns the times of each core listed in cpus (e.g. {1: true}) from /proc/stat, to
// tell whether the load generators' core ran out.
func Cores(cpus map[int]bool) (map[int]CoreTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("procstat: cores: %w", err)
	}
	return parseCores(b, cpus)
}

// parseCores reads the "cpuN user nice system idle iowait irq softirq steal …" lines (proc(5));
// idle and iowait are not busy, steal is not ours: busy = user+nice+system+irq+softirq.
func parseCores(b []byte, cpus map[int]bool) (map[int]CoreTimes, error) {
	out := map[int]CoreTimes{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || !cpus[n] {
			continue
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("procstat: parse %q: %w", f[0], err)
			}
		}
		busy := v[0] + v[1] + v[2] + v[5] + v[6]
		out[n] = CoreTimes{Busy: busy, Total: busy + v[3] + v[4]}
	}
	return out, sc.Err()
}
