package ticketing

import (
	"context"
	"fmt"
)

// PlanDialledNumber applies the outbound rules to a number dialled with no contact or ticket
// chosen — an agent's SIP phone's own call, which carries nothing but the number — as
// PlanOutboundCall does to the page's dial:
//   - The number must be one (OB-6: 422 naming to when empty or not a phone number).
//   - A number a user holds (UsersByPhone's order, PM-10, PM-11: the direct owner first, else
//     the most recently created holder; anonymous callers' placeholders are skipped) is a dial
//     to that contact: PlanOutboundCall decides under the agent's team ticket entry, with the
//     ticket choice existing (OB-1, TC-7) — so under required ticket entry it is refused (403,
//     TB-1, TB-4: a ticket ID cannot be entered from a phone).
//   - A number no user holds is an entered number: refused (403) unless allow_entered_number
//     (OB-5) and always under team ticket entry (TB-4); allowed, the plan names no contact
//     (the rules engine resolves the callee by the PM rules when the call starts, TC-2) and is
//     noted as entered (CD-8).
func (s *Store) PlanDialledNumber(ctx context.Context, number string, entry TicketEntry) (OutboundPlan, error) {
	if number == "" { // rule OB-6
		return OutboundPlan{}, invalidField("to", "is required: an empty number cannot be dialled")
	}
	settings, err := s.Settings(ctx)
	if err != nil {
		return OutboundPlan{}, fmt.Errorf("ticketing: plan dialled number: settings: %w", err)
	}
	to, err := s.NormalizePhone(number, settings.PhoneValidation)
	if err != nil {
		return OutboundPlan{}, invalidField("to", "%q is not an E.164 number", number)
	}
	hs, err := holders(ctx, s.pool, to)
	if err != nil {
		return OutboundPlan{}, err
	}
	for _, h := range hs {
		if h.User.Placeholder {
			continue
		}
		return s.PlanOutboundCall(ctx, OutboundCall{To: to, ContactID: h.User.ID}, entry)
	}
	if entry.On() { // rule TB-4
		return OutboundPlan{}, forbidden("Team ticket entry is on for your team: %s is no contact's number, and entered numbers cannot be dialled", to)
	}
	if !settings.Outbound.AllowEnteredNumber { // rule OB-5
		return OutboundPlan{}, forbidden("Only numbers stored on a contact can be dialled: %s is no contact's number", to)
	}
	return OutboundPlan{To: to, TicketChoice: TicketChoiceExisting, EnteredNumber: true}, nil
}
