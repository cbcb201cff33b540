package web

import (
	"errors"
	"log/slog"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
)

// ErrorID returns a short random id that ties an internal error a client was told about
// ("internal error (id 3f9c…)") to the log line holding its cause, which the client never sees:
// internal error strings name files, addresses and SQL, which are nobody's business outside.
func ErrorID() string { return apierror.ID() }

// pageError is a refusal whose text is written for the agent's page.
type pageError string

func (e pageError) Error() string { return string(e) }

// pageText returns what the agent's page may be told of err: the text of a refusal meant for
// it (pageError, a malformed message, an ivr or web sentinel), or "" for an internal error.
func pageText(err error) string {
	var pe pageError
	if errors.As(err, &pe) {
		return pe.Error()
	}
	if errors.Is(err, errMalformed) {
		return err.Error() // what was wrong with the page's own message
	}
	for _, e := range []error{ivr.ErrUnknownAgent, ivr.ErrUnknownQueue, ivr.ErrBadState, ivr.ErrNoCall,
		ivr.ErrAgentUnavailable, ivr.ErrNoAnswer, ivr.ErrConferenceConsult, ivr.ErrConferenceNumber,
		ivr.ErrConferenceCallerLeft, ivr.ErrConferenceAgentLeft, ivr.ErrConferenced, ErrBusy, ErrNotConnected} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return ""
}

// logInternal logs an internal error under a new id and returns the id.
func logInternal(log *slog.Logger, msg string, err error, args ...any) string {
	id := ErrorID()
	if log != nil {
		log.Error(msg, append(args, "error_id", id, "err", err)...)
	}
	return id
}
