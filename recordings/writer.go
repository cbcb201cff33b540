package recordings

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// Writer records one call (stereo: caller left, agent or far end right) or one voicemail
// message (mono) from RTP taps into a WAV file, 8 kHz 16-bit PCM.
//
// The taps it hands out run on the RTP goroutines: each decides the channel and copies the
// packet into the Writer's queue — chunks of 160 ms of frames from the Service's pool — under
// a mutex held only for the copy, never blocking and never waking anyone: with Options.Buffer
// packets waiting the packet is dropped and counted. A Writer has no goroutine or timer of its
// own: the Service's clock (clock.go) visits every live recording every 100 ms (sooner when a
// chunk fills, as when packets come faster than real time), takes its whole queue at once and
// places the frames in time (see timeline), as G.711 codes (payload type 0 PCMU, 8 PCMA;
// telephone-event, comfort noise and anything else ignored). Every writeInterval it decodes
// and writes what is older than Options.Delay in order — silence where nothing arrived, so
// the file's length is the wall time recorded; every Options.SyncInterval it rewrites the
// header's sizes and the Service's sync worker fsyncs the file, off the clock. A write error
// (a full disk) fails the recording, not the call: the taps stop, the error is counted and
// returned by Finish.
//
// Memory: the ring holds Options.Delay plus writeInterval plus ringSlack of stereo audio as
// G.711 codes (8 kHz × 8 bit × 2 channels, and a bit per sample for the law = 18 KB a second:
// one second, 18 KB, at the default delay), decoded as it is written out; the queue holds one
// chunk (under 3 KiB) between two visits of the clock; the buffer a write is interleaved into
// is borrowed from the Service for the write.
//
// Methods are safe for concurrent use. Finish must be called once the call ends; it stops the
// ticks and writes the rest on the caller's goroutine.
type Writer struct {
	s        *Service
	id       string
	callID   string
	kind     string
	rel      string
	channels int
	start    time.Time

	// The queue of tapped frames (the taps append, the tick takes it whole).
	qmu    sync.Mutex
	qhead  *chunk
	qtail  *chunk
	queued int // frames in the queue, at most Options.Buffer

	// runMu serialises the Service clock's visits (onTick) and the end (Finish).
	runMu sync.Mutex
	ended bool // under runMu

	// fileMu is held by the Service's sync worker around fsync and by whoever closes the file
	// (end, fail) around the close, so that a file is never synced after its close. The clock
	// never waits on it while writing: it only queues the sync (syncQueued) and reads its
	// outcome (syncErr).
	fileMu     sync.Mutex
	syncQueued atomic.Bool
	syncErr    atomic.Pointer[error]

	failed chan struct{} // closed when writing failed

	stopped  atomic.Bool
	paused   atomic.Bool
	deletion atomic.Pointer[deletion] // set by Delete or Discard while recording
	accepted atomic.Uint64
	dropFull atomic.Uint64
	ignored  atomic.Uint64

	// metaMu orders the journal writes of Pause, Resume and Finish (the last one wins); held
	// across local file I/O, never by a tick.
	metaMu   sync.Mutex
	mu       sync.Mutex
	pauses   []Pause
	finished bool

	finishOnce sync.Once
	result     Result
	resultErr  error

	// Owned by whoever holds runMu: the clock's visits, then Finish. file is also read by the
	// sync worker under fileMu: it is set to nil under both.
	lastSync  time.Time
	lastWrite time.Time
	ranges    [][2]int64
	file      *wavFile
	ring      []byte   // G.711 codes inverted (code ^ 0xFF), ringSize × channels; 0 is silence
	alaw      []uint64 // a bit per ring slot: its code is A-law (else μ-law)
	ringSize  int64    // sample frames
	committed int64    // sample frames written to the file
	highest   int64    // end of the latest audio placed
	lines     [2]timeline
	late      uint64
	lateSeen  uint64
	written   int64 // audio bytes in the file
	writeErr  error
}

// deletion says a recording was deleted while it was being written.
type deletion struct {
	at      time.Time
	by      *int64 // nil: the system
	removed bool   // Delete removed the file already
}

