package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Ticket choices of an outbound dial (docs/api.md, POST /calls ticket_choice).
const (
	TicketExisting = "existing"
	TicketNew      = "new"
	TicketNone     = "none"
)

// CallRequest is the body of POST /api/v2/calls: {"call":{...}}.
type CallRequest struct {
	To            string `json:"to"`
	ContactID     int64  `json:"contact_id"`
	TicketID      *int64 `json:"ticket_id"`
	TicketChoice  string `json:"ticket_choice"`
	EnteredNumber bool   `json:"entered_number"`
}

// Dial is a validated outbound call, ready for the trunk.
type Dial struct {
	AgentID   int64
	To        string // E.164, normalised
	ContactID int64
	// TicketID is the ticket the agent chose (OB-2); nil with TicketExisting means the
	// contact's most recent unsolved ticket at answer time (OB-1), or a new one if none (TC-7).
	TicketID      *int64
	TicketChoice  string
	EnteredNumber bool // the number is not stored on the contact (OB-5, noted on the ticket: CD-8)
	// Ended gives the agent's call slot back to the Outbound's Guard. A Dialer that returns a
	// call id calls it once that call is over (its error return gives the slot back itself).
	// Never nil when the Dialer sees it; calling it more than once is harmless.
	Ended func() `json:"-"`
}

// Dialer places a validated outbound call through the trunk (the integrator's, with sip) and
// returns its call id. It should put the call on the agent's page with Server.StartCall and
// bridge the answer into the returned leg.
type Dialer interface {
	Dial(ctx context.Context, d Dial) (callID string, err error)
}

// OutboundStore is what the OB rules read; *ticketing.Store satisfies it.
type OutboundStore interface {
	Settings(ctx context.Context) (ticketing.Settings, error)
	User(ctx context.Context, id int64) (ticketing.User, error)
	Identities(ctx context.Context, userID int64) ([]ticketing.Identity, error)
	Ticket(ctx context.Context, id int64) (ticketing.Ticket, error)
	NormalizePhone(raw string, strict bool) (string, error)
}

// Team ticket entry modes (docs/rules.md TB-1; config teams[].ticket_entry.mode).
const (
	TicketEntryOff      = "off"
	TicketEntryOptional = "optional"
	TicketEntryRequired = "required"
)

// TeamEntry is the team ticket entry of an agent's team (docs/rules.md TB-1 … TB-4). Mode is off
// (or empty), optional or required; NumberField names the ticket custom field whose value is
// the number dialled (TB-2), empty for the requester's primary number.
type TeamEntry struct {
	Mode        string `json:"mode"`
	NumberField string `json:"number_field"`
}

// On reports whether ticket entry applies.
func (e TeamEntry) On() bool { return e.Mode == TicketEntryOptional || e.Mode == TicketEntryRequired }

// TeamPolicy returns the ticket entry of the agent with this email (the configuration's
// teams); an agent in no team gets the zero TeamEntry (off).
type TeamPolicy func(agentEmail string) TeamEntry

// Outbound validates an agent's outbound dial against the settings (docs/rules.md OB-1 … OB-6) and
// the agent's team ticket entry (TB-1 … TB-4) before anything is dialled, then hands it to the
// Dialer.
type Outbound struct {
	Store  OutboundStore
	Dialer Dialer
	// Teams tells each agent's team ticket entry; nil means off for everyone.
	Teams TeamPolicy
	// Guard checks the destination and the agent's outbound limits before anything is
	// dialled (toll fraud); nil checks nothing.
	Guard *OutboundGuard
	// Log receives a line for each refusal of the Guard and for each internal error (with the
	// error id the client is given instead of the cause); nil discards.
	Log *slog.Logger
}

func conflict(format string, args ...any) error {
	return &ticketing.Error{Kind: ticketing.ErrConflict, Description: fmt.Sprintf(format, args...)}
}

// entry returns the ticket entry of agent agentID: Teams keyed by the agent's email.
func (o *Outbound) entry(ctx context.Context, agentID int64) (TeamEntry, error) {
	if o.Teams == nil {
		return TeamEntry{}, nil
	}
	u, err := o.Store.User(ctx, agentID)
	if errors.Is(err, ticketing.ErrNotFound) {
		return TeamEntry{}, nil
	}
	if err != nil {
		return TeamEntry{}, fmt.Errorf("web: outbound: agent: %w", err)
	}
	if u.Email == nil {
		return TeamEntry{}, nil
	}
	return o.Teams(*u.Email), nil
}

