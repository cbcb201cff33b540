package recordings

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-voice/switchboard/internal/uring"
)

// This file holds the package's vocabulary: sentinel errors, options and the interfaces
// cmd/switchboard satisfies by wiring. The active types live next to their code:
//
//	Service  (service.go)   New, StartPoint, Start, StartVoicemail
//	         (journal.go)   Flush, Close, Pending: metadata rows written in the background
//	         (store.go)     Recording, ByCall, Delete; the Recording metadata row
//	Writer   (writer.go)    ID, Path, Tap, CallerTap, AgentTap, Pause, Resume, Finish, Discard; Result, Pause
//	         (repair.go)    Service.Repair, RepairFile; Repaired
//	         (http.go)      Service.Register: GET /recordings/{id}, DELETE /tickets/{id}/recordings
//	         (retention.go) Service.Retention, Service.RunRetention
//	WAV      (wav.go)       ParseHeader, Header
//	Metrics  (metrics.go)   NewMetrics

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrNotFound: no such recording (or it was deleted). TicketRecordings.RecordingIDs returns an
	// error wrapping it for an unknown ticket. HTTP 404.
	ErrNotFound = errors.New("recordings: not found")
	// ErrFinished is returned by Pause and Resume after Finish.
	ErrFinished = errors.New("recordings: recording finished")
	// ErrBadWAV means a file is not a PCM WAV file this package can read or repair.
	ErrBadWAV = errors.New("recordings: not a PCM WAV file")
	// ErrWrite marks a recording that failed because writing its file failed (a full disk, an
	// I/O error). Finish returns an error wrapping both it and the cause (e.g. syscall.ENOSPC).
	ErrWrite = errors.New("recordings: write failed")
)

// State is a recording's state in its metadata row.
type State string

const (
	StateRecording State = "recording" // being written (or the process died while writing: Repair)
	StateReady     State = "ready"     // complete and playable
	StateFailed    State = "failed"    // writing failed; the file holds what was written before
	StateDeleted   State = "deleted"   // audio removed for good (CD-6, retention)
)

// Channel is where a tapped packet's audio goes in the file. The zero value, None, drops it.
type Channel int8

const (
	None  Channel = iota // not recorded
	Left                 // the caller (stereo)
	Right                // the agent or far end (stereo)
	// Mono is the only channel of a voicemail message.
	Mono = Left
)

// StartPoint says when a call's recording starts (config recordings.start). The gateway reads
// Service.StartPoint and calls Start at that moment; this package has no notion of call phases.
type StartPoint string

const (
	StartAtAnswer    StartPoint = "answer"     // when the agent or far end answers (default)
	StartAtCallStart StartPoint = "call_start" // when the gateway answers the carrier: IVR and queue included
)

// DB is the part of *pgxpool.Pool (or pgx.Conn, pgx.Tx) the metadata needs.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Authorizer is what the HTTP handlers need from ticketing's authentication and settings;
// cmd/switchboard satisfies it by wiring (recordings may not import ticketing).
type Authorizer interface {
	// Authorize authenticates r (HTTP Basic or Bearer token) and returns the user and whether it
	// is an admin. Any error answers 401 (429 with Retry-After when it has a method
	// TryAgainAfter() time.Duration returning more than 0); a user that is neither agent nor
	// admin must be an error.
	Authorize(r *http.Request) (userID int64, admin bool, err error)
	// AgentsCanAccess is the global setting recordings.agents_can_access (docs/rules.md, CD-6).
	AgentsCanAccess(ctx context.Context) (bool, error)
}

// TicketRecordings is what deletion from a ticket (CD-6) needs from ticketing, satisfied by
// wiring in cmd/switchboard.
type TicketRecordings interface {
	// RecordingIDs lists the recording ids on the ticket's voice comments (deleted ones
	// included or not: both work). An unknown ticket is an error wrapping ErrNotFound.
	RecordingIDs(ctx context.Context, ticketID int64) ([]string, error)
	// MarkDeleted sets recording_deleted_at = at on the ticket's comments carrying ids and
	// writes an audit entry saying who (by) deleted them and when. The comments stay.
	MarkDeleted(ctx context.Context, ticketID int64, ids []string, by int64, at time.Time) error
}

// ExpiredHook is called by Retention after it removed recordings, so that ticketing can set
// recording_deleted_at on their comments (by the system: no user).
type ExpiredHook func(ctx context.Context, ids []string, at time.Time) error

// File is the part of *os.File a recording needs; FS returns it.
type File interface {
	io.Reader
	io.Writer
	io.Seeker
	io.ReaderAt
	io.WriterAt
	io.Closer
	Sync() error
	Stat() (fs.FileInfo, error)
	Truncate(size int64) error
}

