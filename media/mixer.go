package media

import (
	"errors"
	"sync"
	"time"
)

// Mixer joins several endpoints into one conversation with N-1 mixing: every 20 ms its one
// goroutine takes a frame of each member's received audio (G.711 decoded to 16-bit linear),
// and sends each member that takes its audio from the mixer (MemberOptions.Send) the sum of
// the others it may hear, clipped and encoded in that member's codec — never its own voice.
// Who hears whom is per member (MemberOptions.HeardBy): a supervisor who monitors is heard
// by nobody, one who whispers only by the agent, one who barges by everyone.
//
// Members keep what they had: a member that does not Send keeps its Bridge (a caller and an
// agent keep hearing each other directly while a supervisor listens), and the mixer's stream
// on a member that Sends overrides its bridge like Play does, on the endpoint's continuous
// outgoing stream (re-based on the switch, so SRTP replay protection never sees a jump back).
// A Play or SendDTMF started later (music on hold) overrides the mixer in turn.
//
// Audio is taken with a tap on each member's endpoint (Received flow, audio payload type
// only): the reader goroutine copies the payload's samples into the member's small FIFO
// (mixFIFO, at most mixMaxQueue of audio; older samples are dropped so the delay stays
// bounded), and the mix goroutine reads one frame of each FIFO per tick, silence when it ran
// dry. Nothing is allocated per packet or per tick: FIFOs, the linear buffers and the frame
// being encoded belong to the member and the mixer.
//
// The mixer knows nothing of calls: the caller decides who is a member and who hears whom.
type Mixer struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	members []*MixMember // guarded by mu; replaced, never changed in place
	closed  bool
	nextBit uint64

	// The mix goroutine's own buffers (one per tick, reused).
	frames [][FrameSize]int16
	heard  []uint64
	bits   []uint64
	send   []bool
	idBuf  []uint64
	mix    [FrameSize]int32
	pcm    [FrameSize]int16
	enc    [FrameSize]byte
}

// Mixer limits.
const (
	// MaxMixMembers is how many endpoints one Mixer joins at most (who hears whom is a bit
	// mask).
	MaxMixMembers = 16
	// mixMaxQueue is how much received audio a member's FIFO keeps (samples): 120 ms. A peer
	// sending faster than the mixer reads (clock drift, a burst after a stall) loses its
	// oldest samples instead of growing the delay.
	mixMaxQueue = 6 * FrameSize
)

// Errors of the Mixer.
var (
	// ErrMixerFull is returned by Add when the mixer has MaxMixMembers members.
	ErrMixerFull = errors.New("media: mixer full")
	// ErrMixerClosed is returned by Add on a closed mixer.
	ErrMixerClosed = errors.New("media: mixer closed")
)

// HeardBy says who hears a member.
type HeardBy uint8

const (
	HeardByAll    HeardBy = iota // every other member hears it (a conference party, a barge)
	HeardByNobody                // nobody hears it (a supervisor who monitors)
	HeardByOne                   // only MemberOptions.Listener hears it (a whisper)
)

// MemberOptions is a member's place in the mix; Set changes it live.
type MemberOptions struct {
	// Send: the member hears the mix (the mixer writes its endpoint's outgoing stream).
	// Without it the member only speaks into the mix and hears whatever else feeds its
	// endpoint (a bridge).
	Send bool
	// HeardBy: who hears the member.
	HeardBy HeardBy
	// Listener is the one member who hears it with HeardByOne.
	Listener *MixMember
}

// MixMember is one endpoint in a Mixer.
type MixMember struct {
	m   *Mixer
	ep  *Endpoint
	bit uint64

	// opts and srcID are guarded by m.mu.
	opts  MemberOptions
	srcID uint64 // the override source on ep's stream while Send; 0 otherwise
	seq   uint16 // mix goroutine only
	ts    uint32 // mix goroutine only

	untap func()
	fifo  mixFIFO
}

// NewMixer starts a mixer's goroutine, which mixes a frame (FrameSize samples) every
// FrameDuration; Close stops it.
func NewMixer() *Mixer {
	m := newMixer()
	go m.run()
	return m
}

