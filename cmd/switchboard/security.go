package main

import (
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// securityEventsName is the metric every security event counts into, SIP and HTTP alike.
const securityEventsName = "switchboard_security_events_total"

// securityEvents shares switchboard_security_events_total between sip, which registers it
// with its own types, and the HTTP side (ticketing.AuthGuard: http_auth_failure,
// http_auth_throttled), which must count into the same series: a metric name can be
// registered only once per registry, and ticketing must not import sip. The registerer sip
// gets (share) hands sip's counter over as it is registered; when sip registers none, ensure
// registers one of our own.
type securityEvents struct {
	vec atomic.Pointer[prometheus.CounterVec]
}

// count adds one event of type typ; before the counter exists it counts nothing.
func (s *securityEvents) count(typ string) {
	if v := s.vec.Load(); v != nil {
		v.WithLabelValues(typ).Inc()
	}
}

// share wraps reg: collectors pass through, and the security events counter is kept.
func (s *securityEvents) share(reg prometheus.Registerer) prometheus.Registerer {
	return sharingRegisterer{Registerer: reg, into: s}
}

// ensure registers a counter of our own on reg when none was shared, and creates the HTTP
// side's types at 0 (sip creates its own), so every type's series exists from start.
func (s *securityEvents) ensure(reg prometheus.Registerer) error {
	if v := s.vec.Load(); v != nil {
		precreate(v)
		return nil
	}
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: securityEventsName,
		Help: "Requests refused or dropped for security, by type."}, []string{"type"})
	if err := reg.Register(v); err != nil {
		return err
	}
	precreate(v)
	s.vec.Store(v)
	return nil
}

func precreate(v *prometheus.CounterVec) {
	for _, t := range []string{ticketing.SecHTTPAuthFailure, ticketing.SecHTTPAuthThrottled} {
		v.WithLabelValues(t)
	}
}

type sharingRegisterer struct {
	prometheus.Registerer
	into *securityEvents
}

func (r sharingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	if v, ok := c.(*prometheus.CounterVec); ok && describes(c, securityEventsName) {
		r.into.vec.Store(v)
	}
	return nil
}

func (r sharingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// describes reports whether c describes a metric named name.
func describes(c prometheus.Collector, name string) bool {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	found := false
	for d := range ch {
		found = found || strings.Contains(d.String(), `fqName: "`+name+`"`)
	}
	return found
}
