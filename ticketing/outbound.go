package ticketing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Ticket choices of an outbound call (docs/api.md, POST /calls ticket_choice; rules OB-1 … OB-4).
const (
	TicketChoiceExisting = "existing"
	TicketChoiceNew      = "new"
	TicketChoiceNone     = "none"
)

// Modes of team ticket entry (docs/rules.md TB-1; the configuration's teams[].ticket_entry.mode).
const (
	TicketEntryOff      = "off"
	TicketEntryOptional = "optional"
	TicketEntryRequired = "required"
)

// TicketEntry is the outbound ticket entry of an agent's team (docs/rules.md TB-1 … TB-4), as
// the configuration writes it (teams[].ticket_entry) and the agent's page reads it (/session).
// The zero value is off.
type TicketEntry struct {
	// Mode is off (or empty), optional (a dial may carry a ticket ID; without one the call
	// gets a new ticket) or required (a dial without a ticket ID is refused).
	Mode string `yaml:"mode" json:"mode"`
	// NumberField names a text custom field of the ticket (TextFieldNames, e.g. caller_number)
	// whose value is the number dialled; empty, or empty on the ticket, dials the requester's
	// primary number (TB-2).
	NumberField string `yaml:"number_field" json:"number_field"`
}

// On reports whether ticket entry applies (optional or required).
func (e TicketEntry) On() bool { return e.Mode == TicketEntryOptional || e.Mode == TicketEntryRequired }

// OutboundCall is an agent's outbound dial as asked: the body of POST /api/v2/calls,
// {"call":{...}}.
type OutboundCall struct {
	To        string `json:"to"`
	ContactID int64  `json:"contact_id"`
	TicketID  *int64 `json:"ticket_id"`
	// TicketChoice is existing (the default when empty), new or none.
	TicketChoice  string `json:"ticket_choice"`
	EnteredNumber bool   `json:"entered_number"`
	// FromLine is the line (its E.164 number) the call is placed from (OB-7): the caller ID.
	// The lines are the gateway's configuration, not the ticketing core's: PlanOutboundCall
	// does not read it; the gateway checks it (web.Outbound).
	FromLine string `json:"from_line"`
}

// OutboundPlan is what an accepted outbound call dials and which ticket it goes to.
type OutboundPlan struct {
	To        string // E.164, normalised
	ContactID int64
	// TicketID is the ticket the agent chose (OB-2, TB-1); nil with TicketChoiceExisting means
	// the contact's most recent unsolved ticket at answer time (OB-1), or a new one if none (TC-7).
	TicketID     *int64
	TicketChoice string
	// EnteredNumber says the number is not stored on the contact (OB-5, noted on the ticket: CD-8).
	EnteredNumber bool
	// CallbackLine, set by Engine.PlanCallback only, is the line of the call called back: the
	// number the caller dialled, or the line an outbound call went out on. The callback goes
	// out on it when it can place outbound calls (OB-7), so the person sees the number they know.
	CallbackLine string
}