// newMixer builds a mixer whose goroutine is not started yet.
func newMixer() *Mixer {
	return &Mixer{stop: make(chan struct{}), done: make(chan struct{}),
		frames: make([][FrameSize]int16, 0, MaxMixMembers), heard: make([]uint64, 0, MaxMixMembers),
		send: make([]bool, 0, MaxMixMembers), idBuf: make([]uint64, 0, MaxMixMembers), bits: make([]uint64, 0, MaxMixMembers)}
}

// Add makes ep a member. The member's audio is mixed from the next tick on; it hears the mix
// from then on when o.Send. It returns ErrMixerFull, ErrMixerClosed, or ErrClosed (ep closed).
// An endpoint may be a member of one mixer at a time.
func (m *Mixer) Add(ep *Endpoint, o MemberOptions) (*MixMember, error) {
	if ep == nil {
		return nil, errors.New("media: mixer: nil endpoint")
	}
	if ep.closed.Load() {
		return nil, ErrClosed
	}
	mm := &MixMember{m: m, ep: ep}
	// The tap is installed before the member is published: Remove (from Close on another
	// goroutine) may run as soon as it is in the list, and finds untap set. Samples the tap
	// queues meanwhile are only the first frame's.
	mm.untap = ep.AddTap(mm.tap)
	m.mu.Lock()
	if m.closed || len(m.members) >= MaxMixMembers {
		err := ErrMixerClosed
		if !m.closed {
			err = ErrMixerFull
		}
		m.mu.Unlock()
		mm.untap()
		return nil, err
	}
	var used uint64
	for _, x := range m.members {
		used |= x.bit
	}
	for b := uint64(1); b != 0; b <<= 1 {
		if used&b == 0 {
			mm.bit = b
			break
		}
	}
	mm.setLocked(o)
	m.members = append(append(make([]*MixMember, 0, len(m.members)+1), m.members...), mm)
	m.mu.Unlock()
	return mm, nil
}

// Set changes the member's place in the mix (whisper → barge) at once.
func (mm *MixMember) Set(o MemberOptions) {
	mm.m.mu.Lock()
	defer mm.m.mu.Unlock()
	if mm.bit == 0 {
		return // removed
	}
	mm.setLocked(o)
}

// setLocked applies o (m.mu held): starting to Send pushes the mixer's source onto the
// endpoint's stream (overriding its bridge), stopping pops it (the bridge is heard again).
func (mm *MixMember) setLocked(o MemberOptions) {
	if o.Send && mm.srcID == 0 {
		mm.srcID = mm.ep.out.push()
	} else if !o.Send && mm.srcID != 0 {
		mm.ep.out.pop(mm.srcID)
		mm.srcID = 0
	}
	mm.opts = o
}

// Endpoint is the member's endpoint.
func (mm *MixMember) Endpoint() *Endpoint { return mm.ep }

// Remove takes the member out of the mix: its audio is no longer heard, its endpoint's
// stream returns to what fed it before (its bridge), and members who heard only it (a
// whisper's listener) hear nobody through it. Idempotent.
func (mm *MixMember) Remove() {
	m := mm.m
	m.mu.Lock()
	if mm.bit == 0 {
		m.mu.Unlock()
		return
	}
	mm.setLocked(MemberOptions{})
	mm.bit = 0
	kept := make([]*MixMember, 0, len(m.members))
	for _, x := range m.members {
		if x != mm {
			kept = append(kept, x)
		}
	}
	m.members = kept
	m.mu.Unlock()
	mm.untap()
}

// Members returns how many members the mixer has.
func (m *Mixer) Members() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.members)
}

// Close removes every member and stops the goroutine; it returns once the goroutine has
// ended, so nothing is written after it. Idempotent.
func (m *Mixer) Close() {
	m.once.Do(func() {
		m.mu.Lock()
		m.closed = true
		members := m.members
		m.mu.Unlock()
		close(m.stop)
		<-m.done
		for _, mm := range members {
			mm.Remove()
		}
	})
}

// tap copies a received audio packet's samples into the member's FIFO (reader goroutine).
func (mm *MixMember) tap(p TapPacket) {
	if p.Flow != Received {
		return
	}
	cfg := mm.ep.cfg.Load()
	if cfg.codec == CodecNone || p.PayloadType != cfg.codecPT {
		return // telephone-events, comfort noise, or no codec yet
	}
	mm.fifo.write(p.Payload, cfg.codec)
}

func (m *Mixer) run() {
	defer close(m.done)
	t := time.NewTicker(FrameDuration)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.tick(now)
		}
	}
}

