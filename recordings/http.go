package recordings

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
)

// Register mounts the recordings routes of docs/api.md on mux under prefix (e.g. "/api/v2"):
//
//	GET    {prefix}/recordings/{id}          the audio (audio/wav, HTTP Range, RFC 9110 §14)
//	DELETE {prefix}/tickets/{id}/recordings  every recording on the ticket, for good (CD-6)
//
// Access (docs/rules.md CD-6, setting recordings.agents_can_access): anonymous → 401; admins always; agents
// only while agents_can_access is true, else 403 — for deletion as for listening (an agent who
// may not hear a recording may not delete it either). Unknown, deleted, failed or unfinished
// recordings → 404. Errors have the API's one shape (internal/apierror, docs/api.md). It panics
// when Options.Authorizer is nil; the DELETE route needs Options.Tickets.
func (s *Service) Register(mux *http.ServeMux, prefix string) {
	if s.opts.Authorizer == nil {
		panic("recordings: Register without an Authorizer")
	}
	prefix = strings.TrimSuffix(prefix, "/")
	mux.HandleFunc("GET "+prefix+"/recordings/{id}", s.serveRecording)
	mux.HandleFunc("DELETE "+prefix+"/tickets/{id}/recordings", s.deleteTicketRecordings)
}

// allowed authenticates r and applies the access rule; on refusal it has written the error.
func (s *Service) allowed(w http.ResponseWriter, r *http.Request) (userID int64, ok bool) {
	userID, admin, err := s.opts.Authorizer.Authorize(r)
	// A login refused during its brute-force backoff says how long to wait: 429 (RFC 6585 §4).
	var wait interface{ TryAgainAfter() time.Duration }
	if errors.As(err, &wait) && wait.TryAgainAfter() > 0 {
		apierror.Write(w, apierror.Error{Status: http.StatusTooManyRequests, RetryAfter: wait.TryAgainAfter(),
			Description: "too many failed logins, or too many at once: wait before trying again"})
		return 0, false
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="switchboard", charset="UTF-8"`)
		apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "authentication required: HTTP Basic or a Bearer API token"})
		return 0, false
	}
	if admin {
		return userID, true
	}
	can, err := s.opts.Authorizer.AgentsCanAccess(r.Context())
	if err != nil {
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "could not read the recordings.agents_can_access setting"})
		return 0, false
	}
	if !can {
		apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Description: "recordings.agents_can_access is off: only admins can access recordings"})
		return 0, false
	}
	return userID, true
}

func (s *Service) serveRecording(w http.ResponseWriter, r *http.Request) {
	userID, ok := s.allowed(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	rec, err := s.Recording(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf("no recording %q", id)})
		return
	case err != nil:
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "could not read the recording's metadata"})
		return
	case rec.State != StateReady:
		apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf("recording %q is %s", id, rec.State)})
		return
	}
	f, err := s.opts.FS.OpenFile(s.abs(rec.Path), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf("recording %q: the audio file is gone", id)})
		return
	}
	if err != nil {
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "could not open the audio file"})
		return
	}
	defer f.Close()
	if s.opts.Played != nil && r.Method == http.MethodGet && fromFirstByte(r.Header.Get("Range")) {
		if err := s.opts.Played(r.Context(), rec, userID); err != nil {
			apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "could not record the listening in the audit trail; retry"})
			return
		}
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Cache-Control", "private, no-store")
	modtime := rec.CreatedAt
	if rec.ReadyAt != nil {
		modtime = *rec.ReadyAt
	}
	// ServeContent answers Range (206, multipart for several ranges, 416), If-Range and HEAD.
	// A header of thousands of tiny ranges would cost a multipart part each (a core and many
	// times the file): beyond maxRanges the Range is ignored and the file sent once, as
	// Apache's MaxRanges and nginx's max_ranges do (RFC 9110 §14.2 allows ignoring it).
	if rng := r.Header.Get("Range"); strings.Count(rng, ",") >= maxRanges {
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	http.ServeContent(w, r, id+".wav", modtime, f)
}

// fromFirstByte reports whether a GET with this Range header reads the audio from its start:
// no Range, or a first range beginning at byte 0 (RFC 9110 §14.1.2).
func fromFirstByte(rng string) bool {
	if rng == "" {
		return true
	}
	spec, ok := strings.CutPrefix(strings.TrimSpace(rng), "bytes=")
	if !ok {
		return true // not a byte range: ServeContent sends the whole file
	}
	first, _, _ := strings.Cut(spec, ",")
	start, _, _ := strings.Cut(strings.TrimSpace(first), "-")
	return strings.TrimSpace(start) == "0"
}

// maxRanges is the most byte ranges GET /recordings/{id} answers (a player asks for one).
const maxRanges = 16

func (s *Service) deleteTicketRecordings(w http.ResponseWriter, r *http.Request) {
	by, ok := s.allowed(w, r)
	if !ok {
		return
	}
	if s.opts.Tickets == nil {
		apierror.Write(w, apierror.Error{Status: http.StatusNotImplemented, Description: "deleting a ticket's recordings is not wired"})
		return
	}
	ticket, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || ticket <= 0 {
		apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf("no ticket %q", r.PathValue("id"))})
		return
	}
	ctx := r.Context()
	ids, err := s.opts.Tickets.RecordingIDs(ctx, ticket)
	if errors.Is(err, ErrNotFound) {
		apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf("no ticket %d", ticket)})
		return
	}
	if err != nil {
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "could not list the ticket's recordings"})
		return
	}
	at := s.now().UTC()
	for _, id := range ids {
		if _, err := s.Delete(ctx, id, by, at); err != nil {
			apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: fmt.Sprintf("could not delete recording %q", id)})
			return
		}
	}
	if len(ids) > 0 {
		if err := s.opts.Tickets.MarkDeleted(ctx, ticket, ids, by, at); err != nil {
			apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "the audio is deleted but the ticket could not be updated; retry"})
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