func forbidden(format string, args ...any) error {
	return &ticketing.Error{Kind: ticketing.ErrForbidden, Description: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &ticketing.Error{Kind: ticketing.ErrInvalid, Description: field + ": " + msg, Details: map[string][]string{field: {msg}}}
}

// Validate applies the rules and returns the call to dial, or a *ticketing.Error: 422 for a
// malformed or missing field and OB-6, 403 for what the settings forbid (OB-3, OB-4, OB-5, a
// ticket choice not offered, TB-4), 409 for a solved or closed ticket (TB-3). When the agent's
// team uses ticket entry (Teams), the TB rules replace the OB choice (validateTeamEntry).
func (o *Outbound) Validate(ctx context.Context, agentID int64, req CallRequest) (Dial, error) {
	te, err := o.entry(ctx, agentID)
	if err != nil {
		return Dial{}, err
	}
	if te.On() {
		return o.validateTeamEntry(ctx, agentID, te, req)
	}
	d := Dial{AgentID: agentID, ContactID: req.ContactID, TicketChoice: req.TicketChoice, EnteredNumber: req.EnteredNumber}
	if d.TicketChoice == "" {
		d.TicketChoice = TicketExisting
	}
	if !slices.Contains([]string{TicketExisting, TicketNew, TicketNone}, d.TicketChoice) {
		return Dial{}, invalid("ticket_choice", "must be existing, new or none")
	}
	if req.To == "" { // rule OB-6
		return Dial{}, invalid("to", "is required: an empty number cannot be dialled")
	}
	settings, err := o.Store.Settings(ctx)
	if err != nil {
		return Dial{}, fmt.Errorf("web: outbound: settings: %w", err)
	}
	ob := settings.Outbound
	to, err := o.Store.NormalizePhone(req.To, settings.PhoneValidation)
	if err != nil {
		return Dial{}, invalid("to", "%q is not an E.164 number", req.To)
	}
	d.To = to
	if req.ContactID == 0 {
		return Dial{}, invalid("contact_id", "is required")
	}
	contact, err := o.Store.User(ctx, req.ContactID)
	if errors.Is(err, ticketing.ErrNotFound) {
		return Dial{}, invalid("contact_id", "no such user")
	}
	if err != nil {
		return Dial{}, fmt.Errorf("web: outbound: contact: %w", err)
	}
	if contact.Placeholder { // rule OB-6: an anonymous caller's placeholder has no real number
		return Dial{}, invalid("contact_id", "is a placeholder for an anonymous caller: there is no number to dial")
	}
	ids, err := o.Store.Identities(ctx, contact.ID)
	if err != nil {
		return Dial{}, fmt.Errorf("web: outbound: identities: %w", err)
	}
	stored := slices.ContainsFunc(ids, func(i ticketing.Identity) bool { return i.Value == to })
	if !stored { // rule OB-5
		if !ob.AllowEnteredNumber {
			return Dial{}, forbidden("Only numbers stored on the contact can be dialled: %s is not one of %s's numbers", to, contact.Name)
		}
		d.EnteredNumber = true
	} else {
		d.EnteredNumber = false
	}
	switch d.TicketChoice {
	case TicketNew: // rule OB-3
		if !ob.PromptTicketChoice || !ob.AllowNewTicket {
			return Dial{}, forbidden("A new ticket cannot be chosen for an outbound call: an existing unsolved ticket is used")
		}
		if req.TicketID != nil {
			return Dial{}, invalid("ticket_id", "must be empty with a new ticket")
		}
	case TicketNone: // rule OB-4
		if !ob.AllowNoTicket {
			return Dial{}, forbidden("Calls without a ticket are not allowed")
		}
		if req.TicketID != nil {
			return Dial{}, invalid("ticket_id", "must be empty with no ticket")
		}
	case TicketExisting:
		if req.TicketID == nil {
			break // rule OB-1 (or OB-2 without a pick): the most recent unsolved ticket at answer
		}
		if !ob.PromptTicketChoice { // rule OB-1: the choice is not the agent's
			return Dial{}, forbidden("Choosing the ticket is turned off: the contact's most recent unsolved ticket is used")
		}
		tk, err := o.Store.Ticket(ctx, *req.TicketID) // rule OB-2
		if errors.Is(err, ticketing.ErrNotFound) {
			return Dial{}, invalid("ticket_id", "no such ticket")
		}
		if err != nil {
			return Dial{}, fmt.Errorf("web: outbound: ticket: %w", err)
		}
		if tk.RequesterID != contact.ID {
			return Dial{}, invalid("ticket_id", "ticket %d is not %s's", tk.ID, contact.Name)
		}
		if tk.Status == ticketing.StatusSolved || tk.Status == ticketing.StatusClosed { // rule TB-3
			return Dial{}, conflict("Ticket %d is %s: a call cannot be added to it", tk.ID, tk.Status)
		}
		id := tk.ID
		d.TicketID = &id
	}
	return d, nil
}

// validateTeamEntry applies team ticket entry (docs/rules.md TB-1 … TB-4), which replaces the OB
// ticket choice and number rules for the agent's dial:
//   - TB-4: entered_number is refused (403) whatever allow_entered_number says.
//   - TB-1: with a ticket_id the call goes to that ticket. Without one: required refuses the dial
//     (422 naming ticket_id; 403 when the request dials a contact's number directly), optional
//     dials the contact's stored number and always makes a new ticket (no OB-1 auto-pick).
//     "no ticket" is not offered (403).
//   - TB-2: the number is the ticket field NumberField's value when set and not empty,
//     otherwise the requester's primary number; a request's to must be empty or that number
//     (403 otherwise, TB-4); contact_id must be empty or the requester.
//   - TB-3: new, open, pending and hold tickets take the call; solved and closed are 409.
func (o *Outbound) validateTeamEntry(ctx context.Context, agentID int64, te TeamEntry, req CallRequest) (Dial, error) {
	const on = "Team ticket entry is on for your team"
	if req.EnteredNumber { // rule TB-4
		return Dial{}, forbidden("%s: entered numbers cannot be dialled; enter a ticket ID and the ticket's number is called", on)
	}
	switch req.TicketChoice {
	case "", TicketExisting, TicketNew:
	case TicketNone:
		return Dial{}, forbidden("%s: a call goes to the entered ticket or a new one, \"no ticket\" is not offered", on)
	default:
		return Dial{}, invalid("ticket_choice", "must be existing, new or none")
	}
	settings, err := o.Store.Settings(ctx)
	if err != nil {
		return Dial{}, fmt.Errorf("web: outbound: settings: %w", err)
	}
	if req.TicketID == nil {
		if te.Mode == TicketEntryRequired { // rule TB-1
			if req.To != "" || req.ContactID != 0 { // rule TB-4
				return Dial{}, &ticketing.Error{Kind: ticketing.ErrForbidden,
					Description: on + ": a ticket ID is required; dialling a contact's number directly is not allowed",
					Details:     map[string][]string{"ticket_id": {"is required: team ticket entry is on"}}}
			}
			return Dial{}, invalid("ticket_id", "is required: team ticket entry is on for your team; enter the ticket to call from")
		}
		// Rule TB-1 optional: no ticket given → a new ticket, to one of the contact's numbers.
		d, err := o.contactDial(ctx, agentID, settings, req)
		if err != nil {
			return Dial{}, err
		}
		d.TicketChoice = TicketNew
		return d, nil
	}
	if req.TicketChoice == TicketNew {
		return Dial{}, invalid("ticket_id", "must be empty with a new ticket")
	}
	tk, err := o.Store.Ticket(ctx, *req.TicketID)
	if errors.Is(err, ticketing.ErrNotFound) {
		return Dial{}, invalid("ticket_id", "no such ticket")
	}
	if err != nil {
		return Dial{}, fmt.Errorf("web: outbound: ticket: %w", err)
	}
	if !tk.Unsolved() { // rule TB-3
		if tk.MergedIntoID != nil {
			return Dial{}, conflict("Ticket %d was merged into ticket %d: enter that one", tk.ID, *tk.MergedIntoID)
		}
		return Dial{}, conflict("Ticket %d is %s: a call cannot be added to it; enter another ticket", tk.ID, tk.Status)
	}
	requester, err := o.Store.User(ctx, tk.RequesterID)
	if err != nil {
		return Dial{}, fmt.Errorf("web: outbound: requester: %w", err)
	}
	if req.ContactID != 0 && req.ContactID != requester.ID {
		return Dial{}, invalid("contact_id", "ticket %d is %s's: leave contact_id empty or give theirs", tk.ID, requester.Name)
	}
	if requester.Placeholder { // rule OB-6
		return Dial{}, invalid("ticket_id", "ticket %d's requester is an anonymous caller: there is no number to dial", tk.ID)
	}
	// Rule TB-2: the named field's value, else the requester's primary number.
	raw, from := "", "the requester's primary number"
	if te.NumberField != "" {
		if v, ok := customField(tk.CustomFields, te.NumberField); ok && strings.TrimSpace(v) != "" {
			raw, from = v, "the ticket field "+te.NumberField
		}
	}
	if raw == "" && requester.Phone != nil {
		raw = *requester.Phone
	}
	if raw == "" { // rule OB-6
		return Dial{}, invalid("ticket_id", "ticket %d's requester %s has no phone number to dial", tk.ID, requester.Name)
	}
	to, err := o.Store.NormalizePhone(raw, settings.PhoneValidation)
	if err != nil {
		return Dial{}, invalid("ticket_id", "%s of ticket %d holds %q, which is not a phone number", from, tk.ID, raw)
	}
	if req.To != "" {
		given, err := o.Store.NormalizePhone(req.To, settings.PhoneValidation)
		if err != nil {
			return Dial{}, invalid("to", "%q is not an E.164 number", req.To)
		}
		if given != to { // rule TB-4
			return Dial{}, forbidden("%s: the number dialled is the ticket's (%s, %s); %s cannot be dialled directly", on, to, from, given)
		}
	}
	id := tk.ID
	return Dial{AgentID: agentID, To: to, ContactID: requester.ID, TicketID: &id, TicketChoice: TicketExisting}, nil
}

// contactDial checks a dial to one of a contact's stored numbers (OB-5 without entered
// numbers, OB-6): team ticket entry's optional dial without a ticket.
func (o *Outbound) contactDial(ctx context.Context, agentID int64, settings ticketing.Settings, req CallRequest) (Dial, error) {
	if req.To == "" { // rule OB-6
		return Dial{}, invalid("to", "is required: an empty number cannot be dialled (or enter a ticket ID)")
	}
	to, err := o.Store.NormalizePhone(req.To, settings.PhoneValidation)
	if err != nil {
		return Dial{}, invalid("to", "%q is not an E.164 number", req.To)
	}
	if req.ContactID == 0 {
		return Dial{}, invalid("contact_id", "is required without a ticket ID")
	}
	contact, err := o.Store.User(ctx, req.ContactID)
	if errors.Is(err, ticketing.ErrNotFound) {
		return Dial{}, invalid("contact_id", "no such user")
	}
	if err != nil {
		return Dial{}, fmt.Errorf("web: outbound: contact: %w", err)
	}
	if contact.Placeholder { // rule OB-6
		return Dial{}, invalid("contact_id", "is a placeholder for an anonymous caller: there is no number to dial")
	}
	ids, err := o.Store.Identities(ctx, contact.ID)
	if err != nil {
		return Dial{}, fmt.Errorf("web: outbound: identities: %w", err)
	}
	if !slices.ContainsFunc(ids, func(i ticketing.Identity) bool { return i.Value == to }) { // rule TB-4
		return Dial{}, forbidden("Team ticket entry is on for your team: entered numbers cannot be dialled; %s is not one of %s's numbers", to, contact.Name)
	}
	return Dial{AgentID: agentID, To: to, ContactID: contact.ID}, nil
}

// customField returns the text value of the ticket custom field with this JSON name
// (ticketing.CustomFields), and whether such a text field exists and is set.
func customField(cf ticketing.CustomFields, name string) (string, bool) {
	v := reflect.ValueOf(cf)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if tag != name {
			continue
		}
		f := v.Field(i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				return "", false
			}
			f = f.Elem()
		}
		if f.Kind() != reflect.String {
			return "", false
		}
		return f.String(), true
	}
	return "", false
}

