package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/bench/procstat"
)

// loadUse is the load side of one measurement window, in fractions of one core: sbbench's own
// CPU (the RTP generator runs in it) and the busy share of the load generators' cores (SIPp
// and everything else on them). CoreBusy is NaN (null) when the load is not pinned.
type loadUse struct {
	GeneratorCPU float64 `json:"generator_cpu"`
	CoreBusy     fnum    `json:"load_core_busy"`
}

// loadReading is one reading of the load side.
type loadReading struct {
	self  time.Duration
	cores map[int]procstat.CoreTimes
	wall  time.Time
}

func (b *bench) readLoad() loadReading {
	r := loadReading{wall: time.Now()}
	r.self, _ = procstat.CPUTime(os.Getpid())
	if cpus, err := cpuList(b.loadCPUs); err == nil && len(cpus) > 0 {
		r.cores, _ = procstat.Cores(cpus)
	}
	return r
}

// loadShare is the load side between two readings; CoreBusy is the mean over the load cores.
func loadShare(a, b loadReading) loadUse {
	u := loadUse{CoreBusy: fnum(nan)}
	if wall := b.wall.Sub(a.wall).Seconds(); wall > 0 {
		u.GeneratorCPU = (b.self - a.self).Seconds() / wall
	}
	var busy, total uint64
	for c, t1 := range b.cores {
		if t0, ok := a.cores[c]; ok {
			busy += t1.Busy - t0.Busy
			total += t1.Total - t0.Total
		}
	}
	if total > 0 {
		u.CoreBusy = fnum(float64(busy) / float64(total))
	}
	return u
}

// cpuList parses a taskset -c list ("1", "0,2", "2-3").
func cpuList(s string) (map[int]bool, error) {
	out := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q", s)
		}
		z := a
		if isRange {
			if z, err = strconv.Atoi(hi); err != nil || z < a || z-a > 4096 {
				return nil, fmt.Errorf("cpu list %q", s)
			}
		}
		for c := a; c <= z; c++ {
			out[c] = true
		}
	}
	return out, nil
}