// PlanOutboundCall applies the outbound rules to an agent's dial before anything is dialled:
// the OB rules (docs/rules.md OB-1 … OB-6, TB-3) against the voice settings, or, when the
// agent's team uses ticket entry (entry.On), the TB rules (TB-1 … TB-4) that replace the OB
// ticket choice and number rules. A ticket_id with the choice existing is a call from that
// ticket (TC-6) under any OB settings; contact_id may then be left empty (the ticket's
// requester). It reads and writes nothing but the users, identities, tickets and settings it
// checks. A refusal is an *Error: ErrInvalid (422) for a malformed or missing field, OB-6 and
// a ticket that is not the contact's, naming the field; ErrForbidden (403) for what the
// settings or ticket entry forbid (OB-3, OB-4, OB-5, a ticket choice not offered, TB-4);
// ErrConflict (409) for a closed or merged ticket (TC-6), and under ticket entry a solved one
// too (TB-3), naming ticket_id. Anything else is the database's error.
func (s *Store) PlanOutboundCall(ctx context.Context, call OutboundCall, entry TicketEntry) (OutboundPlan, error) {
	if entry.On() {
		return s.planTicketEntry(ctx, call, entry)
	}
	p := OutboundPlan{ContactID: call.ContactID, TicketChoice: call.TicketChoice, EnteredNumber: call.EnteredNumber}
	if p.TicketChoice == "" {
		p.TicketChoice = TicketChoiceExisting
	}
	if !slices.Contains([]string{TicketChoiceExisting, TicketChoiceNew, TicketChoiceNone}, p.TicketChoice) {
		return OutboundPlan{}, invalidField("ticket_choice", "must be existing, new or none")
	}
	settings, err := s.Settings(ctx)
	if err != nil {
		return OutboundPlan{}, fmt.Errorf("ticketing: plan outbound call: settings: %w", err)
	}
	ob := settings.Outbound
	var picked *Ticket
	if call.TicketID != nil && p.TicketChoice == TicketChoiceExisting {
		// Rule TC-6: a call from a ticket. Its requester is the contact when none is given.
		tk, err := s.fromTicket(ctx, *call.TicketID)
		if err != nil {
			return OutboundPlan{}, err
		}
		picked = &tk
		if call.ContactID == 0 {
			call.ContactID = tk.RequesterID
			p.ContactID = tk.RequesterID
		}
	}
	to, contact, stored, err := s.dialledContact(ctx, settings, call, "")
	if err != nil {
		return OutboundPlan{}, err
	}
	p.To = to
	if !stored { // rule OB-5
		if !ob.AllowEnteredNumber {
			return OutboundPlan{}, forbidden("Only numbers stored on the contact can be dialled: %s is not one of %s's numbers", to, contact.Name)
		}
		p.EnteredNumber = true
	} else {
		p.EnteredNumber = false
	}
	switch p.TicketChoice {
	case TicketChoiceNew: // rule OB-3
		if !ob.PromptTicketChoice || !ob.AllowNewTicket {
			return OutboundPlan{}, forbidden("A new ticket cannot be chosen for an outbound call: an existing unsolved ticket is used")
		}
		if call.TicketID != nil {
			return OutboundPlan{}, invalidField("ticket_id", "must be empty with a new ticket")
		}
	case TicketChoiceNone: // rule OB-4
		if !ob.AllowNoTicket {
			return OutboundPlan{}, forbidden("Calls without a ticket are not allowed")
		}
		if call.TicketID != nil {
			return OutboundPlan{}, invalidField("ticket_id", "must be empty with no ticket")
		}
	case TicketChoiceExisting:
		if picked == nil {
			// Rules OB-1, OB-3 (and OB-2 without a pick): the contact's most recent unsolved
			// ticket at answer, whether or not the agent was prompted; a new one if none (TC-7).
			break
		}
		// Rules TC-6, OB-2: the ticket the call is placed from, under any settings (OB-1's
		// prompt_ticket_choice only says whether the page asks). It must be the contact's.
		if picked.RequesterID != contact.ID {
			return OutboundPlan{}, invalidField("ticket_id", "ticket %d is not %s's: call its requester, or leave contact_id empty", picked.ID, contact.Name)
		}
		id := picked.ID
		p.TicketID = &id
	}
	return p, nil
}

// fromTicket reads the ticket an outbound call is placed from (TC-6): unknown is a 422 on
// ticket_id; closed (or merged, which closes it: TM-1) is a 409 naming ticket_id, since a
// call cannot be added to it. A solved ticket takes the call and is reopened when the call is
// answered (TU-2).
func (s *Store) fromTicket(ctx context.Context, id int64) (Ticket, error) {
	tk, err := s.outboundTicket(ctx, id)
	if err != nil {
		return Ticket{}, err
	}
	if tk.MergedIntoID != nil {
		return Ticket{}, conflictField("ticket_id", "ticket %d was merged into ticket %d: call from that one", tk.ID, *tk.MergedIntoID)
	}
	if tk.Status == StatusClosed {
		return Ticket{}, conflictField("ticket_id", "ticket %d is closed: a call cannot be added to it; pick another ticket", tk.ID)
	}
	return tk, nil
}

