package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ivr"
)

// Transfers of a connected queue call, from the page and the API: blind (to an agent, a queue
// or an outside number) and consult (warm: the agent talks to the target first, then
// completes or goes back to the caller). The ACD runs them (ivr/consult.go); this file checks
// who may ask and what they name: the call must be the asker's, an outside number must read as
// a phone number and be a destination the trunk's dial plan allows (the OutboundGuard of
// POST /calls, the same toll-fraud check).

// TransferACD is what transfers drive; *ivr.ACD satisfies it.
type TransferACD interface {
	Transfer(ctx context.Context, callID string, to ivr.TransferTo) error
	Consult(ctx context.Context, callID string, to ivr.TransferTo, onEnd func(ivr.ConsultEnd)) error
	CompleteConsult(ctx context.Context, callID string) error
	CancelConsult(ctx context.Context, callID string) error
	// CallAgent tells the agent connected to a call, and whether the ACD serves the call.
	CallAgent(callID string) (int64, bool)
}

// PhoneNormalizer reads a typed number as E.164 (*ticketing.Store does, in its default
// region); its error is a *ticketing.Error naming the field "value".
type PhoneNormalizer interface {
	NormalizePhone(raw string, strict bool) (string, error)
}

// Transfers serves transfers for the page (Options.Transfers) and the API (Handler).
type Transfers struct {
	ACD TransferACD
	// Guard checks an outside number against the trunk's destinations (allow and deny
	// prefixes); nil: no outside number may be dialled by a transfer.
	Guard *OutboundGuard
	// Numbers reads typed numbers; nil: only E.164 as typed.
	Numbers PhoneNormalizer
	// Log receives a line per refused destination; nil discards.
	Log *slog.Logger
}

// TransferRequest is a transfer asked for: exactly one target, and the mode.
type TransferRequest struct {
	ToAgentID int64  `json:"to_agent_id,omitempty"`
	ToQueue   string `json:"to_queue,omitempty"`
	ToNumber  string `json:"to_number,omitempty"`
	// Mode is "blind" (default) or "consult".
	Mode string `json:"mode,omitempty"`
}

// transferError is a refusal with its HTTP status and the field it names.
type transferError struct {
	status     int
	field      string
	reason     string
	msg        string
	retryAfter time.Duration // 429 for the agent's calls per minute
}

func (e *transferError) Error() string { return e.msg }

// target checks a request of agent agentID and returns the ACD's target and whether it is a
// consult. A transfer to an outside number is an outbound call of the agent through the trunk:
// it takes one of the agent's outbound slots (agent_limits: calls per minute, calls at once;
// the limits of POST /calls), given back by release once the transfer is settled — a blind one
// once the number answered or not, a consult once it ended. release is never nil and may be
// called more than once.
func (t *Transfers) target(req TransferRequest, agentID int64) (to ivr.TransferTo, consult bool, release func(), err error) {
	release = func() {}
	to, consult, err = t.check(req)
	if err != nil || to.Number == "" {
		return to, consult, release, err
	}
	release, err = t.limit(agentID, to.Number)
	return to, consult, release, err
}

// limit takes one of the agent's outbound slots for a transfer to number.
func (t *Transfers) limit(agentID int64, number string) (func(), error) {
	g := t.Guard
	rel, reason, retry := g.acquire(agentID)
	if reason == "" {
		g.calls.Inc()
		return rel, nil
	}
	g.refuse(reason)
	if t.Log != nil {
		t.Log.Warn("transfer refused", "to", number, "agent_id", agentID, "reason", reason)
	}
	e := &transferError{status: http.StatusTooManyRequests, field: "to_number", reason: reason,
		msg: fmt.Sprintf("you have %d outbound calls in progress, the most allowed (agent_limits.max_calls): a transfer to an outside number is one", g.opts.MaxCalls)}
	if reason == RefusedRate {
		e.retryAfter = retry
		e.msg = fmt.Sprintf("you have started %d outbound calls in the last minute, the most allowed (agent_limits.calls_per_minute; a transfer to an outside number is one): try again in %d s",
			g.opts.CallsPerMinute, apierror.RetryAfterSeconds(retry))
	}
	return func() {}, e
}

