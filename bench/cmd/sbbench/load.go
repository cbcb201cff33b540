package main

import (
	"fmt"
	"math"
	"os"
	"runtime/metrics"
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
	// sbbench's Go runtime in the window (the generator's goroutines share it): garbage
	// collections, and how often a goroutine that was ready to run waited more than 1 ms for
	// a thread (runtime/metrics /sched/latencies:seconds), with the largest such wait (the
	// upper bound of its bucket).
	GCs             uint64  `json:"sbbench_gc_cycles"`
	SchedWaitsOver1 uint64  `json:"sbbench_sched_waits_over_1ms"`
	SchedWaitMaxMs  float64 `json:"sbbench_sched_wait_max_ms"`
}

// loadReading is one reading of the load side.
type loadReading struct {
	self  time.Duration
	cores map[int]procstat.CoreTimes
	wall  time.Time
	gcs   uint64
	sched *metrics.Float64Histogram
}

var goMetrics = []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/sched/latencies:seconds"}}

func readGoMetrics(r *loadReading) {
	s := make([]metrics.Sample, len(goMetrics))
	copy(s, goMetrics)
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		r.gcs = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindFloat64Histogram {
		h := s[1].Value.Float64Histogram()
		r.sched = &metrics.Float64Histogram{Counts: append([]uint64(nil), h.Counts...), Buckets: append([]float64(nil), h.Buckets...)}
	}
}

// schedWaits is how many goroutine scheduling latencies between a and b were over 1 ms, and
// the upper bound of the largest one's bucket in ms.
func schedWaits(a, b *metrics.Float64Histogram) (over uint64, maxMs float64) {
	if a == nil || b == nil || len(a.Counts) != len(b.Counts) {
		return 0, 0
	}
	for i := range b.Counts {
		d := b.Counts[i] - a.Counts[i]
		if d == 0 {
			continue
		}
		hi := b.Buckets[i+1]
		if b.Buckets[i] >= 1e-3 {
			over += d
		}
		if !math.IsInf(hi, 1) {
			maxMs = max(maxMs, hi*1e3)
		} else {
			maxMs = max(maxMs, b.Buckets[i]*1e3)
		}
	}
	return over, maxMs
}

func (b *bench) readLoad() loadReading {
	r := loadReading{wall: time.Now()}
	readGoMetrics(&r)
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
	u.GCs = b.gcs - a.gcs
	u.SchedWaitsOver1, u.SchedWaitMaxMs = schedWaits(a.sched, b.sched)
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