// frame is one tapped packet on its way to the ring; its payload is data[off:end]
// of its chunk.
type frame struct {
	ch       Channel
	pt       uint8
	seq      uint16
	ts       uint32
	ssrc     uint32
	off, end uint16
	at       time.Duration // arrival, since the recording's start
}

// chunkFrames frames (160 ms of both directions at 20 ms: more than the writer takes at each
// 100 ms tick) or chunkBytes of payload fill a chunk.
const (
	chunkFrames = 16
	chunkBytes  = chunkFrames * media.FrameSize
)

// chunk is a piece of a Writer's queue. Chunks come from the Service's pool (getChunk): a
// writer holds one between two ticks, more only while its ticks are behind.
type chunk struct {
	next   *chunk
	n      int // frames
	used   int // payload bytes
	frames [chunkFrames]frame
	data   [chunkBytes]byte
}

// Pause is one interval during which recording was paused (e.g. while a card number is read):
// silence in the file. It is kept in the metadata (column pauses) as the audit of who paused.
type Pause struct {
	FromMS    int64      `json:"from_ms"`              // offset in the file
	ToMS      *int64     `json:"to_ms,omitempty"`      // nil while paused
	PausedAt  time.Time  `json:"paused_at"`            // wall time
	ResumedAt *time.Time `json:"resumed_at,omitempty"` // nil while paused
	PausedBy  int64      `json:"paused_by,omitempty"`  // user id, 0 for the system
	ResumedBy int64      `json:"resumed_by,omitempty"` // user id, 0 for the system (or Finish)
}

// Result is what Finish reports about a recording.
type Result struct {
	ID        string
	CallID    string
	Path      string // absolute file path
	Channels  int
	State     State // StateReady, StateFailed, or StateDeleted when deleted while recording
	StartedAt time.Time
	Duration  time.Duration // length of the audio in the file
	Seconds   int64         // Duration rounded to whole seconds (call.recording_ready "seconds")
	Bytes     int64         // file size, header included
	Pauses    []Pause
	Packets   uint64 // tapped audio packets queued for writing
	Dropped   uint64 // tapped audio packets dropped because the writer fell behind
	Late      uint64 // packets (even partly) later than Options.Delay, their late part dropped
	Lost      uint64 // gaps in RTP sequence numbers, both channels
	Ignored   uint64 // packets of other payload types (telephone-event, comfort noise, ...)
}

// Payload types recorded (RFC 3551 §6).
const (
	ptPCMU = 0
	ptPCMA = 8
	// maxPayload bounds a frame's payload (the longest G.711 ptime is far below).
	maxPayload = 1500
	// commitInterval is how often the Service's clock takes each recording's queue and places
	// its frames in the ring.
	commitInterval = 100 * time.Millisecond
	// writeInterval is how often a recording writes what is older than Options.Delay: one
	// write(2) per half second instead of one per tick (BENCHMARKS.md, session 7; the header's
	// pwrite(2) that went with each write goes with the fsync since session 12). It adds to
	// what a SIGKILL can lose.
	writeInterval = 500 * time.Millisecond
	// ringSlack is the ring's room beyond Options.Delay and writeInterval: the clock's
	// interval, a packet ahead of its arrival, and a visit running late. Audio further ahead
	// than the ring holds makes it write out early (place), which only costs packets later
	// than that.
	ringSlack = 200 * time.Millisecond
)

func newWriter(s *Service, id, callID, kind, rel string, channels int, start time.Time, file *wavFile) *Writer {
	w := &Writer{s: s, id: id, callID: callID, kind: kind, rel: rel, channels: channels, start: start,
		failed:    make(chan struct{}),
		lastSync:  start,
		lastWrite: start,
		file:      file,
		ringSize:  s.samples(s.opts.Delay + writeInterval + ringSlack),
	}
	// The ring keeps the codes as they came (a byte a sample, and a bit for the law) and
	// decodes them when it writes them out: half the memory of decoded 16-bit samples.
	w.ring = make([]byte, w.ringSize*int64(channels))
	w.alaw = make([]uint64, (len(w.ring)+63)/64) // all μ-law: the zeroed ring is silence
	resync := s.samples(s.opts.Delay) / 2
	w.lines[0].resync, w.lines[1].resync = resync, resync
	// One packet's worth (20 ms): ahead of that, the anchor was late (see timeline).
	ahead := s.samples(20 * time.Millisecond)
	w.lines[0].ahead, w.lines[1].ahead = ahead, ahead
	return w
}

