package recordings

// timeline places one channel's RTP packets in the file, in sample frames from the start of the
// recording. G.711's RTP clock is 8 kHz (RFC 3551 §4.5.14), so one timestamp unit is one sample.
//
// Each SSRC (RFC 3550 §3) is anchored at the arrival of its first packet; later packets of
// it go where their timestamp says relative to the anchor, so loss (a gap in timestamps)
// becomes silence of the right length and jitter does not move audio. Timestamps are unwrapped
// to 64 bits by their signed 32-bit distance from the newest one seen, which handles wrap-around
// and reordering. When the timestamp position and the arrival position disagree by more than
// resync — a sender whose timestamps did not advance over a hold, a restarted stream, a drifting
// clock — the stream is re-anchored at the arrival position, so the file's time stays wall time
// and the two channels stay aligned. A packet that is merely late (its timestamp place is behind
// its arrival but not yet written out, as after a stall of the RTP reader that delivers a burst)
// keeps its timestamp place: re-anchoring it would insert silence where the audio was only
// delayed and leave the stream ahead of wall time. The other way round, a packet whose
// timestamp place is more than ahead after its arrival shows that the anchor itself arrived
// late (its first packet was delayed, or the RTP reader stalled just then): the stream is
// re-anchored at that arrival, so it never runs more than ahead in front of wall time and the
// file does not outlast the call. The anchor thus follows the earliest arrival, as a jitter
// buffer tracks its minimum delay. Sequence numbers (with wrap, RFC 3550 A.1) only count loss.
type timeline struct {
	resync  int64
	ahead   int64
	streams []stream // newest last; a few at most (transfers, re-INVITEs)
	lost    uint64
}

type stream struct {
	ssrc    uint32
	ts0     int64 // extended timestamp of the anchor
	pos0    int64 // file position of the anchor
	lastTS  uint32
	lastExt int64
	lastSeq uint16
}

// maxStreams bounds the SSRCs a timeline remembers per channel.
const maxStreams = 4

// place returns the file position (sample frames) of a packet of ssrc with RTP timestamp ts
// and sequence seq that arrived at position arr; positions before floor are already written.
func (tl *timeline) place(ssrc uint32, seq uint16, ts uint32, arr, floor int64) int64 {
	s := tl.find(ssrc)
	if s == nil {
		if len(tl.streams) == maxStreams {
			copy(tl.streams, tl.streams[1:])
			tl.streams = tl.streams[:maxStreams-1]
		}
		tl.streams = append(tl.streams, stream{ssrc: ssrc, ts0: int64(ts), pos0: arr, lastTS: ts, lastExt: int64(ts), lastSeq: seq})
		return arr
	}
	if d := int16(seq - s.lastSeq); d > 1 {
		tl.lost += uint64(d - 1)
	}
	if int16(seq-s.lastSeq) > 0 {
		s.lastSeq = seq
	}
	ext := s.lastExt + int64(int32(ts-s.lastTS))
	if ext > s.lastExt {
		s.lastExt, s.lastTS = ext, ts
	}
	pos := s.pos0 + ext - s.ts0
	if d := pos - arr; d > tl.ahead || (d < -tl.resync && pos < floor) {
		s.ts0, s.pos0 = ext, arr
		pos = arr
	}
	return pos
}

func (tl *timeline) find(ssrc uint32) *stream {
	for i := range tl.streams {
		if tl.streams[i].ssrc == ssrc {
			return &tl.streams[i]
		}
	}
	return nil
}
