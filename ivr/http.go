package ivr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
)

// Authorizer authenticates an API request (the integrator adapts ticketing's Basic and Bearer
// auth): the user's id and whether the user is an admin. An error answers 401, or 429 with
// Retry-After when it has a method TryAgainAfter() time.Duration returning more than 0 (a
// login refused during its brute-force backoff).
type Authorizer interface {
	Authorize(r *http.Request) (userID int64, admin bool, err error)
}

// AgentScoper is what an Authorizer implements when an "admin" it authorizes (a supervisor)
// may manage only some agents (teams: the agents of the supervisor's groups). MayManage
// returns "" when userID may set agentID's state, else why not (a 403 with reason
// not_in_your_groups); an error (the database unreachable) is a 503 and nothing is changed.
// Everyone may set their own state; without it, an admin sets anyone's.
type AgentScoper interface {
	MayManage(ctx context.Context, userID, agentID int64) (refusal string, err error)
}

// ReasonNotInYourGroups is the reason of the 403 that refuses a supervisor an agent outside
// their groups.
const ReasonNotInYourGroups = "not_in_your_groups"

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(r *http.Request) (int64, bool, error)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(r *http.Request) (int64, bool, error) { return f(r) }

// maxStateBody bounds a PUT /agents/{id}/state body.
const maxStateBody = 4096

// Register mounts the ACD's API on mux under prefix ("/api/v2"):
//
//	GET  /queues               live depth, longest wait and agents by state, per queue
//	GET  /agents               every agent's state, since when, and queues
//	PUT  /agents/{id}/state    {"agent":{"state":"available"|"away"|"offline"}}
//
// Lists carry "next_page": null (every queue and agent fits one page), the shape of the other
// lists. Every endpoint needs an authenticated agent or admin (401); an agent may change only their
// own state, an admin anyone's (403) — or, when the Authorizer is an AgentScoper, the agents it
// allows (403 with reason not_in_your_groups otherwise). Errors have the API's one shape (internal/apierror,
// docs/api.md): {"error":"RecordInvalid"|"RecordNotFound"|"Forbidden"|"Unauthorized","description","details"}.
func (a *ACD) Register(mux *http.ServeMux, prefix string) {
	prefix = strings.TrimSuffix(prefix, "/")
	mux.HandleFunc("GET "+prefix+"/queues", a.auth(a.getQueues))
	mux.HandleFunc("GET "+prefix+"/agents", a.auth(a.getAgents))
	mux.HandleFunc("PUT "+prefix+"/agents/{id}/state", a.auth(a.putState))
}

type principal struct {
	id    int64
	admin bool
}