// ID is the recording's id (a UUID), as in call.recording_ready and GET /recordings/{id}.
func (w *Writer) ID() string { return w.id }

// Path is the file's absolute path.
func (w *Writer) Path() string { return w.s.abs(w.rel) }

// Tap returns a media.Tap for one endpoint: its received packets go to channel received, its
// sent packets to channel sent (None drops that flow). For a call bridged between the carrier
// leg and the agent leg:
//
//	carrier.AddTap(w.CallerTap()) // Tap(Left, None): what the caller says
//	agent.AddTap(w.AgentTap())    // Tap(Right, None): what the agent (far end) says
//
// or carrier.AddTap(w.Tap(Left, Right)) to record what the caller hears (prompts and music
// included) on the right. After a transfer, set AgentTap on the new agent leg: the new SSRC is
// placed by arrival. A voicemail writer is fed with Tap(Mono, None). The tap never blocks.
func (w *Writer) Tap(received, sent Channel) media.Tap {
	if w.channels == 1 {
		if received != None {
			received = Mono
		}
		if sent != None {
			sent = Mono
		}
	}
	return func(p media.TapPacket) {
		ch := received
		if p.Flow == media.Sent {
			ch = sent
		}
		if ch == None || w.stopped.Load() {
			return
		}
		if p.PayloadType != ptPCMU && p.PayloadType != ptPCMA || len(p.Payload) == 0 || len(p.Payload) > maxPayload {
			w.ignored.Add(1)
			return
		}
		if w.paused.Load() {
			return // the paused audio never even reaches memory
		}
		w.enqueue(ch, p)
	}
}

// enqueue copies p into the queue's last chunk (a new one when it is full), or drops it when
// Options.Buffer frames wait already. It allocates only when the Service's pool is empty.
func (w *Writer) enqueue(ch Channel, p media.TapPacket) {
	w.qmu.Lock()
	if w.queued >= w.s.opts.Buffer {
		w.qmu.Unlock()
		w.dropFull.Add(1)
		w.s.metrics().addFull() // an atomic add: fine on the RTP path
		return
	}
	c := w.qtail
	filled := false
	if c == nil || c.n == chunkFrames || chunkBytes-c.used < len(p.Payload) {
		filled = c != nil
		c = w.s.getChunk()
		if w.qtail == nil {
			w.qhead = c
		} else {
			w.qtail.next = c
		}
		w.qtail = c
	}
	end := c.used + copy(c.data[c.used:], p.Payload)
	c.frames[c.n] = frame{ch: ch, pt: p.PayloadType, seq: p.Sequence, ts: p.Timestamp, ssrc: p.SSRC,
		off: uint16(c.used), end: uint16(end), at: p.At.Sub(w.start)}
	c.n++
	c.used = end
	w.queued++
	w.qmu.Unlock()
	if filled { // faster than real time: let the clock come before its time
		w.s.kick()
	}
}

// takeQueue removes the whole queue (runMu held).
func (w *Writer) takeQueue() *chunk {
	w.qmu.Lock()
	c := w.qhead
	w.qhead, w.qtail, w.queued = nil, nil, 0
	w.qmu.Unlock()
	return c
}

// drain places every queued frame and returns the chunks to the Service's pool.
func (w *Writer) drain(ranges *[][2]int64) {
	for c := w.takeQueue(); c != nil; {
		w.accepted.Add(uint64(c.n)) // counted here, a chunk at a time, not by the tap a packet at a time
		for i := range c.n {
			w.place(&c.frames[i], c.data[c.frames[i].off:c.frames[i].end], ranges)
		}
		next := c.next
		w.s.putChunk(c)
		c = next
	}
}

// CallerTap is Tap(Left, None): for the carrier (caller's) endpoint.
func (w *Writer) CallerTap() media.Tap { return w.Tap(Left, None) }