// planTicketEntry applies team ticket entry (docs/rules.md TB-1 … TB-4), which replaces the OB
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
func (s *Store) planTicketEntry(ctx context.Context, call OutboundCall, entry TicketEntry) (OutboundPlan, error) {
	const on = "Team ticket entry is on for your team"
	if call.EnteredNumber { // rule TB-4
		return OutboundPlan{}, forbidden("%s: entered numbers cannot be dialled; enter a ticket ID and the ticket's number is called", on)
	}
	switch call.TicketChoice {
	case "", TicketChoiceExisting, TicketChoiceNew:
	case TicketChoiceNone:
		return OutboundPlan{}, forbidden("%s: a call goes to the entered ticket or a new one, \"no ticket\" is not offered", on)
	default:
		return OutboundPlan{}, invalidField("ticket_choice", "must be existing, new or none")
	}
	settings, err := s.Settings(ctx)
	if err != nil {
		return OutboundPlan{}, fmt.Errorf("ticketing: plan outbound call: settings: %w", err)
	}
	if call.TicketID == nil {
		if entry.Mode == TicketEntryRequired { // rule TB-1
			if call.To != "" || call.ContactID != 0 { // rule TB-4
				return OutboundPlan{}, &Error{Kind: ErrForbidden,
					Description: on + ": a ticket ID is required; dialling a contact's number directly is not allowed",
					Details:     map[string][]string{"ticket_id": {"is required: team ticket entry is on"}}}
			}
			return OutboundPlan{}, invalidField("ticket_id", "is required: team ticket entry is on for your team; enter the ticket to call from")
		}
		// Rule TB-1 optional: no ticket given → a new ticket, to one of the contact's numbers.
		return s.planContactDial(ctx, settings, call)
	}
	if call.TicketChoice == TicketChoiceNew {
		return OutboundPlan{}, invalidField("ticket_id", "must be empty with a new ticket")
	}
	tk, err := s.outboundTicket(ctx, *call.TicketID)
	if err != nil {
		return OutboundPlan{}, err
	}
	if !tk.Unsolved() { // rule TB-3
		if tk.MergedIntoID != nil {
			return OutboundPlan{}, conflict("Ticket %d was merged into ticket %d: enter that one", tk.ID, *tk.MergedIntoID)
		}
		return OutboundPlan{}, conflict("Ticket %d is %s: a call cannot be added to it; enter another ticket", tk.ID, tk.Status)
	}
	requester, err := s.User(ctx, tk.RequesterID)
	if err != nil {
		return OutboundPlan{}, fmt.Errorf("ticketing: plan outbound call: requester: %w", err)
	}
	if call.ContactID != 0 && call.ContactID != requester.ID {
		return OutboundPlan{}, invalidField("contact_id", "ticket %d is %s's: leave contact_id empty or give theirs", tk.ID, requester.Name)
	}
	if requester.Placeholder { // rule OB-6
		return OutboundPlan{}, invalidField("ticket_id", "ticket %d's requester is an anonymous caller: there is no number to dial", tk.ID)
	}
	// Rule TB-2: the named field's value, else the requester's primary number.
	raw, from := "", "the requester's primary number"
	if entry.NumberField != "" {
		if v, ok := tk.CustomFields.Text(entry.NumberField); ok && strings.TrimSpace(v) != "" {
			raw, from = v, "the ticket field "+entry.NumberField
		}
	}
	if raw == "" && requester.Phone != nil {
		raw = *requester.Phone
	}
	if raw == "" { // rule OB-6
		return OutboundPlan{}, invalidField("ticket_id", "ticket %d's requester %s has no phone number to dial", tk.ID, requester.Name)
	}
	to, err := s.NormalizePhone(raw, settings.PhoneValidation)
	if err != nil {
		return OutboundPlan{}, invalidField("ticket_id", "%s of ticket %d holds %q, which is not a phone number", from, tk.ID, raw)
	}
	if call.To != "" {
		given, err := s.NormalizePhone(call.To, settings.PhoneValidation)
		if err != nil {
			return OutboundPlan{}, invalidField("to", "%q is not an E.164 number", call.To)
		}
		if given != to { // rule TB-4
			return OutboundPlan{}, forbidden("%s: the number dialled is the ticket's (%s, %s); %s cannot be dialled directly", on, to, from, given)
		}
	}
	id := tk.ID
	return OutboundPlan{To: to, ContactID: requester.ID, TicketID: &id, TicketChoice: TicketChoiceExisting}, nil
}

