package sip

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// metrics are the SIP series of docs/metrics.md, with bounded label sets: methods outside the
// known list count as "other", response codes are the numeric code (100–699 only).
type metrics struct {
	callsActive   *prometheus.GaugeVec
	callsTotal    *prometheus.CounterVec
	callSetup     prometheus.Histogram
	requests      *prometheus.CounterVec
	responses     *prometheus.CounterVec
	securityEvent *prometheus.CounterVec
	orphanByes    *prometheus.CounterVec
	// trunkCalls is switchboard_trunk_calls_total{trunk,direction,outcome}: the calls of
	// switchboard_calls_total that went over a trunk, by trunk. A series of its own rather
	// than a trunk label on switchboard_calls_total, whose label set dashboards and alerts sum
	// over (and which also counts calls that never reached a trunk).
	trunkCalls *prometheus.CounterVec
	// settling is switchboard_sip_calls_settling: ended calls whose events the sink has not
	// taken yet (Server.settle). Their max_calls slot is free already.
	settling prometheus.Gauge
	// internalOffers is switchboard_cluster_offers_total{direction,result}: offers to agents
	// attached to another node, sent over the internal leg (direction "sent", on the call's
	// node) or received on it (direction "received", on the agent's node).
	internalOffers *prometheus.CounterVec
}

// Security event types of switchboard_security_events_total.
const (
	secACLReject   = "acl_reject"
	secAuthFailure = "auth_failure"
	secScanner     = "scanner_drop"
	secRateLimit   = "rate_limited"
	secMalformed   = "malformed"
	// secContactRejected counts REGISTERs refused for their Contact (contact.go): a host name,
	// an address other than the sender's, a trunk's or our own, or over a cap.
	secContactRejected = "contact_rejected"
	// secAuthBackoff counts REGISTERs refused (503) while their source or account is backed
	// off after digest failures (backoff.go).
	secAuthBackoff = "auth_backoff"
	// secLoop counts INVITEs refused as a loop: Max-Forwards exhausted (483) or a Call-ID
	// that is already live here, such as a leg of ours coming back (482).
	secLoop = "loop_detected"
	// secInternalRefused counts internal INVITEs (the cluster's internal leg, internal_leg.go)
	// refused with 403: from a source outside cluster.internal_networks, without a valid
	// signature of the cluster secret, stale, or replayed.
	secInternalRefused = "internal_refused"
	// secReferRefused counts REFERs refused with 403 because their leg is no agent's phone
	// (the carrier, an outside number, a desk phone asking the gateway to dial for it).
	secReferRefused = "refer_refused"
)

// securityTypes lists every type sip counts in switchboard_security_events_total, so each
// series exists at 0 from start.
var securityTypes = []string{secACLReject, secAuthFailure, secScanner, secRateLimit, secMalformed,
	secContactRejected, secAuthBackoff, secLoop, secConnLimit, SecRTPSourceRejected, secSourceSpoofed, secInternalRefused, secReferRefused}

// sentCodes are the response codes the gateway sends itself (other codes it relays appear
// when first sent).
var sentCodes = []int{100, 180, 183, 200, 400, 401, 403, 404, 405, 407, 408, 416, 420, 422, 423,
	480, 481, 482, 483, 486, 487, 488, 491, 500, 503}

// directions are the values of the direction label.
var directions = []string{"inbound", "outbound"}

// outcomeLabels are the values of the outcome label (outcomeLabel).
var outcomeLabels = []string{callevent.OutcomeAnswered, callevent.OutcomeAbandoned, callevent.OutcomeVoicemail,
	callevent.OutcomeNoAnswer, callevent.OutcomeFailed, callevent.OutcomeRejected, callevent.OutcomeCallback, "other"}

