package media

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the RTP counters of docs/metrics.md, shared by every endpoint given the same
// *Metrics. Hot counters are pre-resolved children, so counting a packet does not allocate.
type Metrics struct {
	// onForeign, when set, is told of each packet dropped for coming from an address other than
	// the latched peer (a security event for the gateway).
	onForeign atomic.Pointer[func(netip.AddrPort)]
	rx, tx    prometheus.Counter
	lost      prometheus.Counter
	late      prometheus.Counter
	jitter    prometheus.Histogram
	rejected  *prometheus.CounterVec
	foreign   prometheus.Counter
	badPT     prometheus.Counter
	bad       prometheus.Counter
	probation prometheus.Counter
}

// Reasons a received packet is rejected (label "reason" of switchboard_rtp_packets_rejected_total).
const (
	rejectForeign     = "foreign_source" // not from the latched peer address
	rejectMalformed   = "malformed"      // not RTP version 2, truncated, bad padding
	rejectPayloadType = "payload_type"   // neither the negotiated codec nor telephone-event
	rejectProbation   = "probation"      // before latching, from a source matching no signalled address
)

// OnForeignSource registers f to be called for every RTP or RTCP packet dropped because it came
// from an address other than the latched peer (strict source: see Endpoint) — the packets of an
// RTP sprayer, or of a hijack attempt. f runs on the receive path: it must be cheap and must not
// block. Packets held back while a stranger is on probation, before anything latched, are
// counted under reason "probation" but not reported to f.
func (m *Metrics) OnForeignSource(f func(src netip.AddrPort)) {
	if m != nil {
		m.onForeign.Store(&f)
	}
}

// NewMetrics creates the RTP metrics and registers them on reg (nil: not registered, still
// usable, e.g. in tests). Names:
//
//	switchboard_rtp_packets_total{direction="rx"|"tx"}   counter
//	switchboard_rtp_packets_lost_total                   counter (added when an endpoint closes)
//	switchboard_rtp_jitter_seconds                       histogram (observed when an endpoint closes)
//	switchboard_rtp_packets_rejected_total{reason}       counter (foreign_source, probation, malformed, payload_type)
//	switchboard_rtp_late_arrivals_total                  counter (stats.go, lateAfter)
//	switchboard_media_receive_rearms_total               counter (the process's; see recvring_linux.go)
//	switchboard_media_loop_stalls_total                  counter (the process's; see recv.go)
//	switchboard_media_loop_stall_seconds_total           counter (the process's)
//	switchboard_media_ring_missed_wakeups_total          counter (the process's; see recvring_linux.go)
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_rtp_packets_total",
		Help: "RTP packets received (rx) from and sent (tx) to peers.",
	}, []string{"direction"})
	lost := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_rtp_packets_lost_total",
		Help: "RTP packets lost on receive (RFC 3550 A.3), counted when each endpoint closes.",
	})
	jitter := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "switchboard_rtp_jitter_seconds",
		Help:    "RFC 3550 interarrival jitter of received RTP at the end of each endpoint.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25},
	})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_rtp_packets_rejected_total",
		Help: "Received RTP packets dropped: foreign source after latching, stranger on probation before latching, malformed, unknown payload type.",
	}, []string{"reason"})
	rearms := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchboard_media_receive_rearms_total",
		Help: "Multishot io_uring receives armed again after they ended on their own: a media poll loop that ran out of receive buffers (it fell behind), or a socket error.",
	}, func() float64 { return float64(receiveRearms.Load()) })
	late := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_rtp_late_arrivals_total",
		Help: "Received RTP audio packets that arrived 100 ms or more behind their stream's pace (a stall of the sender, the network or this node's media loop).",
	})
	stalls := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchboard_media_loop_stalls_total",
		Help: "Rounds of a busy media poll loop that began over 50 ms after the previous one ended: the node's media thread did not run meanwhile (CPU starvation).",
	}, func() float64 { return float64(loopStalls.Load()) })
	stallSecs := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchboard_media_loop_stall_seconds_total",
		Help: "The whole length of the media poll loops' stalls (switchboard_media_loop_stalls_total).",
	}, func() float64 { return float64(loopStallNanos.Load()) / 1e9 })
	missed := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchboard_media_ring_missed_wakeups_total",
		Help: "Times a parked media reader receiving through its io_uring found datagrams after waiting 100 ms that nothing had woken it for.",
	}, func() float64 { return float64(ringMissedWakeups.Load()) })
	if reg != nil {
		for _, c := range []prometheus.Collector{packets, lost, late, jitter, rejected, rearms, stalls, stallSecs, missed} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("media: register metrics: %w", err)
			}
		}
	}
	return &Metrics{
		rx:        packets.WithLabelValues("rx"),
		tx:        packets.WithLabelValues("tx"),
		lost:      lost,
		late:      late,
		jitter:    jitter,
		rejected:  rejected,
		foreign:   rejected.WithLabelValues(rejectForeign),
		badPT:     rejected.WithLabelValues(rejectPayloadType),
		bad:       rejected.WithLabelValues(rejectMalformed),
		probation: rejected.WithLabelValues(rejectProbation),
	}, nil
}