func (a *ACD) auth(fn func(w http.ResponseWriter, r *http.Request, p principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Authorizer == nil {
			apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "no authorizer configured"})
			return
		}
		id, admin, err := a.opts.Authorizer.Authorize(r)
		var wait interface{ TryAgainAfter() time.Duration }
		if errors.As(err, &wait) && wait.TryAgainAfter() > 0 {
			apierror.Write(w, apierror.Error{Status: http.StatusTooManyRequests, RetryAfter: wait.TryAgainAfter(),
				Description: "too many failed logins, or too many at once: wait before trying again"})
			return
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="switchboard", charset="UTF-8"`)
			apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "authentication required: use HTTP Basic (email and password) or a Bearer API token"})
			return
		}
		fn(w, r, principal{id, admin})
	}
}

type queueJSON struct {
	Name         string         `json:"name"`
	CallsWaiting int            `json:"calls_waiting"`
	LongestWait  int64          `json:"longest_wait"` // whole seconds
	Agents       map[string]int `json:"agents"`
}

type agentJSON struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Email  string   `json:"email"`
	State  string   `json:"state"`
	Since  string   `json:"since"` // RFC 3339 UTC
	Queues []string `json:"queues"`
	// Node is the gateway node the agent's page or SIP phone is attached to, in a cluster.
	Node string `json:"node,omitempty"`
}

func (a *ACD) getQueues(w http.ResponseWriter, r *http.Request, _ principal) {
	qs := a.Queues()
	out := make([]queueJSON, len(qs))
	for i, q := range qs {
		out[i] = queueJSON{Name: q.Name, CallsWaiting: q.Waiting, LongestWait: int64(q.LongestWait / time.Second), Agents: map[string]int{}}
		for st, n := range q.Agents {
			out[i].Agents[string(st)] = n
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out, "next_page": nil})
}

func toAgentJSON(s AgentStatus) agentJSON {
	q := s.Queues
	if q == nil {
		q = []string{}
	}
	return agentJSON{ID: s.ID, Name: s.Name, Email: s.Email, State: string(s.State), Since: s.Since.UTC().Format(time.RFC3339), Queues: q, Node: s.Node}
}

func (a *ACD) getAgents(w http.ResponseWriter, r *http.Request, _ principal) {
	as := a.Agents()
	out := make([]agentJSON, len(as))
	for i, s := range as {
		out[i] = toAgentJSON(s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": out, "next_page": nil})
}

func (a *ACD) putState(w http.ResponseWriter, r *http.Request, p principal) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf("no agent %q", r.PathValue("id"))})
		return
	}
	if !p.admin && p.id != id {
		apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Description: "agents may change only their own state: supervisors and admins change anyone's"})
		return
	}
	if sc, ok := a.opts.Authorizer.(AgentScoper); ok && p.id != id {
		why, err := sc.MayManage(r.Context(), p.id, id)
		if err != nil {
			a.log.Warn("ivr: agent state API: the supervisor's groups", "err", err)
			apierror.Write(w, apierror.Error{Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second,
				Description: "your groups cannot be read now (database unreachable); nothing was changed, try again"})
			return
		}
		if why != "" {
			apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Reason: ReasonNotInYourGroups, Description: why})
			return
		}
	}
	if _, err := a.Agent(id); errors.Is(err, ErrUnknownAgent) {
		apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf("no agent with id %d", id)})
		return
	} else if err != nil {
		a.unavailable(w, err)
		return
	}
	var body struct {
		Agent *struct {
			State *string `json:"state"`
		} `json:"agent"`
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxStateBody))
	if err == nil {
		err = json.Unmarshal(b, &body)
	}
	invalid := func(field, msg string) {
		apierror.Write(w, apierror.Error{Status: http.StatusUnprocessableEntity, Description: field + " " + msg,
			Details: map[string][]string{field: {msg}}})
	}
	if err == nil { // unknown fields are refused like the rest of the API; GET's own are ignored
		if field := unknownStateField(b); field != "" {
			invalid(field, "is an unknown field; the body is {\"agent\":{\"state\":\"available\"}}")
			return
		}
	}
	switch {
	case err != nil:
		invalid("agent", "must be a JSON object: {\"agent\":{\"state\":\"available\"}}")
		return
	case body.Agent == nil:
		invalid("agent", "is required: {\"agent\":{\"state\":\"available\"}}")
		return
	case body.Agent.State == nil:
		invalid("state", "is required: available, away or offline")
		return
	}
	st, err := a.SetState(id, AgentState(*body.Agent.State))
	switch {
	case errors.Is(err, ErrBadState):
		invalid("state", fmt.Sprintf("%q is not a state you can set: use available, away or offline", *body.Agent.State))
		return
	case errors.Is(err, ErrUnknownAgent):
		apierror.Write(w, apierror.Error{Status: http.StatusNotFound, Description: fmt.Sprintf("no agent with id %d", id)})
		return
	case err != nil && a.opts.Shared != nil:
		a.unavailable(w, err)
		return
	case err != nil:
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "internal error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"agent": toAgentJSON(st)})
}

// unavailable answers 503 when the cluster's shared agent states (the database) cannot be
// reached: the state was not changed, and the client may try again.
func (a *ACD) unavailable(w http.ResponseWriter, err error) {
	a.log.Warn("ivr: agent state API: shared store", "err", err)
	apierror.Write(w, apierror.Error{Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second,
		Description: "the cluster's agent states cannot be reached now (database unreachable); nothing was changed, try again"})
}

// unknownStateField returns the first field of a PUT /agents/{id}/state body (already known to
// be valid JSON) that is neither the wrapper "agent", its "state", nor a read-only field of the
// agent as GET /agents shows it (sent back, they are ignored as the ticketing API does).
func unknownStateField(b []byte) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil || top["agent"] == nil {
		return "" // not an object, or no wrapper: putState says "agent is required"
	}
	for _, k := range sortedKeys(top) {
		if k != "agent" {
			return k
		}
	}
	var agent map[string]json.RawMessage
	if json.Unmarshal(top["agent"], &agent) != nil {
		return ""
	}
	for _, k := range sortedKeys(agent) {
		switch k {
		case "state", "id", "name", "email", "since", "queues":
		default:
			return k
		}
	}
	return ""
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"InternalError","description":"cannot encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