// AgentTap is Tap(Right, None): for the agent's (or far end's) endpoint.
func (w *Writer) AgentTap() media.Tap { return w.Tap(Right, None) }

// Pause stops recording audio (silence in the file) until Resume; by is the user asking (0 for
// the system). The interval is kept in the metadata. Pausing while paused does nothing.
func (w *Writer) Pause(ctx context.Context, by int64) error {
	return w.setPaused(ctx, true, by)
}

// Resume records audio again after Pause.
func (w *Writer) Resume(ctx context.Context, by int64) error {
	return w.setPaused(ctx, false, by)
}

func (w *Writer) setPaused(_ context.Context, pause bool, by int64) error {
	w.metaMu.Lock()
	defer w.metaMu.Unlock()
	w.mu.Lock()
	if w.finished {
		w.mu.Unlock()
		return ErrFinished
	}
	if w.paused.Load() == pause {
		w.mu.Unlock()
		return nil
	}
	now := w.s.now()
	ms := now.Sub(w.start).Milliseconds()
	if pause {
		w.pauses = append(w.pauses, Pause{FromMS: ms, PausedAt: now.UTC(), PausedBy: by})
	} else {
		p := &w.pauses[len(w.pauses)-1]
		t := now.UTC()
		p.ToMS, p.ResumedAt, p.ResumedBy = &ms, &t, by
	}
	w.paused.Store(pause)
	pauses := append([]Pause(nil), w.pauses...)
	w.mu.Unlock()
	// The audit of the pause reaches the database in the background (journal.go).
	if err := w.s.journalAppend(w.row(StateRecording, pauses), nil); err != nil {
		return fmt.Errorf("recordings: save pauses of %s: %w", w.id, err)
	}
	return nil
}

// row is the recording's metadata row in state st with pauses (durations, sizes and times of
// the end are the caller's).
func (w *Writer) row(st State, pauses []Pause) Recording {
	return Recording{ID: w.id, CallID: w.callID, Kind: w.kind, Node: w.s.opts.Node, Path: w.rel, State: st,
		Channels: w.channels, StartedAt: w.start.UTC(), Pauses: pauses}
}

// pauseRanges returns the paused intervals in sample frames (an open one ends at the far future).
func (w *Writer) pauseRanges(dst [][2]int64) [][2]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pauses {
		to := int64(1 << 62)
		if p.ToMS != nil {
			to = *p.ToMS * SampleRate / 1000
		}
		dst = append(dst, [2]int64{p.FromMS * SampleRate / 1000, to})
	}
	return dst
}

// Finish ends the recording at the current time: the buffered audio is written, silence pads it
// to the wall time, the header is finalised and the file closed and synced; then the metadata
// row — ready (or failed) with duration and size — is journaled and written to the database in
// the background (inserted complete if the database never saw the recording start). It never
// waits on the database: the Result and its ID are good for call.recording_ready at once.
// Calling it again returns the same result.
//
// The error is non-nil when the recording failed (it wraps ErrWrite and the cause, e.g.
// syscall.ENOSPC; Result.State is StateFailed and the gateway should note it on the ticket) or
// when the final metadata could not even be journaled (Result.State is then the file's state,
// and Repair at the next start-up completes the row). The call itself is never affected. ctx
// is not used for waiting.
func (w *Writer) Finish(ctx context.Context) (Result, error) {
	w.finishOnce.Do(func() {
		w.stopped.Store(true)
		end := w.s.now()
		w.mu.Lock()
		w.finished = true
		if n := len(w.pauses); n > 0 && w.pauses[n-1].ToMS == nil {
			ms, t := end.Sub(w.start).Milliseconds(), end.UTC()
			w.pauses[n-1].ToMS, w.pauses[n-1].ResumedAt = &ms, &t
		}
		pauses := append([]Pause(nil), w.pauses...)
		w.mu.Unlock()
		w.end(end)
		w.s.metrics().addActive(-1)
		w.metaMu.Lock()
		w.result, w.resultErr = w.s.finish(w, pauses)
		w.metaMu.Unlock()
		// Only now, with its final row journaled, is it no longer live: a Repair meanwhile
		// must not take it for a recording a dead process left.
		w.s.forget(w)
	})
	return w.result, w.resultErr
}