// check reads a request: the ACD's target and whether it is a consult.
func (t *Transfers) check(req TransferRequest) (ivr.TransferTo, bool, error) {
	consult := false
	switch req.Mode {
	case "", "blind":
	case "consult":
		consult = true
	default:
		return ivr.TransferTo{}, false, &transferError{status: 422, field: "mode", msg: "mode must be blind or consult"}
	}
	n := 0
	for _, set := range []bool{req.ToAgentID != 0, req.ToQueue != "", req.ToNumber != ""} {
		if set {
			n++
		}
	}
	if n != 1 || req.ToAgentID < 0 {
		return ivr.TransferTo{}, false, &transferError{status: 422, field: "to_agent_id",
			msg: "name exactly one target: to_agent_id (an agent), to_queue (a queue) or to_number (an outside number)"}
	}
	if req.ToQueue != "" && (len(req.ToQueue) > 128 || strings.IndexFunc(req.ToQueue, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0) {
		return ivr.TransferTo{}, false, &transferError{status: 422, field: "to_queue", msg: "to_queue must be a queue's name"}
	}
	to := ivr.TransferTo{AgentID: req.ToAgentID, Queue: req.ToQueue}
	if req.ToNumber != "" {
		num, err := t.number(req.ToNumber)
		if err != nil {
			return ivr.TransferTo{}, false, err
		}
		to.Number = num
	}
	return to, consult, nil
}

// number reads an outside number and checks it against the dial plan.
func (t *Transfers) number(raw string) (string, error) {
	if len(raw) > 64 {
		return "", &transferError{status: 422, field: "to_number", msg: "to_number is not a phone number"}
	}
	num := raw
	if t.Numbers != nil {
		n, err := t.Numbers.NormalizePhone(raw, false)
		if err != nil {
			return "", &transferError{status: 422, field: "to_number", msg: "to_number is not a phone number (write it in E.164, e.g. +15555550123)"}
		}
		num = n
	}
	if !isE164(num) {
		return "", &transferError{status: 422, field: "to_number", msg: "to_number is not an E.164 number such as +15555550123"}
	}
	if t.Guard == nil {
		return "", &transferError{status: 403, field: "to_number", reason: RefusedDestinationNotAllowed,
			msg: "this gateway has no trunk for outside numbers"}
	}
	if reason := t.Guard.Destination(num); reason != "" {
		t.Guard.refuse(reason)
		if t.Log != nil {
			t.Log.Warn("transfer refused", "to", num, "reason", reason)
		}
		return "", &transferError{status: 403, field: "to_number", reason: reason,
			msg: fmt.Sprintf("%s cannot be dialled through this gateway's trunk (%s)", num, reason)}
	}
	return num, nil
}

func isE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// status maps an ACD's refusal to an HTTP status.
func transferStatus(err error) (int, string) {
	var te *transferError
	switch {
	case errors.As(err, &te):
		return te.status, te.reason
	case errors.Is(err, ivr.ErrNoCall):
		return http.StatusNotFound, ""
	case errors.Is(err, ivr.ErrTransferFailed):
		return http.StatusConflict, "no_answer"
	case errors.Is(err, ivr.ErrConferenced):
		return http.StatusConflict, "conference"
	case errors.Is(err, ivr.ErrUnknownAgent), errors.Is(err, ivr.ErrUnknownQueue):
		return http.StatusUnprocessableEntity, ""
	case errors.Is(err, ivr.ErrAgentUnavailable), errors.Is(err, ivr.ErrNoAgentFree), errors.Is(err, ivr.ErrTransferBusy),
		errors.Is(err, ivr.ErrNoConsult), errors.Is(err, ivr.ErrNoTrunk), errors.Is(err, ivr.ErrConferenced):
		return http.StatusConflict, ""
	}
	return http.StatusInternalServerError, ""
}

// transferText is what the page or the API client is told of a refusal ("" for an internal
// error, which is logged under an id instead).
func transferText(err error) string {
	var te *transferError
	if errors.As(err, &te) {
		return te.msg
	}
	switch {
	case errors.Is(err, ivr.ErrTransferFailed):
		return "the transfer target did not answer (or the transfer was cancelled): the caller is back with you"
	case errors.Is(err, ivr.ErrNoConsult):
		return "no consult transfer is on the line (it ended: the caller is back with you)"
	}
	for _, e := range []error{ivr.ErrNoCall, ivr.ErrUnknownAgent, ivr.ErrUnknownQueue, ivr.ErrAgentUnavailable,
		ivr.ErrNoAgentFree, ivr.ErrTransferBusy, ivr.ErrNoTrunk, ivr.ErrConferenceConsult, ivr.ErrConferenceNumber,
		ivr.ErrConferenceCallerLeft, ivr.ErrConferenceAgentLeft, ivr.ErrConferenced} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "ivr: ")
		}
	}
	return ""
}

// start runs a checked transfer: a consult, a blind one to a number (both return once the
// target answered or did not), or a blind one to an agent or a queue (at once). release (from
// target) is called once the transfer is settled: at once for a blind one or a consult that
// did not reach its target, when the consult ends otherwise.
func (t *Transfers) start(ctx context.Context, callID string, to ivr.TransferTo, consult bool, onEnd func(ivr.ConsultEnd), release func()) error {
	if consult {
		err := t.ACD.Consult(ctx, callID, to, endAndRelease(onEnd, release))
		if err != nil {
			release()
		}
		return err
	}
	defer release()
	return t.ACD.Transfer(ctx, callID, to)
}

