package media

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// sourceKind tells the sender which negotiated payload type a packet takes.
type sourceKind uint8

const (
	kindAudio sourceKind = iota
	kindDTMF
)

// maxSeqJump: a sequence jump this large within one source is treated as a new source
// (the far end restarted its stream without changing SSRC).
const maxSeqJump = 100

// sender is an endpoint's one outgoing RTP stream. Sources (a bridge, Play, SendDTMF) write
// through it with their own sequence numbers and timestamps; the sender maps them onto its own
// SSRC, sequence and timestamp space so the stream stays continuous across source changes
// (RFC 3550 §5.1: sequence increments by one per packet, timestamp grows with sampling time).
//
// Only the active source is heard: the top of the override stack (Play, SendDTMF) if any,
// else the base (a bridge). Writes from other sources are dropped.
type sender struct {
	ep      *Endpoint
	raw     *rawSender // the RTP socket, written without waiting (mu held)
	ssrc    uint32
	nextID  atomic.Uint64
	packets atomic.Uint64
	octets  atomic.Uint64

	mu          sync.Mutex
	base        uint64
	stack       []uint64
	started     bool
	seq         uint16    // last sent sequence number
	ts          uint32    // newest timestamp sent
	tsAt        time.Time // when ts was first sent
	lastSamples uint32    // duration of the last audio frame, in samples
	curID       uint64    // source of the current mapping
	curSSRC     uint32
	lastInSeq   uint16
	seqOff      uint16
	tsOff       uint32
}

// newID returns a fresh source identity (never 0).
func (s *sender) newID() uint64 { return s.nextID.Add(1) }

func (s *sender) active() uint64 {
	if n := len(s.stack); n > 0 {
		return s.stack[n-1]
	}
	return s.base
}

func (s *sender) setBase(id uint64) {
	s.mu.Lock()
	s.base = id
	s.mu.Unlock()
}

// clearBase removes id as the base source if it still is.
func (s *sender) clearBase(id uint64) {
	s.mu.Lock()
	if s.base == id {
		s.base = 0
	}
	s.mu.Unlock()
}

// push makes a new override source active and returns its id.
func (s *sender) push() uint64 {
	id := s.newID()
	s.mu.Lock()
	s.stack = append(s.stack, id)
	s.mu.Unlock()
	return id
}

// pop removes an override source wherever it is in the stack.
func (s *sender) pop(id uint64) {
	s.mu.Lock()
	for i, v := range s.stack {
		if v == id {
			s.stack = append(s.stack[:i], s.stack[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
}

// write sends one packet of source id, with the source's own header values in h, rewritten onto
// the outgoing stream. from is the payload's codec (audio is converted when the endpoint
// negotiated the other G.711 law; CodecNone: already in the endpoint's codec). Allocation-free.
//
// With tx (a poll loop's send batch, recv_linux.go) the rewritten packet is queued in tx and
// goes out with the batch's other packets for this sender in one sendmmsg(2) when the loop
// flushes it (txBatch.flush); without, it is sent at once with sendto(2).
func (s *sender) write(id uint64, h rtpHeader, payload []byte, kind sourceKind, from Codec, at time.Time, tx *txBatch) {
	if tx != nil {
		// A batch holds one sender's packets: another's, or a full one, go out first. Done
		// before taking s.mu, since flushing takes the other sender's mutex.
		tx.claim(s)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 || id != s.active() || s.ep.closed.Load() {
		return
	}
	cfg := s.ep.cfg.Load()
	var pt uint8
	switch kind {
	case kindAudio:
		if cfg.codec == CodecNone {
			return
		}
		pt = cfg.codecPT
	case kindDTMF:
		if cfg.dtmfPT == 0 {
			return // the peer did not negotiate telephone-event
		}
		pt = cfg.dtmfPT
	}
	dst, ok := s.ep.destination(cfg)
	if !ok || len(payload) > maxPacket-rtpHeaderSize {
		return
	}
	marker := h.marker
	if d := h.seq - s.lastInSeq; !s.started || id != s.curID || h.ssrc != s.curSSRC ||
		(d > maxSeqJump && d < 0x10000-maxSeqJump) {
		// A new source (or a restart): re-base so the stream continues where it stopped.
		var seq uint16
		var ts uint32
		if !s.started {
			seq, ts = uint16(rand.Uint32()), rand.Uint32() // RFC 3550 §5.1: random initial values
			s.started = true
		} else {
			seq = s.seq + 1
			elapsed := max(at.Sub(s.tsAt), 0)
			adv := uint32(int64(elapsed) * clockRate / int64(time.Second))
			ts = s.ts + max(adv, s.lastSamples)
		}
		s.seqOff, s.tsOff = seq-h.seq, ts-h.timestamp
		s.curID, s.curSSRC = id, h.ssrc
		s.seq, s.ts, s.tsAt = seq-1, ts, at
		if kind == kindAudio {
			marker = true // RFC 3551 §4.1: a new talkspurt
		}
	}
	s.lastInSeq = h.seq
	out := rtpHeader{marker: marker, payloadType: pt, seq: h.seq + s.seqOff, timestamp: h.timestamp + s.tsOff, ssrc: s.ssrc}
	if seqNewer(out.seq, s.seq) {
		s.seq = out.seq
	}
	if tsNewer(out.timestamp, s.ts) {
		s.ts, s.tsAt = out.timestamp, at
	}
	if kind == kindAudio {
		s.lastSamples = uint32(len(payload)) // G.711: one byte per sample
	}
	var buf []byte
	if tx != nil {
		buf = tx.next() // the batch's own buffer (recv_linux.go)
	} else {
		pb := s.ep.opts.Allocator.getSendBuf() // held only for this packet (ports.go)
		defer s.ep.opts.Allocator.putSendBuf(pb)
		buf = pb[:]
	}
	putRTPHeader(buf, out)
	n := rtpHeaderSize + len(payload)
	if kind == kindAudio && from != CodecNone {
		transcode(buf[rtpHeaderSize:n], payload, from, cfg.codec)
	} else {
		copy(buf[rtpHeaderSize:n], payload)
	}
	if tx != nil {
		tx.add(n, dst, at)
		return
	}
	if err := s.raw.send(buf[:n], dst); err != nil {
		return // EAGAIN included: dropped, not waited for (recv_linux.go, rawSender)
	}
	s.sent(cfg, buf[:n], at)
}

// sent counts a packet the kernel took and hands it to the taps (s.mu held, so the taps see
// the stream in the order it went out). pkt is the packet as sent, header included.
func (s *sender) sent(cfg *epConfig, pkt []byte, at time.Time) {
	s.packets.Add(1)
	s.octets.Add(uint64(len(pkt) - rtpHeaderSize))
	if s.ep.m != nil {
		s.ep.m.tx.Inc()
	}
	if len(cfg.taps) > 0 {
		tapAll(cfg.taps, TapPacket{Flow: Sent, PayloadType: pkt[1] & 0x7F, Marker: pkt[1]&0x80 != 0,
			Sequence: binary.BigEndian.Uint16(pkt[2:]), Timestamp: binary.BigEndian.Uint32(pkt[4:]),
			SSRC: s.ssrc, Payload: pkt[rtpHeaderSize:], At: at})
	}
}

// rtpNow is the outgoing stream's timestamp for the current instant (for RTCP SR, RFC 3550 §6.4.1).
func (s *sender) rtpNow(now time.Time) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ts + uint32(int64(max(now.Sub(s.tsAt), 0))*clockRate/int64(time.Second))
}
