package ticketing

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultReportGaugesInterval is how often ReportGauges recomputes the last hour's figures.
const DefaultReportGaugesInterval = time.Minute

// ReportGaugesOptions configure StartReportGauges.
type ReportGaugesOptions struct {
	// Reports holds the queues' thresholds; its queues' series exist from start.
	Reports ReportOptions
	// Registerer receives the switchboard_report_* gauges (required).
	Registerer prometheus.Registerer
	// Interval between computations (default DefaultReportGaugesInterval).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// ReportGauges exports the queue report and the team's occupancy over the last hour as
// Prometheus gauges (docs/metrics.md), so that a Grafana dashboard on Prometheus alone shows
// the figures of the reports. Every node computes them from the shared database: across
// nodes, take max, not sum. One goroutine, started by StartReportGauges, recomputes them; a
// computation the database refuses leaves the last values and is logged.
type ReportGauges struct {
	store  *Store
	opts   ReportGaugesOptions
	g      map[string]*prometheus.GaugeVec
	occ    prometheus.Gauge
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// StartReportGauges registers the gauges and starts computing them.
func (s *Store) StartReportGauges(opts ReportGaugesOptions) (*ReportGauges, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultReportGaugesInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &ReportGauges{store: s, opts: opts, g: map[string]*prometheus.GaugeVec{}, done: make(chan struct{})}
	for _, o := range []prometheus.GaugeOpts{
		{Name: "switchboard_report_offered", Help: "Calls offered to the queue in the last hour (ended calls, by queue entry; the queue report)."},
		{Name: "switchboard_report_answered", Help: "Calls of the queue answered, last hour (the queue report)."},
		{Name: "switchboard_report_abandoned", Help: "Calls of the queue abandoned by the caller, last hour (the queue report)."},
		{Name: "switchboard_report_service_level", Help: "Share of the queue's calls answered within its service_level_seconds, last hour (NaN: no calls)."},
		{Name: "switchboard_report_asa_seconds", Help: "Average speed of answer of the queue, last hour (NaN: no answered call)."},
		{Name: "switchboard_report_aht_seconds", Help: "Average handle time (talk + hold + wrap-up) of the queue's answered calls, last hour (NaN: none)."},
		{Name: "switchboard_report_abandon_time_seconds", Help: "Average time to abandon of the queue, last hour (NaN: no abandoned call)."},
	} {
		v := prometheus.NewGaugeVec(o, []string{"queue"})
		if err := opts.Registerer.Register(v); err != nil {
			return nil, fmt.Errorf("ticketing: report gauges: %w", err)
		}
		r.g[o.Name] = v
	}
	r.occ = prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_report_occupancy",
		Help: "Agents' occupancy over the last hour, all agents together: (busy + wrap-up) / (available + busy + wrap-up) time (NaN: nobody logged in)."})
	if err := opts.Registerer.Register(r.occ); err != nil {
		return nil, fmt.Errorf("ticketing: report gauges: %w", err)
	}
	r.occ.Set(math.NaN())
	for q := range opts.Reports.resolved().ServiceLevels {
		r.set(QueueReportRow{Queue: q})
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
	return r, nil
}

// Close stops the computations; it is idempotent.
func (r *ReportGauges) Close() {
	r.once.Do(r.cancel)
	<-r.done
}

func (r *ReportGauges) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		r.compute(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// compute sets the gauges from the reports of [now-1h, now).
func (r *ReportGauges) compute(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Interval)
	defer cancel()
	now := r.opts.Now().UTC().Truncate(time.Second)
	q := ReportQuery{From: now.Add(-time.Hour), To: now}
	rows, err := r.store.QueueReport(ctx, q, r.opts.Reports)
	if err != nil {
		if ctx.Err() == nil {
			r.opts.Logger.Warn("report gauges: queue report failed; the gauges keep their last values", "err", err)
		}
		return
	}
	for _, row := range rows {
		r.set(row)
	}
	agents, err := r.store.AgentReport(ctx, q, ReportOptions{Now: r.opts.Now})
	if err != nil {
		if ctx.Err() == nil {
			r.opts.Logger.Warn("report gauges: agent report failed; occupancy keeps its last value", "err", err)
		}
		return
	}
	var work, logged int64
	for _, a := range agents {
		work += a.BusyTime + a.WrapUpState
		logged += a.AvailableTime + a.BusyTime + a.WrapUpState
	}
	r.occ.Set(orNaN(ratio(work, logged)))
}

func (r *ReportGauges) set(row QueueReportRow) {
	l := prometheus.Labels{"queue": row.Queue}
	r.g["switchboard_report_offered"].With(l).Set(float64(row.Offered))
	r.g["switchboard_report_answered"].With(l).Set(float64(row.Answered))
	r.g["switchboard_report_abandoned"].With(l).Set(float64(row.Abandoned))
	r.g["switchboard_report_service_level"].With(l).Set(orNaN(ratio(row.AnsweredWithinSL, row.Offered)))
	r.g["switchboard_report_asa_seconds"].With(l).Set(orNaN(ratio(row.AnswerWaitTime, row.Answered)))
	r.g["switchboard_report_aht_seconds"].With(l).Set(orNaN(ratio(row.TalkTime+row.HoldTime+row.WrapUpTime, row.Answered)))
	r.g["switchboard_report_abandon_time_seconds"].With(l).Set(orNaN(ratio(row.AbandonWaitTime, row.Abandoned)))
}

func orNaN(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}
