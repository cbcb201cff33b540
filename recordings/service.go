package recordings

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Service starts recordings and keeps their files and metadata: one per process, shared by
// every call. It serves and deletes them over HTTP (Register), repairs them after a crash
// (Repair) and applies retention (Retention).
type Service struct {
	opts Options

	mu     sync.Mutex
	active map[string]*Writer // by id
}

// Kinds of recording (column kind).
const (
	kindCall      = "call"
	kindVoicemail = "voicemail"
)

// New checks opts, applies the defaults and returns the Service. It starts nothing.
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
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("recordings: new: %w", err)
	}
	opts.Dir = dir
	return &Service{opts: opts, active: map[string]*Writer{}}, nil
}

// StartPoint is when the gateway should call Start for a call (config recordings.start).
func (s *Service) StartPoint() StartPoint { return s.opts.StartPoint }

// Start begins recording a call (stereo) now: it creates the file and the metadata row (state
// recording) and starts the writer goroutine. Attach the taps (Writer.Tap) to the call's
// endpoints, and call Finish when the call ends. An error (no file could be created, the
// database refused the row) means nothing is recorded; the call goes on.
func (s *Service) Start(ctx context.Context, callID string) (*Writer, error) {
	return s.start(ctx, callID, kindCall, 2)
}

// StartVoicemail begins recording a voicemail message (mono, Tap(Mono, None)) for the call,
// stored as <call id>-voicemail.wav; otherwise as Start.
func (s *Service) StartVoicemail(ctx context.Context, callID string) (*Writer, error) {
	return s.start(ctx, callID, kindVoicemail, 1)
}

func (s *Service) start(ctx context.Context, callID, kind string, channels int) (*Writer, error) {
	if callID == "" {
		return nil, errors.New("recordings: start: empty call id")
	}
	id := uuid.NewString()
	at := s.now()
	suffix := ""
	if kind == kindVoicemail {
		suffix = "-voicemail"
	}
	file, rel, err := createUnique(s.opts.FS, s.opts.Dir, callID, suffix, at, channels)
	if err != nil {
		s.metrics().addError()
		return nil, fmt.Errorf("recordings: start %s: %w: %w", callID, ErrWrite, err)
	}
	rec := Recording{ID: id, CallID: callID, Kind: kind, Node: s.opts.Node, Path: rel, State: StateRecording,
		Channels: channels, StartedAt: at.UTC()}
	if err := s.insert(ctx, rec); err != nil {
		s.metrics().addError()
		file.f.Close()
		_ = s.opts.FS.Remove(file.path)
		return nil, fmt.Errorf("recordings: start %s: %w", callID, err)
	}
	w := newWriter(s, id, callID, kind, rel, channels, at, file)
	s.mu.Lock()
	s.active[id] = w
	s.mu.Unlock()
	s.metrics().addActive(1)
	go w.run()
	return w, nil
}

// finish completes a finished writer's metadata and builds its Result.
func (s *Service) finish(ctx context.Context, w *Writer, pauses []Pause) (Result, error) {
	block := int64(w.channels * BitsPerSample / 8)
	frames := (w.written - w.written%block) / block
	dur := time.Duration(frames) * (time.Second / SampleRate)
	res := Result{ID: w.id, CallID: w.callID, Path: s.abs(w.rel), Channels: w.channels, State: StateReady,
		StartedAt: w.start.UTC(), Duration: dur, Seconds: int64((dur + time.Second/2) / time.Second),
		Bytes: headerSize + w.written, Pauses: pauses, Packets: w.accepted.Load(), Dropped: w.dropFull.Load(),
		Late: w.late, Lost: w.lines[0].lost + w.lines[1].lost, Ignored: w.ignored.Load()}
	errText := ""
	if w.writeErr != nil {
		res.State = StateFailed
		errText = w.writeErr.Error()
	}
	ok, err := s.complete(ctx, w.id, res.State, dur, res.Bytes, s.now(), pauses, errText)
	switch {
	case err != nil:
		return res, errors.Join(w.writeErr, fmt.Errorf("recordings: finish %s: %w", w.id, err))
	case !ok:
		// Deleted (CD-6) while it was being written: the file must not come back.
		if rerr := s.opts.FS.Remove(res.Path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return res, fmt.Errorf("recordings: finish %s: remove file deleted while recording: %w", w.id, rerr)
		}
		res.State = StateDeleted
		return res, nil
	}
	return res, w.writeErr
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

func (s *Service) now() time.Time { return s.opts.Now() }

func (s *Service) metrics() *Metrics { return s.opts.Metrics }

// samples converts a duration to 8 kHz sample frames.
func (s *Service) samples(d time.Duration) int64 { return int64(d / (time.Second / SampleRate)) }

// abs turns a metadata path (relative, slash-separated) into a file path.
func (s *Service) abs(rel string) string { return filepath.Join(s.opts.Dir, filepath.FromSlash(rel)) }