// newMetrics builds the SIP series and creates every series of a known label value at 0
// (directions, outcomes, methods, security event types, orphan BYE results, and each of
// trunks), so a dashboard or an alert on a fresh gateway reads 0, not "no data".
func newMetrics(reg prometheus.Registerer, trunks []string, udpDrops func() float64) (*metrics, error) {
	m := &metrics{
		callsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_calls_active", Help: "Calls in progress.",
		}, []string{"direction"}),
		callsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_calls_total", Help: "Calls ended, by direction and outcome.",
		}, []string{"direction", "outcome"}),
		callSetup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_call_setup_seconds",
			Help:    "Time from INVITE received to 200 OK sent on the carrier leg.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_sip_requests_total", Help: "SIP requests received, by method.",
		}, []string{"method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_sip_responses_total", Help: "SIP responses sent, by status code.",
		}, []string{"code"}),
		securityEvent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_security_events_total",
			Help: "Requests refused or dropped for security: acl_reject, auth_failure, scanner_drop, rate_limited, malformed, loop_detected, contact_rejected, auth_backoff, connection_limited, rtp_source_rejected, source_spoofed, internal_refused (and, from HTTP, http_auth_failure, http_auth_throttled).",
		}, []string{"type"}),
		orphanByes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_orphan_byes_total",
			Help: "BYEs sent at start to call legs a crash orphaned, by result (ok: the far end hung up; gone: it no longer knew the dialog; error: no answer).",
		}, []string{"result"}),
		trunkCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_trunk_calls_total",
			Help: "Calls ended that went over a trunk, by trunk, direction and outcome.",
		}, []string{"trunk", "direction", "outcome"}),
		settling: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_sip_calls_settling",
			Help: "Ended calls whose events the event log has not acknowledged yet (their max_calls slot is already free).",
		}),
		internalOffers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_cluster_offers_total",
			Help: "Offers to agents attached to another node over the internal SIP leg, by direction (sent by the call's node, received by the agent's node) and result (answered, no_answer, refused).",
		}, []string{"direction", "result"}),
	}
	for _, d := range []string{"sent", "received"} {
		for _, r := range []string{offerAnswered, offerNoAnswer, offerRefused} {
			m.internalOffers.WithLabelValues(d, r)
		}
	}
	for _, d := range directions {
		m.callsActive.WithLabelValues(d)
		for _, o := range outcomeLabels {
			m.callsTotal.WithLabelValues(d, o)
			for _, t := range trunks {
				m.trunkCalls.WithLabelValues(t, d, o)
			}
		}
	}
	for meth := range knownMethods {
		m.requests.WithLabelValues(meth)
	}
	m.requests.WithLabelValues("other")
	for _, code := range sentCodes {
		m.responses.WithLabelValues(strconv.Itoa(code))
	}
	for _, t := range securityTypes {
		m.securityEvent.WithLabelValues(t)
	}
	for _, r := range []string{"ok", "gone", "error"} {
		m.orphanByes.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	drops := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchboard_sip_udp_receive_drops_total",
		Help: "SIP datagrams the kernel dropped because the SIP UDP socket's receive queue was full (Linux, SO_MEMINFO): the gateway did not read for a while; each lost request or response comes again only at its retransmission.",
	}, udpDrops)
	for _, c := range []prometheus.Collector{m.callsActive, m.callsTotal, m.callSetup, m.requests, m.responses, m.securityEvent, m.orphanByes, m.trunkCalls, m.settling, m.internalOffers, drops} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var knownMethods = map[string]bool{
	"INVITE": true, "ACK": true, "BYE": true, "CANCEL": true, "OPTIONS": true, "REGISTER": true,
	"PRACK": true, "SUBSCRIBE": true, "NOTIFY": true, "PUBLISH": true, "INFO": true, "REFER": true,
	"MESSAGE": true, "UPDATE": true,
}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "other"
}

func codeLabel(code int) string {
	if code < 100 || code > 699 {
		return "other"
	}
	return strconv.Itoa(code)
}

// outcomeLabel bounds the outcome label of switchboard_calls_total: a target may report any
// outcome, the metric keeps the six outcomes of docs/api.md (GET /calls) and "other".
func outcomeLabel(o string) string {
	switch o {
	case callevent.OutcomeAnswered, callevent.OutcomeAbandoned, callevent.OutcomeVoicemail, callevent.OutcomeNoAnswer,
		callevent.OutcomeFailed, callevent.OutcomeRejected, callevent.OutcomeCallback:
		return o
	}
	return "other"
}

// countEnd counts an ended call in switchboard_calls_total and, when it went over a trunk, in
// switchboard_trunk_calls_total.
func (m *metrics) countEnd(direction, trunk, outcome string) {
	o := outcomeLabel(outcome)
	m.callsTotal.WithLabelValues(direction, o).Inc()
	if trunk != "" {
		m.trunkCalls.WithLabelValues(trunk, direction, o).Inc()
	}
}