// Discard finishes the recording and throws it away, as the system (a voicemail message too
// short to keep, or left before it counted): the file is removed and the row says deleted.
// Like Finish it never waits on the database. After Finish it does nothing more than Finish.
func (w *Writer) Discard() (Result, error) {
	w.deletion.CompareAndSwap(nil, &deletion{at: w.s.now()})
	return w.Finish(context.Background())
}

// onTick is one visit of the Service's clock: it takes the queue and places it; every
// writeInterval it writes what is older than Options.Delay; every Options.SyncInterval it
// rewrites the header and queues the file for the sync worker. It reports false once the
// recording ended (the clock drops it).
func (w *Writer) onTick(now time.Time) bool {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	if w.ended {
		return false
	}
	w.drain(&w.ranges)
	if errp := w.syncErr.Load(); errp != nil {
		w.fail(*errp)
	}
	if now.Sub(w.lastWrite) < writeInterval {
		return true
	}
	w.lastWrite = now
	w.commit(w.s.samples(now.Sub(w.start)-w.s.opts.Delay), &w.ranges)
	if w.file == nil {
		return true
	}
	// The header's sizes are rewritten only with an fsync, just before it is queued, so the
	// fsync makes them durable with the audio they declare: what a power loss keeps is a
	// consistent file. After a SIGKILL the file holds every byte written (the page cache
	// survives the process) under a header up to Options.SyncInterval behind, which Repair
	// makes exact at the next start; a live file is never served. Until session 12 the header
	// followed every write: a pwrite(2) a recording every half second, 0.5–1 % of the core at
	// 1,000 recorded calls (BENCHMARKS.md, session 12).
	if now.Sub(w.lastSync) >= w.s.opts.SyncInterval && w.syncQueued.CompareAndSwap(false, true) {
		if err := w.file.writeHeader(); err != nil {
			w.syncQueued.Store(false)
			w.fail(err)
			return true
		}
		w.lastSync = now
		w.s.queueSync(w)
	}
	return true
}

// syncFile fsyncs the file for the Service's sync worker, unless it was closed meanwhile; a
// failure is left for the next visit of the clock to fail the recording with.
func (w *Writer) syncFile() {
	w.fileMu.Lock()
	f := w.file
	var err error
	if f != nil && !f.closed {
		err = f.fsync()
	}
	w.fileMu.Unlock()
	if err != nil {
		w.syncErr.CompareAndSwap(nil, &err)
	}
	w.syncQueued.Store(false)
}

// end stops the ticks and writes everything up to end: the taps stopped (Finish set stopped
// first), so the queue holds all there is.
func (w *Writer) end(end time.Time) {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	w.ended = true
	w.drain(&w.ranges)
	if errp := w.syncErr.Load(); errp != nil {
		w.fail(*errp)
	}
	w.commit(max(w.s.samples(end.Sub(w.start)), w.highest), &w.ranges)
	if w.file != nil {
		w.fileMu.Lock()
		err := w.file.close()
		w.fileMu.Unlock()
		if err != nil {
			w.fail(err)
		}
	}
}

// place decodes a frame with payload data into the ring at its position in time.
func (w *Writer) place(f *frame, data []byte, ranges *[][2]int64) {
	ci := int(f.ch) - 1
	if ci >= w.channels {
		ci = w.channels - 1
	}
	arr := w.s.samples(f.at)
	pos := w.lines[ci].place(f.ssrc, f.seq, f.ts, arr, w.committed)
	n := int64(len(data))
	end := pos + n
	if end > w.committed+w.ringSize {
		// Further ahead than the ring holds (a clock jump, or a test feeding packets faster
		// than real time): write out what must make room.
		w.commit(end-w.ringSize, ranges)
	}
	from := max(pos, w.committed)
	if from > pos {
		w.late++
		w.s.metrics().addLate()
	}
	alaw := f.pt == ptPCMA
	ch := int64(w.channels)
	// The frames [from, end) are one run of ring slots, or two when they wrap: each run is a
	// strided copy, with no division per sample (this loop was 9 % of the gateway's CPU at
	// 1,000 recorded calls when it computed the slot and the law bit sample by sample;
	// BENCHMARKS.md, session 8).
	for p := from; p < end; {
		slot := p % w.ringSize
		run := min(end-p, w.ringSize-slot)
		first := slot*ch + int64(ci)
		src := data[p-pos : p-pos+run]
		if ch == 1 {
			dst := w.ring[first : first+run]
			for k, c := range src {
				dst[k] = ^c
			}
		} else {
			interleave(w.ring[first:], src)
		}
		w.setLaw(first, first+(run-1)*ch+1, ch, alaw)
		p += run
	}
	w.highest = max(w.highest, end)
}

