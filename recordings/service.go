package recordings

import (
	"context"
	"errors"
	"fmt"
	"github.com/switchboard-voice/switchboard/media"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Service starts recordings and keeps their files and metadata: one per process, shared by
// every call. It serves and deletes them over HTTP (Register), repairs them after a crash
// (Repair) and applies retention (Retention).
type Service struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	active map[string]*Writer // by id
	// The metadata writer (journal.go): started on first use, stopped by Close.
	closed  bool
	wcancel context.CancelFunc
	wdone   chan struct{}

	queue    chan *entry   // durable journal entries for the metadata writer (bounded)
	scanKick chan struct{} // wakes the writer to rescan the journal
	needScan atomic.Bool

	jmu        sync.Mutex     // the per-recording journal files and the counts; never held across a database call
	pending    int            // per-recording journal files (rows the database has not confirmed)
	pendingIDs map[string]int // recordings with changes in the log not yet written, and how many
	// unwritten is the last row this process journaled of each recording in pendingIDs: what
	// Recording answers while the database still holds an older one (a recording finished a
	// moment ago, whose ticket link is followed before its ready row is written).
	unwritten map[string]Recording
	scanned   bool          // the writer has scanned the journal once
	jzero     chan struct{} // closed while nothing is pending && scanned

	jl        jlog       // this process's journal log (journallog.go)
	foreignMu sync.Mutex // taking over dead processes' segments; held across their database writes

	// What the writers borrow (writer.go): queue chunks, held from a tap's copy to the writer
	// goroutine's next wake-up, and the buffer a write is interleaved into, held for the write.
	chunks sync.Pool // *chunk
	outs   sync.Pool // *[]byte
	g711   *decodeTables

	clock diskClock // visits every live recording (clock.go)
}

func (s *Service) getChunk() *chunk { return s.chunks.Get().(*chunk) }

// putChunk returns an emptied chunk to the pool.
func (s *Service) putChunk(c *chunk) {
	c.next, c.n, c.used = nil, 0, 0
	s.chunks.Put(c)
}

func (s *Service) getOut() *[]byte  { return s.outs.Get().(*[]byte) }
func (s *Service) putOut(b *[]byte) { s.outs.Put(b) }

// Kinds of recording (column kind).
const (
	kindCall      = "call"
	kindVoicemail = "voicemail"
)

// KindVoicemail is the Kind of a voicemail message's recording (Recording.Kind,
// Repaired.Kind); a call's recording is "call".
const KindVoicemail = kindVoicemail

// New checks opts, applies the defaults and returns the Service. It starts nothing: the
// metadata writer goroutine starts with the first recording (or Flush); Close stops it.
func New(opts Options) (*Service, error) {
	if opts.Dir == "" {
		return nil, errors.New("recordings: new: no directory")
	}
	if opts.DB == nil {
		return nil, errors.New("recordings: new: no database")
	}
	if opts.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("recordings: new: host name for the node: %w", err)
		}
		opts.Node = h
	}
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StartPoint == "" {
		opts.StartPoint = StartAtAnswer
	}
	if opts.StartPoint != StartAtAnswer && opts.StartPoint != StartAtCallStart {
		return nil, fmt.Errorf("recordings: new: start point %q: use answer or call_start", opts.StartPoint)
	}
	if opts.Delay <= 0 {
		opts.Delay = DefaultDelay
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.MetadataRetry <= 0 {
		opts.MetadataRetry = DefaultMetadataRetry
	}
	if opts.MetadataQueue <= 0 {
		opts.MetadataQueue = DefaultMetadataQueue
	}
	if opts.MetadataBatch <= 0 {
		opts.MetadataBatch = DefaultMetadataBatch
	}
	if opts.MetadataWindow <= 0 {
		opts.MetadataWindow = DefaultMetadataWindow
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("recordings: new: %w", err)
	}
	opts.Dir = dir
	s := &Service{opts: opts, log: log, active: map[string]*Writer{},
		queue: make(chan *entry, opts.MetadataQueue), scanKick: make(chan struct{}, 1),
		jzero: make(chan struct{}), pendingIDs: map[string]int{}, unwritten: map[string]Recording{}}
	s.jl.cond.L = &s.jl.mu
	s.clock.timer = time.AfterFunc(time.Hour, s.onClock)
	s.clock.timer.Stop() // armed by the first recording
	s.chunks.New = func() any { return new(chunk) }
	s.g711 = newDecodeTables()
	s.outs.New = func() any {
		b := make([]byte, 0, commitChunk*2*BitsPerSample/8) // stereo at most
		return &b
	}
	return s, nil
}

// StartPoint is when the gateway should call Start for a call (config recordings.start).
func (s *Service) StartPoint() StartPoint { return s.opts.StartPoint }

// Start begins recording a call (stereo) now: it creates the file, journals the metadata row
// (state recording) and starts the writer goroutine. It never waits on the database: the row
// is written in the background (see Flush), so the id is valid at once for events even while
// PostgreSQL is unreachable. Attach the taps (Writer.Tap) to the call's endpoints, and call
// Finish when the call ends. An error (no file could be created) means nothing is recorded;
// the call goes on. ctx is not used for waiting: starting is local disk work only.
func (s *Service) Start(ctx context.Context, callID string) (*Writer, error) {
	return s.start(ctx, callID, kindCall, 2)
}