// endAndRelease is onEnd that first gives the transfer's outbound slot back.
func endAndRelease(onEnd func(ivr.ConsultEnd), release func()) func(ivr.ConsultEnd) {
	return func(e ivr.ConsultEnd) {
		release()
		if onEnd != nil {
			onEnd(e)
		}
	}
}

// Handler serves the transfer API for the call {id} of the request's path:
//
//	POST /api/v2/calls/{id}/transfer           {"transfer":{"to_agent_id"|"to_queue"|"to_number", "mode"}}
//	POST /api/v2/calls/{id}/transfer/complete  the consult's target takes the call
//	POST /api/v2/calls/{id}/transfer/cancel    back to the caller
//
// op is "", "complete" or "cancel". agentID tells who asks (401 when no one); only the agent
// connected to the call may transfer it (403 otherwise, 404 when no agent is connected to it).
func (t *Transfers) Handler(op string, agentID func(*http.Request) (int64, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := agentID(r)
		if !ok {
			apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
			return
		}
		callID := r.PathValue("id")
		owner, live := t.ACD.CallAgent(callID)
		if !live {
			apierror.Write(w, apierror.Error{Status: http.StatusNotFound,
				Description: "no agent is connected to this call on this gateway node (it ended, or is not yet answered)"})
			return
		}
		if owner != id {
			apierror.Write(w, apierror.Error{Status: http.StatusForbidden, Description: "only the agent on the call can transfer it"})
			return
		}
		var err error
		status := "transferred"
		switch op {
		case "complete":
			err = t.ACD.CompleteConsult(r.Context(), callID)
		case "cancel":
			err, status = t.ACD.CancelConsult(r.Context(), callID), "cancelled"
		default:
			raw, rerr := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
			if rerr != nil {
				writeAPIError(w, invalid("body", "is larger than 4 KiB or cannot be read"))
				return
			}
			var req TransferRequest
			if err := decodeWrapped(raw, "transfer", &req); err != nil {
				writeAPIError(w, err)
				return
			}
			to, consult, release, terr := t.target(req, id)
			if terr != nil {
				err = terr
				break
			}
			if consult {
				status = "consulting"
			}
			err = t.start(r.Context(), callID, to, consult, nil, release)
		}
		if err != nil {
			t.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"transfer": map[string]any{"call_id": callID, "status": status}})
	})
}

func (t *Transfers) writeError(w http.ResponseWriter, err error) {
	code, reason := transferStatus(err)
	text := transferText(err)
	if code == http.StatusInternalServerError || text == "" {
		id := logInternal(t.Log, "web: transfer failed", err)
		apierror.Write(w, apierror.Error{Status: http.StatusInternalServerError, Description: "the transfer failed: internal error (id " + id + ")"})
		return
	}
	e := apierror.Error{Status: code, Reason: reason, Description: text}
	var te *transferError
	if errors.As(err, &te) && te.field != "" {
		e.Details = map[string][]string{te.field: {te.msg}}
		e.RetryAfter = te.retryAfter
	}
	apierror.Write(w, e)
}

// Refer carries out a blind transfer an agent's SIP phone asked for with REFER (sip refer.go),
// under the API's checks: the call must be the agent's, a number must read as one and be a
// destination the trunk allows. It returns once the ACD took the transfer (for a number, once
// it answered).
func (t *Transfers) Refer(ctx context.Context, callID string, agentID, toAgent int64, number string) error {
	if owner, live := t.ACD.CallAgent(callID); !live || owner != agentID {
		return fmt.Errorf("web: refer: %w", ivr.ErrNoCall)
	}
	to, _, release, err := t.target(TransferRequest{ToAgentID: toAgent, ToNumber: number}, agentID)
	if err != nil {
		return err
	}
	return t.start(ctx, callID, to, false, nil, release)
}

// ConsultOnACD is the consult of an agent's SIP phone that talks to the target on a call of
// its own (ConsultOn); *ivr.ACD satisfies it. A TransferACD without it refuses such consults.
type ConsultOnACD interface {
	ConsultOn(ctx context.Context, callID string, to ivr.TransferTo, via ivr.AgentLeg, onEnd func(ivr.ConsultEnd)) error
}