// interleave writes src's codes inverted into every other byte of dst from dst[0] (one channel
// of the stereo ring): four codes a 64-bit read-modify-write that keeps the other channel's
// bytes, the rest one at a time. dst holds 2×len(src)−1 bytes at least; a word reaches one byte
// further (the other channel's, kept) only where dst has it. Until session 12 this was a store
// a code, each with its bounds check (BENCHMARKS.md, session 12).
func interleave(dst, src []byte) {
	k := 0
	for ; k+4 <= len(src) && 2*k+8 <= len(dst); k += 4 {
		x := uint64(binary.LittleEndian.Uint32(src[k:]))
		x = (x | x<<16) & 0x0000FFFF0000FFFF // codes 0, 1, 2, 3 at bytes 0, 1, 4, 5
		x = (x | x<<8) & 0x00FF00FF00FF00FF  // … at bytes 0, 2, 4, 6
		d := dst[2*k : 2*k+8]
		binary.LittleEndian.PutUint64(d, (binary.LittleEndian.Uint64(d)&0xFF00FF00FF00FF00)|(x^0x00FF00FF00FF00FF))
	}
	for ; k < len(src); k++ {
		dst[2*k] = ^src[k]
	}
}

// setLaw marks the ring slots first, first+stride, … below last as A-law (alaw) or μ-law. The
// rule — μ-law on slots whose bits are clear already (silence clears them) — tests a word of
// bits at a time and writes nothing.
func (w *Writer) setLaw(first, last, stride int64, alaw bool) {
	if !alaw {
		clean := true
		for i := first / 64; i <= (last-1)/64; i++ {
			if w.alaw[i] != 0 {
				clean = false
				break
			}
		}
		if clean {
			return
		}
	}
	for i := first; i < last; i += stride {
		if alaw {
			w.alaw[i/64] |= 1 << (i % 64)
		} else {
			w.alaw[i/64] &^= 1 << (i % 64)
		}
	}
}

// silence clears ring slots [from, to): an inverted μ-law 0xFF, the positive zero of ITU-T
// G.711, is a zero byte, so silence is memclr and the law bits cleared a word at a time.
func (w *Writer) silence(from, to int64) {
	clear(w.ring[from:to])
	for i := from; i < to; {
		if i%64 == 0 && to-i >= 64 {
			w.alaw[i/64] = 0
			i += 64
			continue
		}
		w.alaw[i/64] &^= 1 << (i % 64)
		i++
	}
}

// decodeTables are G.711's 256 codes decoded to 16-bit samples (their two's-complement bits),
// indexed by the inverted code the ring keeps: μ-law first, A-law second. Filled once by
// newDecodeTables, read only.
type decodeTables [2][256]uint16

func newDecodeTables() *decodeTables {
	t := new(decodeTables)
	for c := range 256 {
		t[0][c] = uint16(media.DecodeULaw(^byte(c)))
		t[1][c] = uint16(media.DecodeALaw(^byte(c)))
	}
	return t
}

