package sip

import (
	"net/netip"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// INFOHandler takes a SIP INFO received on the carrier leg (RFC 6086; DTMF as
// application/dtmf-relay or application/dtmf) and returns the status to answer it with.
type INFOHandler func(contentType string, body []byte) (code int, reason string)

// SetINFOHandler routes the carrier leg's INFO requests to h (the IVR reading keys); nil
// restores the default, 200 OK with the body dropped.
func (c *Call) SetINFOHandler(h INFOHandler) {
	if h == nil {
		c.info.Store(nil)
		return
	}
	c.info.Store(&h)
}

// Emit sends a lifecycle event of the call's target (the IVR, the queue, voicemail) on the
// call's own sequence, after the events sip emitted before it. The first call.answered should
// go through MarkAnswered instead, which also starts talk time. Events after call.ended are
// dropped.
func (c *Call) Emit(e callevent.Event) { c.emit(e) }

// AddHoldTime adds hold time a target measured (an agent's hold button, with music to the
// caller) to the hold time call.ended carries.
func (c *Call) AddHoldTime(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.holdTotal += d
	c.mu.Unlock()
}

// LastSeq is the seq of the call's latest event (call.ended's, once the call is over), so that
// events about the call after its end, such as call.recording_ready, can follow it.
func (c *Call) LastSeq() int64 { return c.seq.Load() }

// SecRTPSourceRejected is the security event type of RTP dropped for coming from an address
// other than the call's latched peer (media's strict source).
const SecRTPSourceRejected = "rtp_source_rejected"

// RTPSourceRejected counts an RTP packet media dropped for its source as a security event and
// logs it, at most once a second (a flood is counted in full). It is cheap: media calls it on
// the receive path.
func (s *Server) RTPSourceRejected(src netip.AddrPort) {
	s.m.securityEvent.WithLabelValues(SecRTPSourceRejected).Inc()
	now := s.now().UnixNano()
	last := s.lastRTPLog.Load()
	if now-last < int64(time.Second) || !s.lastRTPLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("sip: security event", "security_event", SecRTPSourceRejected, "source", src.String(),
		"detail", "RTP from an address other than the call's peer")
}