// Handler serves POST /api/v2/calls: agentID tells who is calling (the integrator's API
// authentication, which also accepts the softphone cookie); 401 when it says no one.
// 201 {"call":{"id", "direction":"outbound", "to", "contact_id", "ticket_id", "ticket_choice",
// "entered_number"}} once the Dialer accepted the call; refusals as the API's errors.
func (o *Outbound) Handler(agentID func(*http.Request) (int64, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := agentID(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "Unauthorized", "log in")
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
		if err != nil {
			writeAPIError(w, invalid("body", "is larger than 16 KiB or cannot be read"))
			return
		}
		var call CallRequest
		if err := decodeWrapped(raw, "call", &call); err != nil { // unknown fields: 422 naming them
			writeAPIError(w, err)
			return
		}
		d, err := o.Validate(r.Context(), id, call)
		if err != nil {
			o.writeError(w, err)
			return
		}
		d.Ended = func() {}
		if g := o.Guard; g != nil {
			if reason := g.Destination(d.To); reason != "" {
				g.refuse(reason)
				o.logRefusal(id, d.To, reason)
				writeJSON(w, http.StatusForbidden, map[string]any{"error": "Forbidden", "reason": reason,
					"description": fmt.Sprintf("%s cannot be dialled through this gateway's trunk (%s)", d.To, reason),
					"details":     map[string][]string{"to": {"is a destination the trunk refuses (" + reason + ")"}}})
				return
			}
			release, reason, retry := g.acquire(id)
			if reason != "" {
				g.refuse(reason)
				o.logRefusal(id, d.To, reason)
				desc := fmt.Sprintf("You have %d outbound calls in progress, the most allowed", g.opts.MaxCalls)
				if reason == RefusedRate {
					w.Header().Set("Retry-After", fmt.Sprint(retrySeconds(retry)))
					desc = fmt.Sprintf("You have started %d outbound calls in the last minute, the most allowed: try again in %d s",
						g.opts.CallsPerMinute, retrySeconds(retry))
				}
				writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "TooManyRequests", "reason": reason, "description": desc})
				return
			}
			g.calls.Inc()
			d.Ended = release
		}
		callID, err := o.Dialer.Dial(r.Context(), d)
		if err != nil {
			d.Ended()
			o.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"call": map[string]any{"id": callID, "direction": "outbound", "to": d.To,
			"contact_id": d.ContactID, "ticket_id": d.TicketID, "ticket_choice": d.TicketChoice, "entered_number": d.EnteredNumber}})
	})
}