// tick mixes and sends one frame (mix goroutine). The member list is read under m.mu, then
// each member's frame is decoded and mixed without it; the writes take each endpoint's own
// sender lock, never m.mu, so Set and Remove never wait for a send.
func (m *Mixer) tick(now time.Time) {
	m.mu.Lock()
	members := m.members // never changed in place
	m.heard, m.send, m.bits = m.heard[:0], m.send[:0], m.bits[:0]
	for _, mm := range members {
		m.bits = append(m.bits, mm.bit) // Remove zeroes it: read under m.mu only
		var h uint64
		switch mm.opts.HeardBy {
		case HeardByAll:
			h = ^mm.bit
		case HeardByOne:
			if l := mm.opts.Listener; l != nil {
				h = l.bit
			}
		}
		m.heard = append(m.heard, h)
		m.send = append(m.send, mm.srcID != 0)
	}
	ids := m.idsLocked(members)
	m.mu.Unlock()
	m.frames = m.frames[:len(members)]
	for i, mm := range members {
		mm.fifo.read(&m.frames[i])
	}
	for i, mm := range members {
		if !m.send[i] || ids[i] == 0 {
			continue
		}
		m.mix = [FrameSize]int32{}
		for j := range members {
			if j == i || m.heard[j]&m.bits[i] == 0 {
				continue
			}
			f := &m.frames[j]
			for k := range m.mix {
				m.mix[k] += int32(f[k])
			}
		}
		for k, v := range m.mix {
			m.pcm[k] = int16(min(max(v, -32768), 32767))
		}
		cfg := mm.ep.cfg.Load()
		if cfg.codec == CodecNone {
			continue
		}
		cfg.codec.Encode(m.enc[:], m.pcm[:])
		mm.seq++
		mm.ts += FrameSize
		mm.ep.out.write(ids[i], rtpHeader{seq: mm.seq, timestamp: mm.ts, ssrc: uint32(m.bits[i])}, m.enc[:], kindAudio, CodecNone, now, nil)
	}
}

// idsLocked returns each member's send source id in the mixer's reused array (m.mu held).
func (m *Mixer) idsLocked(members []*MixMember) []uint64 {
	ids := m.idBuf[:0]
	for _, mm := range members {
		ids = append(ids, mm.srcID)
	}
	m.idBuf = ids
	return ids
}

// mixFIFO is a member's received audio, linear, between its reader goroutine and the mixer.
type mixFIFO struct {
	mu   sync.Mutex
	buf  [mixMaxQueue]int16
	head int // index of the oldest sample
	n    int // samples queued
}

// write appends payload's samples, dropping the oldest beyond mixMaxQueue.
func (f *mixFIFO) write(payload []byte, c Codec) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(payload) > mixMaxQueue {
		payload = payload[len(payload)-mixMaxQueue:]
	}
	if drop := f.n + len(payload) - mixMaxQueue; drop > 0 {
		f.head = (f.head + drop) % mixMaxQueue
		f.n -= drop
	}
	w := (f.head + f.n) % mixMaxQueue
	for _, b := range payload {
		if c == PCMA {
			f.buf[w] = DecodeALaw(b)
		} else {
			f.buf[w] = DecodeULaw(b)
		}
		w++
		if w == mixMaxQueue {
			w = 0
		}
	}
	f.n += len(payload)
}

// read takes one frame into dst, silence where the FIFO ran dry.
func (f *mixFIFO) read(dst *[FrameSize]int16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := min(f.n, FrameSize)
	for i := range k {
		dst[i] = f.buf[f.head]
		f.head++
		if f.head == mixMaxQueue {
			f.head = 0
		}
	}
	f.n -= k
	for i := k; i < FrameSize; i++ {
		dst[i] = 0
	}
}

// BridgedTo returns the endpoint ep is bridged with (Bridge), or nil when it is not bridged
// now (on hold, or never). A supervisor's mix finds the agent's side of a call through it,
// whatever kind of leg the agent answered on.
func BridgedTo(ep *Endpoint) *Endpoint {
	if ep == nil {
		return nil
	}
	if l := ep.bridge.Load(); l != nil {
		return l.peer
	}
	return nil
}

// Closed reports whether Close was called on the endpoint.
func (e *Endpoint) Closed() bool { return e.closed.Load() }
