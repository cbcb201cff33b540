package ticketing

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
)

// EventSink makes a batch of events durable, in order (the event log).
type EventSink interface {
	EmitBatch(ctx context.Context, events []callevent.Event) error
}

// RegisterCalls mounts the call endpoints under prefix: GET /calls, GET /calls/{id}, and
// POST /call_events, which hands valid events to sink (nil: the endpoint answers 503).
// wake, when set, is called after events were accepted, so the engine looks at once.
func (a *API) RegisterCalls(mux *http.ServeMux, prefix string, sink EventSink, wake func()) {
	prefix = strings.TrimSuffix(prefix, "/")
	mux.Handle("GET "+prefix+"/calls", a.handle(RoleAgent, a.listCalls))
	mux.Handle("GET "+prefix+"/calls/{id}", a.handle(RoleAgent, a.getCall))
	mux.Handle("GET "+prefix+"/calls/{id}/screen_pop", a.handle(RoleAgent, a.getScreenPop))
	mux.Handle("PUT "+prefix+"/calls/{id}/requester", a.handle(RoleAgent, a.putCallRequester))
	mux.Handle("POST "+prefix+"/call_events", a.handle(RoleAdmin, func(w http.ResponseWriter, r *http.Request, p Principal) error {
		return a.postCallEvents(w, r, sink, wake)
	}))
}

func (a *API) getCall(w http.ResponseWriter, r *http.Request, p Principal) error {
	c, err := a.store.Call(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"call": c})
	return nil
}

func (a *API) getScreenPop(w http.ResponseWriter, r *http.Request, p Principal) error {
	sp, err := a.store.ScreenPop(r.Context(), r.PathValue("id"), time.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"screen_pop": sp})
	return nil
}

// putCallRequester takes {"call":{"requester_id":N}}: the agent picks the requester (PM-11).
func (a *API) putCallRequester(w http.ResponseWriter, r *http.Request, p Principal) error {
	b, err := readBody(r, "call")
	if err != nil {
		return err
	}
	id := b.id("requester_id")
	if id == nil {
		if _, ok := b.fields["requester_id"]; !ok {
			b.fail("requester_id", "is required")
		}
	}
	if err := b.err(); err != nil {
		return err
	}
	c, err := a.store.SetCallRequester(r.Context(), p.Actor(), r.PathValue("id"), *id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"call": c})
	return nil
}

// maxQueueFilter bounds GET /calls?queue=a,b,…
const maxQueueFilter = 50

// queueName reports whether s can be a queue's name (the configuration's rule).
func queueName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (a *API) listCalls(w http.ResponseWriter, r *http.Request, p Principal) error {
	if csvOut, err := wantsCSV(r); err != nil || csvOut {
		if err != nil {
			return err
		}
		return a.exportCallsCSV(w, r, p) // reports_api.go
	}
	q := r.URL.Query()
	f := CallFilter{From: q.Get("from"), To: q.Get("to"), Line: q.Get("line"), Outcome: q.Get("outcome"), Limit: 100}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return invalidField("per_page", "must be a whole number from 1 to 100, got %q", v)
		}
		f.Limit = n
	}
	if v := q.Get("agent_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return invalidField("agent_id", "must be a user id (a positive whole number), got %q", v)
		}
		f.AgentID = n
	}
	if v := q.Get("queue"); v != "" {
		names := strings.Split(v, ",")
		if len(names) > maxQueueFilter {
			return invalidField("queue", "names at most %d queues, got %d", maxQueueFilter, len(names))
		}
		for _, n := range names {
			if !queueName(n) {
				return invalidField("queue", "%q is not a queue name (letters, digits, '_' and '-', at most 64)", n)
			}
		}
		f.Queues = names
	}
	switch v := q.Get("team"); v {
	case "", "false":
	case "true":
		f.TeamOf = p.UserID // the calls of the caller's team: their groups' agents and their own
	default:
		return invalidField("team", "must be true or false, got %q", v)
	}
	if v := q.Get("group_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return invalidField("group_id", "must be a group id (a positive whole number), got %q", v)
		}
		if _, err := a.store.Group(r.Context(), n); errors.Is(err, ErrNotFound) {
			return invalidField("group_id", "no group %d", n)
		} else if err != nil {
			return err
		}
		f.GroupID = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return invalidField("since", "must be an RFC 3339 time such as 2026-11-22T10:00:00Z, got %q", v)
		}
		f.Since = t
	}
	switch f.Outcome {
	case "", callevent.OutcomeAnswered, callevent.OutcomeAbandoned, callevent.OutcomeVoicemail, callevent.OutcomeNoAnswer, callevent.OutcomeFailed, callevent.OutcomeRejected, callevent.OutcomeCallback:
	default:
		return invalidField("outcome", "must be answered, abandoned, voicemail, no_answer, failed, rejected or callback, got %q", f.Outcome)
	}
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		ns, id, ok := strings.Cut(string(raw), "|")
		n, perr := strconv.ParseInt(ns, 10, 64)
		if err != nil || !ok || perr != nil {
			return invalidField("cursor", "%q is not a cursor from next_page", c)
		}
		f.BeforeStarted, f.BeforeID = time.Unix(0, n).UTC(), id
	}
	calls, more, err := a.store.ListCalls(r.Context(), f)
	if err != nil {
		return err
	}
	var next *string
	if more && len(calls) > 0 {
		last := calls[len(calls)-1]
		next = a.pageURL(r, base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d|%s", last.StartedAt.UnixNano(), last.ID))))
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": nonNil(calls), "next_page": next})
	return nil
}

// eventError is one refused event of a POST /call_events batch.
type eventError struct {
	Index       int    `json:"index"`
	Field       string `json:"field"`
	Description string `json:"description"`
}

// postCallEvents takes {"events":[...]}: every valid event is made durable and acknowledged,
// every invalid one reported with its index and field. 422 when none was accepted.
func (a *API) postCallEvents(w http.ResponseWriter, r *http.Request, sink EventSink, wake func()) error {
	if sink == nil {
		apierror.Write(w, apierror.Error{Status: http.StatusServiceUnavailable, Description: "event ingestion is not configured on this node"})
		return nil
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return invalidField("events", "the body is larger than %d bytes: send fewer events per request", mbe.Limit)
		}
		return err
	}
	var envelope struct {
		Events *[]json.RawMessage `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&envelope); err != nil {
		return invalidField("events", "the body must be {\"events\":[...]}: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if envelope.Events == nil || len(*envelope.Events) == 0 {
		return invalidField("events", "is required: a non-empty array of call events")
	}
	if len(*envelope.Events) > 10000 {
		return invalidField("events", "at most 10000 events per request")
	}
	var good []callevent.Event
	errs := []eventError{}
	for i, rawEv := range *envelope.Events {
		e, fe := callevent.Decode(rawEv)
		if len(fe) > 0 {
			for _, f := range fe {
				errs = append(errs, eventError{Index: i, Field: f.Field, Description: f.Message})
			}
			continue
		}
		good = append(good, e)
	}
	if len(good) > 0 {
		if err := sink.EmitBatch(r.Context(), good); err != nil {
			return fmt.Errorf("ticketing: store events: %w", err)
		}
		if wake != nil {
			wake()
		}
	}
	status := http.StatusOK
	if len(good) == 0 {
		status = http.StatusUnprocessableEntity
	}
	writeJSON(w, status, map[string]any{"accepted": len(good), "errors": errs})
	return nil
}