// PhoneConsult starts the consult of an attended transfer an agent's SIP phone runs (sip
// consult.go: the phone calls the target through the gateway while the caller waits), under
// the API's checks: the call must be the agent's, a number must read as one and be a
// destination the trunk allows. via is the phone's consult call, bridged to the target once
// it answered; PhoneConsult returns then (nil), or with the reason the target was not reached.
// onEnd is told how a consult that reached its target ended (ivr.ACD.Consult).
func (t *Transfers) PhoneConsult(ctx context.Context, callID string, agentID, toAgent int64, number string, via ivr.AgentLeg, onEnd func(ivr.ConsultEnd)) error {
	if owner, live := t.ACD.CallAgent(callID); !live || owner != agentID {
		return fmt.Errorf("web: phone consult: %w", ivr.ErrNoCall)
	}
	co, ok := t.ACD.(ConsultOnACD)
	if !ok {
		return errors.New("web: phone consult: the ACD cannot consult on the phone's own call")
	}
	to, _, release, err := t.target(TransferRequest{ToAgentID: toAgent, ToNumber: number, Mode: "consult"}, agentID)
	if err != nil {
		return err
	}
	if err := co.ConsultOn(ctx, callID, to, via, endAndRelease(onEnd, release)); err != nil {
		release()
		return err
	}
	return nil
}

// PhoneComplete completes the consult PhoneConsult started, when the agent's phone asks with
// a REFER whose Refer-To replaces its consult call (RFC 3891, RFC 5589 §7): the caller is
// bridged to the target and the agent released, as POST .../transfer/complete does.
func (t *Transfers) PhoneComplete(ctx context.Context, callID string, agentID int64) error {
	if owner, live := t.ACD.CallAgent(callID); !live || owner != agentID {
		return fmt.Errorf("web: phone transfer: %w", ivr.ErrNoCall)
	}
	return t.ACD.CompleteConsult(ctx, callID)
}

// pageTransfer runs the page's transfer message (m.Mode, m.AgentID, m.Queue, m.Number). A
// transfer that waits for its target to answer runs on its own goroutine, so the page's other
// buttons (cancel) keep working; the page hears "consult" messages: ringing, talking, and
// how the consult ended, or "transferred" / an error.
func (as *agentSession) pageTransfer(ctx context.Context, cl *callLeg, m message) {
	t := as.s.opts.Transfers
	req := TransferRequest{ToAgentID: m.AgentID, ToQueue: m.Queue, ToNumber: m.Number, Mode: m.Mode}
	fail := func(err error) {
		text := transferText(err)
		if text == "" {
			id := logInternal(as.s.log, "web: transfer failed", err, "agent", as.agent.ID)
			text = "internal error (id " + id + ")"
		}
		as.send(message{Type: "error", Message: "Transfer: " + text})
	}
	if t == nil { // the ACD's blind transfer to an agent or a queue only
		if m.Number != "" || m.Mode == "consult" {
			fail(&transferError{msg: "this gateway does not transfer to outside numbers or by consulting"})
			return
		}
		if err := as.s.opts.ACD.Transfer(ctx, cl.id, ivr.TransferTo{AgentID: m.AgentID, Queue: m.Queue}); err != nil {
			fail(err)
			return
		}
		as.send(message{Type: "transferred", CallID: cl.id})
		return
	}
	to, consult, release, err := t.target(req, as.agent.ID)
	if err != nil {
		fail(err)
		return
	}
	if !consult && to.Number == "" {
		if err := t.start(ctx, cl.id, to, false, nil, release); err != nil {
			fail(err)
			return
		}
		as.send(message{Type: "transferred", CallID: cl.id})
		return
	}
	as.send(message{Type: "consult", CallID: cl.id, State: "ringing", Mode: req.Mode})
	go func() {
		onEnd := func(e ivr.ConsultEnd) {
			as.send(message{Type: "consult", CallID: cl.id, State: "ended", Message: string(e)})
		}
		// The target rings for at most the trunk's or the queue's ring timeout; the bound
		// here only keeps a wedged ACD from holding the goroutine.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if err := t.start(tctx, cl.id, to, consult, onEnd, release); err != nil {
			as.send(message{Type: "consult", CallID: cl.id, State: "failed"})
			fail(err)
			return
		}
		if consult {
			as.send(message{Type: "consult", CallID: cl.id, State: "talking"})
			return
		}
		as.send(message{Type: "transferred", CallID: cl.id})
	}()
}

// pageConsult runs the page's consult_complete and consult_cancel messages.
func (as *agentSession) pageConsult(ctx context.Context, cl *callLeg, complete bool) error {
	t := as.s.opts.Transfers
	if t == nil {
		return pageError("this gateway does not transfer by consulting")
	}
	if complete {
		return t.ACD.CompleteConsult(ctx, cl.id)
	}
	return t.ACD.CancelConsult(ctx, cl.id)
}
