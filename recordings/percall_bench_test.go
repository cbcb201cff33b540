package recordings

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// BenchmarkZeroLengthRecording measures what a zero-length call's recording costs the gateway
// (issue 17, session 12): Start, Finish at once (no audio: a make bench CPS call), and its
// metadata row written to a real PostgreSQL, RECBENCH_PARALLEL calls at a time (default 8, as
// calls overlap in make bench's CPS steps; 1 for one call after the other). Reported per
// recording: the process's CPU (getrusage: user + system, the database's own excluded),
// allocations (-benchmem), and the statements that wrote recordings. System calls and fsyncs
// a recording: strace -f -c of this benchmark (BENCHMARKS.md, session 12).
func BenchmarkZeroLengthRecording(b *testing.B) {
	par := envInt("RECBENCH_PARALLEL", 8)
	db := &countingDB{DB: pgtest.Pool(b)}
	s := newService(b, Options{DB: db})
	ctx := context.Background()
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	// One warm-up recording (the day's directory, the journal's first file, the pool's conns).
	w, err := s.Start(ctx, "call-warm-up")
	if err == nil {
		_, err = w.Finish(ctx)
	}
	if err == nil {
		err = s.Flush(ctx)
	}
	if err != nil {
		b.Fatal(err)
	}
	db.writes.Store(0)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpu()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, par)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				w, err := s.Start(ctx, fmt.Sprintf("call-zero-%d", i))
				if err == nil {
					_, err = w.Finish(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := s.Flush(fctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpu()-c0).Microseconds())/float64(b.N), "cpu-µs/rec")
	b.ReportMetric(float64(db.writes.Load())/float64(b.N), "write_statements/rec")
}
