package ivr

import "github.com/prometheus/client_golang/prometheus"

// metrics are the ACD's series of docs/metrics.md. Label sets are bounded: queues come from the
// configuration, states are the five AgentStates.
type metrics struct {
	waiting *prometheus.GaugeVec
	wait    *prometheus.HistogramVec
	agents  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_queue_calls_waiting",
			Help: "Calls waiting in the queue for an agent.",
		}, []string{"queue"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_queue_wait_seconds",
			Help:    "Time calls waited in the queue, observed when they leave it (answered, overflow, abandoned).",
			Buckets: []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600},
		}, []string{"queue"}),
		agents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_agents",
			Help: "Agents by state (available, busy, wrap_up, away, offline).",
		}, []string{"state"}),
	}
	for _, st := range agentStates {
		m.agents.WithLabelValues(string(st))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.waiting, m.wait, m.agents} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