// FS is the filesystem recordings are written to. The default is the operating system's; tests
// inject failures (a full disk) through it.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	MkdirAll(path string, perm fs.FileMode) error
	Remove(name string) error
}

// OSFS is the operating system's filesystem.
type OSFS struct{}

// OpenFile opens name as os.OpenFile does, the openat(2) made by an io_uring worker where the
// kernel allows (uring.OpenFile): creating a file can wait on the filesystem's journal, and
// the goroutine waiting for it then holds no P of the Go runtime.
func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := uring.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a nil *os.File must not become a non-nil File
	}
	return f, nil
}

// MkdirAll creates a directory and its parents with os.MkdirAll.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// Remove removes a file with os.Remove.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Options configures New. Zero values take the documented defaults.
type Options struct {
	// Dir is where files go, as Dir/YYYY/MM/DD/<call id>.wav (voicemail <call id>-voicemail.wav).
	// Required. Paths in the metadata are relative to it.
	Dir string
	// DB holds the metadata (table recordings, migration 005). Required.
	DB DB
	// Node names this process in the metadata so that Repair on one node never touches another
	// node's live recordings in a shared directory. Default: the host name.
	Node string
	// Metrics receives the counters; nil records nothing.
	Metrics *Metrics
	// FS is the filesystem. Default OSFS.
	FS FS
	// Now is the clock. Default time.Now. It must carry a monotonic reading for packet placement
	// to match media.TapPacket.At.
	Now func() time.Time
	// StartPoint is when the gateway should start a call's recording. Default StartAtAnswer.
	StartPoint StartPoint
	// Delay is how long audio waits in memory for late and reordered packets before it is
	// written (a jitter allowance). Default 300 ms. Packets later than this are dropped.
	Delay time.Duration
	// SyncInterval is how often a file is fsynced, which bounds what a power loss can lose
	// (a SIGKILL loses only what was not yet written, twice a second; the header's sizes are
	// rewritten just before each fsync, and Repair makes them exact after a crash). The fsyncs
	// are the largest part of recording's disk work: 1 s costs about three times what 5 s
	// does. Default 5 s.
	SyncInterval time.Duration
	// Buffer is how many tapped packets may wait for the writer's next tick, per recording; beyond
	// it the tap drops and counts (it never blocks RTP). Default 256 (~1.3 s of both directions).
	// It is a bound, not a reservation: waiting packets take chunks from a pool shared by all
	// recordings, and a recording whose writer keeps up holds one chunk (under 3 KiB).
	Buffer int
	// Authorizer authenticates HTTP requests. Required for Register.
	Authorizer Authorizer
	// Tickets deletes a ticket's recordings' marks (CD-6). Required for the DELETE route.
	Tickets TicketRecordings
	// OnExpired is called after Retention removed recordings (may be nil).
	OnExpired ExpiredHook
	// Played, when set, is called for every GET of a recording's audio that starts at its
	// first byte (no Range, or a range from byte 0: a player's first request, not the range
	// requests it makes while seeking), before any byte is sent, with the listening user. The
	// gateway audits the reading of a voicemail there (docs/rules.md TU-9). An error refuses
	// the request with a 500: no read goes unaudited.
	Played func(ctx context.Context, rec Recording, userID int64) error
	// Logger receives what the metadata writer has to say (the database unreachable and back,
	// a row refused). Default: discarded.
	Logger *slog.Logger
	// MetadataRetry is the longest wait between two attempts to write pending metadata rows
	// while the database does not answer (the first retry comes after a tenth of it).
	// Default 5 s.
	MetadataRetry time.Duration
	// MetadataQueue bounds how many recordings' metadata changes wait in memory for the
	// database; beyond it they wait only in the journal on disk and a scan of the journal picks
	// them up. Default 1024.
	MetadataQueue int
	// MetadataBatch caps how many recordings' rows the metadata writer writes in one statement
	// (one transaction, one commit). Default 64.
	MetadataBatch int
	// MetadataWindow is how long the metadata writer, woken by one changed recording, waits for
	// more before it writes them together (or until MetadataBatch are in). It delays a row, never
	// a call: the journal on disk already holds the change. Default 20 ms.
	MetadataWindow time.Duration
}

// Defaults of Options.
const (
	DefaultDelay          = 300 * time.Millisecond
	DefaultSyncInterval   = 5 * time.Second
	DefaultBuffer         = 256
	DefaultMetadataRetry  = 5 * time.Second
	DefaultMetadataQueue  = 1024
	DefaultMetadataBatch  = 64
	DefaultMetadataWindow = 20 * time.Millisecond
)