// logRefusal logs a dial the Guard refused; to is a normalised E.164 number, safe to log.
func (o *Outbound) logRefusal(agentID int64, to, reason string) {
	if o.Log != nil {
		o.Log.Warn("outbound call refused", "agent_id", agentID, "to", to, "reason", reason)
	}
}

// writeError is writeAPIError, and for an internal error (neither a *ticketing.Error nor a
// Dialer's ErrNotConnected or ErrBusy) also logs its cause under the error id the client gets.
func (o *Outbound) writeError(w http.ResponseWriter, err error) {
	var te *ticketing.Error
	if errors.As(err, &te) || errors.Is(err, ErrNotConnected) || errors.Is(err, ErrBusy) {
		writeAPIError(w, err)
		return
	}
	id := logInternal(o.Log, "web: outbound call failed", err)
	writeError(w, http.StatusInternalServerError, "InternalError", "the call could not be placed: internal error (id "+id+")")
}

// writeAPIError writes a *ticketing.Error with its status and name (docs/api.md); anything
// else is a 500 (a Dialer may return ErrNotConnected or ErrBusy: 409).
func writeAPIError(w http.ResponseWriter, err error) {
	var te *ticketing.Error
	switch {
	case errors.As(err, &te):
		code, name := http.StatusInternalServerError, "InternalError"
		switch {
		case errors.Is(te.Kind, ticketing.ErrInvalid):
			code, name = http.StatusUnprocessableEntity, "RecordInvalid"
		case errors.Is(te.Kind, ticketing.ErrNotFound):
			code, name = http.StatusNotFound, "RecordNotFound"
		case errors.Is(te.Kind, ticketing.ErrConflict):
			code, name = http.StatusConflict, "Conflict"
		case errors.Is(te.Kind, ticketing.ErrForbidden):
			code, name = http.StatusForbidden, "Forbidden"
		case errors.Is(te.Kind, ticketing.ErrUnauthorized):
			code, name = http.StatusUnauthorized, "Unauthorized"
		}
		body := map[string]any{"error": name, "description": te.Description}
		if len(te.Details) > 0 {
			body["details"] = te.Details
		}
		writeJSON(w, code, body)
	case errors.Is(err, ErrNotConnected):
		writeError(w, http.StatusConflict, "Conflict", "Open the softphone page before dialling")
	case errors.Is(err, ErrBusy):
		writeError(w, http.StatusConflict, "Conflict", "You are already on a call")
	default:
		writeError(w, http.StatusInternalServerError, "InternalError", "the call could not be placed")
	}
}
