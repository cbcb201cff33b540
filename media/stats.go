package media

import (
	"sync/atomic"
	"time"
)

// Receive statistics of RFC 3550 Appendix A: sequence tracking (A.1), loss (A.3) and
// interarrival jitter (A.8). One goroutine (the endpoint's RTP reader) updates them; the
// published fields are atomics so Stats and the RTCP sender read them without a lock.

const (
	maxDropout    = 3000 // A.1: a forward jump larger than this is a restart, not loss
	maxMisorder   = 100  // A.1: a backward jump within this is reordering
	seqMod        = 1 << 16
	clockRate     = 8000 // G.711 and telephone-event both use an 8 kHz clock (RFC 3551 §4.5.14)
	jitterQ4Shift = 4    // jitter kept ×16 as in A.8's integer version
	// lateAfter is a late arrival (switchboard_rtp_late_arrivals_total): an audio packet whose
	// transit time is 100 ms or more longer than its predecessor's — it, and the packets queued
	// behind it, waited that long somewhere (the sender, the network, or this gateway's media
	// loop: switchboard_media_loop_stalls_total says when it was ours).
	lateAfter = clockRate / 10
)

type recvStats struct {
	// owned by the reader goroutine
	started   bool
	ssrc      uint32
	baseSeq   uint32
	maxSeq    uint16
	cycles    uint32
	badSeq    uint32
	received  uint64 // this SSRC epoch
	priorLost int64  // loss of previous SSRC epochs
	transit   int64
	haveTrans bool
	lastTS    uint32
	jitterQ4  int64
	late      bool // the last audio packet update took arrived lateAfter or more behind its predecessor's pace

	// published
	pubReceived atomic.Uint64
	pubLost     atomic.Int64
	pubJitterQ4 atomic.Int64
	pubSSRC     atomic.Uint32
	pubExtMax   atomic.Uint32 // extended highest sequence number (cycles | max)
}

// update records one packet. arrival is in timestamp units on our monotonic clock; audio says
// whether the packet counts for jitter (telephone-event packets repeat their timestamp and would
// inflate it). It returns false for a packet A.1 considers not (yet) valid: the first of a large
// sequence jump, which is counted again when the next one confirms the restart.
func (s *recvStats) update(h rtpHeader, arrival int64, audio bool) bool {
	if !s.started || h.ssrc != s.ssrc {
		if s.started {
			s.priorLost += s.lostThisEpoch()
		}
		s.initSeq(h.seq)
		s.ssrc = h.ssrc
		s.started = true
		s.received = 0
		s.haveTrans = false
		s.pubSSRC.Store(h.ssrc)
	} else {
		delta := h.seq - s.maxSeq
		switch {
		case delta < maxDropout:
			if h.seq < s.maxSeq { // wrapped
				s.cycles += seqMod
			}
			s.maxSeq = h.seq
		case uint32(delta) <= seqMod-maxMisorder:
			// a very large jump: the peer restarted its sequence (A.1)
			if uint32(h.seq) == s.badSeq {
				s.priorLost += s.lostThisEpoch()
				s.initSeq(h.seq)
				s.received = 0
			} else {
				s.badSeq = (uint32(h.seq) + 1) & (seqMod - 1)
				return false
			}
		default:
			// duplicate or reordered: counted, does not move maxSeq
		}
	}
	s.received++

	if audio {
		transit := arrival - int64(h.timestamp)
		s.late = false
		if s.haveTrans && h.timestamp != s.lastTS {
			d := transit - s.transit
			s.late = d >= lateAfter
			if d < 0 {
				d = -d
			}
			// A.8: J += (|D| - J)/16, kept ×16 to stay in integers
			s.jitterQ4 += d - ((s.jitterQ4 + 8) >> jitterQ4Shift)
		}
		s.transit, s.haveTrans, s.lastTS = transit, true, h.timestamp
	}

	s.pubReceived.Add(1)
	s.pubLost.Store(s.priorLost + s.lostThisEpoch())
	s.pubJitterQ4.Store(s.jitterQ4)
	s.pubExtMax.Store(s.cycles + uint32(s.maxSeq))
	return true
}

func (s *recvStats) initSeq(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = seqMod + 1
	s.cycles = 0
}

// lostThisEpoch is A.3's cumulative loss for the current SSRC: expected − received.
func (s *recvStats) lostThisEpoch() int64 {
	expected := int64(s.cycles) + int64(s.maxSeq) - int64(s.baseSeq) + 1
	return expected - int64(s.received)
}

// jitter returns the published jitter estimate in timestamp units and as a duration.
func (s *recvStats) jitter() (uint32, time.Duration) {
	units := s.pubJitterQ4.Load() >> jitterQ4Shift
	return uint32(units), time.Duration(units) * time.Second / clockRate
}