// planContactDial is team ticket entry's optional dial without a ticket (TB-1): one of the
// contact's stored numbers (TB-4: no entered numbers; OB-6), always to a new ticket.
func (s *Store) planContactDial(ctx context.Context, settings Settings, call OutboundCall) (OutboundPlan, error) {
	to, contact, stored, err := s.dialledContact(ctx, settings, call, "a ticket ID")
	if err != nil {
		return OutboundPlan{}, err
	}
	if !stored { // rule TB-4
		return OutboundPlan{}, forbidden("Team ticket entry is on for your team: entered numbers cannot be dialled; %s is not one of %s's numbers", to, contact.Name)
	}
	return OutboundPlan{To: to, ContactID: contact.ID, TicketChoice: TicketChoiceNew}, nil
}

// dialledContact checks the number and the contact of a dial to a contact (no ticket named):
// to is required (OB-6) and a phone number, contact_id is required, a user and not an anonymous
// caller's placeholder (OB-6: no real number to dial), each refusal a 422 naming the field. It
// returns the number in E.164, the contact, and whether the number is one of theirs. A
// non-empty or names what the agent could give instead ("a ticket ID") in the refusals.
func (s *Store) dialledContact(ctx context.Context, settings Settings, call OutboundCall, or string) (string, User, bool, error) {
	orHint, without := "", ""
	if or != "" {
		orHint, without = " (or enter "+or+")", " without "+or
	}
	if call.To == "" { // rule OB-6
		return "", User{}, false, invalidField("to", "is required: an empty number cannot be dialled%s", orHint)
	}
	to, err := s.NormalizePhone(call.To, settings.PhoneValidation)
	if err != nil {
		return "", User{}, false, invalidField("to", "%q is not an E.164 number", call.To)
	}
	if call.ContactID == 0 {
		return "", User{}, false, invalidField("contact_id", "is required%s", without)
	}
	contact, err := s.User(ctx, call.ContactID)
	if errors.Is(err, ErrNotFound) {
		return "", User{}, false, invalidField("contact_id", "no such user")
	}
	if err != nil {
		return "", User{}, false, fmt.Errorf("ticketing: plan outbound call: contact: %w", err)
	}
	if contact.Placeholder { // rule OB-6: an anonymous caller's placeholder has no real number
		return "", User{}, false, invalidField("contact_id", "is a placeholder for an anonymous caller: there is no number to dial")
	}
	ids, err := s.Identities(ctx, contact.ID)
	if err != nil {
		return "", User{}, false, fmt.Errorf("ticketing: plan outbound call: identities: %w", err)
	}
	return to, contact, slices.ContainsFunc(ids, func(i Identity) bool { return i.Value == to }), nil
}

// outboundTicket reads the ticket a dial names; an unknown one is a 422 on ticket_id (an id in
// the body, not the path).
func (s *Store) outboundTicket(ctx context.Context, id int64) (Ticket, error) {
	tk, err := s.Ticket(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Ticket{}, invalidField("ticket_id", "no such ticket")
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("ticketing: plan outbound call: ticket: %w", err)
	}
	return tk, nil
}

func forbidden(format string, args ...any) *Error {
	return &Error{Kind: ErrForbidden, Description: fmt.Sprintf(format, args...)}
}

// TextFieldNames returns the JSON names of the ticket custom fields that hold text, in
// declaration order: what a team's ticket_entry.number_field may name (TB-2).
func TextFieldNames() []string {
	var names []string
	for name := range (CustomFields{}).text() {
		names = append(names, name)
	}
	return names
}

// Text returns the value of the text custom field with this JSON name (TextFieldNames), and
// whether such a field exists and is set on the ticket.
func (cf CustomFields) Text(name string) (string, bool) {
	for n, v := range cf.text() {
		if n == name {
			return deref(v), v != nil
		}
	}
	return "", false
}

// text yields each text custom field (a *string field, by its JSON name) with its value, nil
// when unset. It is the one place that walks CustomFields by reflection, so a text field added
// to the struct is at once dialable (TB-2) and accepted by the configuration's number_field.
func (cf CustomFields) text() func(yield func(string, *string) bool) {
	return func(yield func(string, *string) bool) {
		v := reflect.ValueOf(cf)
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || f.Type != reflect.TypeFor[*string]() {
				continue
			}
			if !yield(name, v.Field(i).Interface().(*string)) {
				return
			}
		}
	}
}
