package recordings

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the recording metrics of docs/metrics.md plus the tap's drops, shared by every
// recording of a Service.
type Metrics struct {
	active      prometheus.Gauge
	bytes       prometheus.Counter
	errors      prometheus.Counter
	droppedFull prometheus.Counter
	droppedLate prometheus.Counter
	pending     prometheus.Gauge
	refused     prometheus.Counter
}

// Reasons a tapped packet is not recorded (label "reason" of
// switchboard_recording_packets_dropped_total).
const (
	dropBufferFull = "buffer_full" // the writer goroutine fell behind: the tap drops rather than block RTP
	dropLate       = "late"        // arrived after its place in the file was written (later than Options.Delay)
)

// NewMetrics creates the metrics and registers them on reg (nil: not registered, still usable).
// Names:
//
//	switchboard_recordings_active                        gauge: recordings being written
//	switchboard_recording_bytes_total                    counter: audio bytes written to files
//	switchboard_recording_errors_total                   counter: recordings that failed (create, write, close, journal), rows refused
//	switchboard_recording_packets_dropped_total{reason}  counter: buffer_full, late
//	switchboard_recording_rows_pending                   gauge: metadata rows waiting for the database (recordings with changes in the journal)
//	switchboard_recording_rows_refused_total             counter: journaled rows the database refused for good
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	active := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchboard_recordings_active",
		Help: "Recordings being written.",
	})
	bytes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_recording_bytes_total",
		Help: "Audio bytes written to recording files.",
	})
	errs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_recording_errors_total",
		Help: "Recordings that failed: the file could not be created, written or closed (e.g. a full disk), or the metadata row not journaled or refused by the database.",
	})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_recording_packets_dropped_total",
		Help: "Tapped RTP packets not recorded: buffer_full (the writer fell behind), late (after their audio was written).",
	}, []string{"reason"})
	pending := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchboard_recording_rows_pending",
		Help: "Recordings whose metadata row waits for the database (in the journal under <recordings dir>/.pending/<node>/); grows while PostgreSQL is unreachable, drains when it answers.",
	})
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_recording_rows_refused_total",
		Help: "Journaled recording metadata rows the database refused for good (constraint or data error); the entry is kept as .refused for the operator.",
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{active, bytes, errs, dropped, pending, refused} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("recordings: register metrics: %w", err)
			}
		}
	}
	return &Metrics{active: active, bytes: bytes, errors: errs,
		droppedFull: dropped.WithLabelValues(dropBufferFull), droppedLate: dropped.WithLabelValues(dropLate),
		pending: pending, refused: refused}, nil
}

// The helpers below accept a nil *Metrics (nothing recorded).

func (m *Metrics) addActive(d float64) {
	if m != nil {
		m.active.Add(d)
	}
}

func (m *Metrics) addBytes(n int) {
	if m != nil {
		m.bytes.Add(float64(n))
	}
}

func (m *Metrics) addError() {
	if m != nil {
		m.errors.Inc()
	}
}

func (m *Metrics) addLate() {
	if m != nil {
		m.droppedLate.Inc()
	}
}

func (m *Metrics) addFull() {
	if m != nil {
		m.droppedFull.Inc()
	}
}

func (m *Metrics) setPending(n int) {
	if m != nil {
		m.pending.Set(float64(n))
	}
}

func (m *Metrics) addRefused() {
	if m != nil {
		m.refused.Inc()
	}
}