// StartCall is Start for a call recorded from the customer's endpoint (the Recorder of the
// SIP layer): tap records what that endpoint receives (the customer) on the left and what it
// sends (the agent, the far end, prompts and music) on the right; finish is Finish, returning
// the recording's id and whole seconds for call.recording_ready.
func (s *Service) StartCall(ctx context.Context, callID string) (tap media.Tap, finish func(context.Context) (string, int64, error), err error) {
	w, err := s.Start(ctx, callID)
	if err != nil {
		return nil, nil, err
	}
	return w.Tap(Left, Right), func(ctx context.Context) (string, int64, error) {
		res, err := w.Finish(ctx)
		if err != nil {
			return "", 0, err
		}
		return res.ID, res.Seconds, nil
	}, nil
}

// StartVoicemail begins recording a voicemail message (mono, Tap(Mono, None)) for the call,
// stored as <call id>-voicemail.wav; otherwise as Start.
func (s *Service) StartVoicemail(ctx context.Context, callID string) (*Writer, error) {
	return s.start(ctx, callID, kindVoicemail, 1)
}

func (s *Service) start(_ context.Context, callID, kind string, channels int) (*Writer, error) {
	if callID == "" {
		return nil, errors.New("recordings: start: empty call id")
	}
	id := uuid.NewString()
	at := s.now()
	suffix := ""
	if kind == kindVoicemail {
		suffix = "-voicemail"
	}
	file, rel, dirs, err := createUnique(s.opts.FS, s.opts.Dir, callID, suffix, at, channels)
	if err != nil {
		s.metrics().addError()
		return nil, fmt.Errorf("recordings: start %s: %w: %w", callID, ErrWrite, err)
	}
	w := newWriter(s, id, callID, kind, rel, channels, at, file)
	// Active before its journal entry exists, so that a Repair running meanwhile never takes
	// a live recording for one a dead process left. From the journal entry on, a crash leaves
	// a row to write (Repair) rather than a file nobody knows: the entry's group commit fsyncs
	// the file's directory first, so a row that names the file names one a power loss keeps
	// (perhaps empty: Repair gives it its header back).
	s.mu.Lock()
	s.active[id] = w
	s.mu.Unlock()
	if err := s.journalAppend(w.row(StateRecording, nil), dirs); err != nil {
		s.forget(w)
		s.metrics().addError()
		file.f.Close()
		_ = s.opts.FS.Remove(file.path)
		return nil, fmt.Errorf("recordings: start %s: %w: %w", callID, ErrWrite, err)
	}
	s.metrics().addActive(1)
	w.startClock()
	return w, nil
}

// finish builds a finished writer's Result and journals its final metadata row (written to
// the database in the background).
func (s *Service) finish(w *Writer, pauses []Pause) (Result, error) {
	block := int64(w.channels * BitsPerSample / 8)
	frames := (w.written - w.written%block) / block
	dur := time.Duration(frames) * (time.Second / SampleRate)
	res := Result{ID: w.id, CallID: w.callID, Path: s.abs(w.rel), Channels: w.channels, State: StateReady,
		StartedAt: w.start.UTC(), Duration: dur, Seconds: int64((dur + time.Second/2) / time.Second),
		Bytes: headerSize + w.written, Pauses: pauses, Packets: w.accepted.Load(), Dropped: w.dropFull.Load(),
		Late: w.late, Lost: w.lines[0].lost + w.lines[1].lost, Ignored: w.ignored.Load()}
	if w.writeErr != nil {
		res.State = StateFailed
	}
	row := w.row(res.State, pauses)
	row.DurationMS, row.SizeBytes = dur.Milliseconds(), res.Bytes
	if w.writeErr != nil {
		row.Error = w.writeErr.Error()
	}
	if res.State == StateReady {
		t := s.now().UTC()
		row.ReadyAt = &t
	}
	var err error
	if del := w.deletion.Load(); del != nil {
		// Deleted (CD-6) or discarded while it was being written: the file must not come back.
		if rerr := removeUnless(s.opts.FS, res.Path, del.removed); rerr != nil {
			err = fmt.Errorf("recordings: finish %s: remove file deleted while recording: %w", w.id, rerr)
		}
		at := del.at.UTC()
		row.State, row.ReadyAt, row.DeletedAt, row.DeletedBy = StateDeleted, nil, &at, del.by
		res.State = StateDeleted
	}
	if jerr := s.journalAppend(row, nil); jerr != nil {
		// The row keeps saying recording (if it was written at all); Repair at the next start
		// completes it from the file.
		s.metrics().addError()
		return res, errors.Join(w.writeErr, err, fmt.Errorf("recordings: finish %s: %w", w.id, jerr))
	}
	if res.State == StateDeleted {
		return res, err
	}
	return res, w.writeErr
}

// removeUnless removes path unless it was removed already (by Delete: the name may be taken
// again by now); a missing file is no error.
func removeUnless(fsys FS, path string, removed bool) error {
	if removed {
		return nil
	}
	if err := fsys.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Service) forget(w *Writer) {
	s.mu.Lock()
	delete(s.active, w.id)
	s.mu.Unlock()
}

// isActive reports whether this process is writing recording id.
func (s *Service) isActive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[id] != nil
}

// activePath reports whether this process is writing the file at rel (relative path).
func (s *Service) activePath(rel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.active {
		if w.rel == rel {
			return true
		}
	}
	return false
}

func (s *Service) now() time.Time { return s.opts.Now() }

func (s *Service) metrics() *Metrics { return s.opts.Metrics }

// samples converts a duration to 8 kHz sample frames.
func (s *Service) samples(d time.Duration) int64 { return int64(d / (time.Second / SampleRate)) }

// abs turns a metadata path (relative, slash-separated) into a file path.
func (s *Service) abs(rel string) string { return filepath.Join(s.opts.Dir, filepath.FromSlash(rel)) }