// appendSamples appends ring slots [from, to) decoded as 16-bit little-endian PCM and clears
// them. The law is looked up a word of bits (64 slots) at a time: a word of one law — the rule,
// a call's legs speak one codec — is decoded eight slots at a time through that law's table
// (decodeRun); only a word mixing both laws takes its table sample by sample. Until session 12
// every sample was a store of its own, and only μ-law words skipped the test per sample
// (BENCHMARKS.md, session 12).
func (w *Writer) appendSamples(out []byte, from, to int64) []byte {
	tabs := w.s.g711
	n, size := len(out), int(2*(to-from))
	out = slices.Grow(out, size)[:n+size] // every byte is written below: no clearing
	o := out[n:]
	for i := from; i < to; {
		end := min(to, (i/64+1)*64)
		mask := uint64(1)<<(end-i) - 1 // end-i is 64 at most: 1<<64 is 0, the mask all ones
		word := w.alaw[i/64] >> (i % 64) & mask
		src, dst := w.ring[i:end], o[2*(i-from):2*(end-from)]
		switch word {
		case 0:
			decodeRun(dst, src, &tabs[0])
		case mask:
			decodeRun(dst, src, &tabs[1])
		default:
			for k, c := range src {
				binary.LittleEndian.PutUint16(dst[2*k:], tabs[word&1][c])
				word >>= 1
			}
		}
		i = end
	}
	w.silence(from, to)
	return out
}

// decodeRun decodes the codes of src into dst (2 bytes each, little-endian) through one law's
// table: eight codes read as one word and written as two.
func decodeRun(dst, src []byte, t *[256]uint16) {
	for len(src) >= 8 && len(dst) >= 16 {
		v := binary.LittleEndian.Uint64(src)
		binary.LittleEndian.PutUint64(dst, uint64(t[byte(v)])|uint64(t[byte(v>>8)])<<16|
			uint64(t[byte(v>>16)])<<32|uint64(t[byte(v>>24)])<<48)
		binary.LittleEndian.PutUint64(dst[8:], uint64(t[byte(v>>32)])|uint64(t[byte(v>>40)])<<16|
			uint64(t[byte(v>>48)])<<32|uint64(t[byte(v>>56)])<<48)
		src, dst = src[8:], dst[16:]
	}
	for k, c := range src {
		binary.LittleEndian.PutUint16(dst[2*k:], t[c])
	}
}

// commitChunk bounds one write (sample frames): a second, twice writeInterval, so a visit
// writes once even when it runs late (at half a second, a visit a tick late wrote twice: 4
// writes a second instead of 2); the buffer is borrowed from the Service for the write
// (getOut), not held.
const commitChunk = SampleRate

// commit writes the ring's audio up to position target (exclusive) to the file, silencing the
// paused intervals, and clears what it wrote.
func (w *Writer) commit(target int64, ranges *[][2]int64) {
	if target <= w.committed {
		return
	}
	*ranges = w.pauseRanges((*ranges)[:0])
	outp := w.s.getOut()
	defer w.s.putOut(outp)
	out := *outp
	for w.committed < target {
		n := min(target-w.committed, commitChunk)
		ch := int64(w.channels)
		for _, r := range *ranges {
			for p := max(r[0], w.committed); p < min(r[1], w.committed+n); p++ {
				i := (p % w.ringSize) * ch
				w.silence(i, i+ch)
			}
		}
		out = out[:0]
		// The frames [committed, committed+n) are one run of ring slots, or two when they wrap.
		for p, end := w.committed, w.committed+n; p < end; {
			run := min(end-p, w.ringSize-p%w.ringSize)
			i := (p % w.ringSize) * ch
			out = w.appendSamples(out, i, i+run*ch)
			p += run
		}
		*outp = out
		w.committed += n
		if w.file == nil {
			continue // failed: keep time moving, write nothing
		}
		if err := w.file.write(out); err != nil {
			w.fail(err)
			continue
		}
		w.written = w.file.size
		w.s.metrics().addBytes(len(out))
	}
}

// fail ends writing after an error: the taps stop, the file is closed with the best header it
// can get, and the error is counted now (Finish reports it).
func (w *Writer) fail(err error) {
	if w.writeErr != nil {
		return
	}
	w.writeErr = fmt.Errorf("%w: %w", ErrWrite, err)
	w.stopped.Store(true)
	w.s.metrics().addError() // counted before anyone is told: a watcher reads the count next
	close(w.failed)
	if w.file != nil {
		w.written = w.file.size
		w.fileMu.Lock()
		if !w.file.closed {
			_ = w.file.close() // the header rewrite needs no new blocks: it often succeeds on a full disk
		}
		w.file = nil
		w.fileMu.Unlock()
	}
}
