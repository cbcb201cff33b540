package config

import (
	"reflect"
	"strings"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Values of TicketEntry.Mode (docs/rules.md TB-1).
const (
	TicketEntryOff      = "off"
	TicketEntryOptional = "optional"
	TicketEntryRequired = "required"
)

// Team is a group of agents sharing outbound options: team ticket entry (docs/rules.md TB).
type Team struct {
	// Name names the team (letters, digits, '_' and '-').
	Name string `yaml:"name"`
	// Agents lists the emails of the team's agents (accounts under agents or users). An agent
	// belongs to at most one team; an agent in no team dials without ticket entry.
	Agents []string `yaml:"agents"`
	// TicketEntry is the team's outbound ticket entry.
	TicketEntry TicketEntry `yaml:"ticket_entry"`
}

// TicketEntry is team ticket entry for outbound calls (docs/rules.md TB-1 … TB-4).
type TicketEntry struct {
	// Mode is off (default), optional (a dial may carry a ticket ID; without one the call
	// gets a new ticket) or required (a dial without a ticket ID is refused).
	Mode string `yaml:"mode"`
	// NumberField names a ticket custom field (ticketing.CustomFields, e.g. caller_number)
	// whose value is the number dialled; empty, or empty on the ticket, dials the requester's
	// primary number (TB-2).
	NumberField string `yaml:"number_field"`
}

// On reports whether ticket entry applies (optional or required).
func (e TicketEntry) On() bool {
	return e.Mode == TicketEntryOptional || e.Mode == TicketEntryRequired
}

// TicketEntryOf returns the ticket entry of the agent with this email (compared without
// regard to case): its team's, or off for an agent in no team.
func (c *Config) TicketEntryOf(email string) TicketEntry {
	for _, t := range c.Teams {
		for _, a := range t.Agents {
			if strings.EqualFold(a, email) {
				return t.TicketEntry
			}
		}
	}
	return TicketEntry{Mode: TicketEntryOff}
}

// TicketTextFields returns the names of the ticket custom fields that hold text (the
// string fields of ticketing.CustomFields, by their JSON names): what number_field may name.
func TicketTextFields() []string {
	var out []string
	t := reflect.TypeOf(ticketing.CustomFields{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if name != "" && name != "-" && ft.Kind() == reflect.String {
			out = append(out, name)
		}
	}
	return out
}

func (c *Config) validateTeams(k *checker) {
	names := map[string]int{}
	member := map[string]string{} // lower-cased email → the path of the team holding it
	fields := TicketTextFields()
	for i := range c.Teams {
		t := &c.Teams[i]
		p := "teams" + index(i)
		switch {
		case t.Name == "":
			k.add(p+".name", "is required")
		case !validName(t.Name):
			k.add(p+".name", "%q is not a name: use letters, digits, '_' and '-'", t.Name)
		default:
			if j, dup := names[t.Name]; dup {
				k.add(p+".name", "%q is already the name of teams[%d]", t.Name, j)
			} else {
				names[t.Name] = i
			}
		}
		for j, email := range t.Agents {
			ap := p + ".agents" + index(j)
			if _, ok := c.Account(email); !ok {
				k.add(ap, "%q is not an agent or user of this configuration; add it under agents or users", email)
				continue
			}
			e := strings.ToLower(email)
			if first, dup := member[e]; dup {
				k.add(ap, "%q is already in %s; an agent belongs to one team", email, first)
				continue
			}
			member[e] = p
		}
		oneOf(k, p+".ticket_entry.mode", t.TicketEntry.Mode, TicketEntryOff, TicketEntryOptional, TicketEntryRequired)
		if f := t.TicketEntry.NumberField; f != "" && !contains(fields, f) {
			k.add(p+".ticket_entry.number_field", "%q is not a ticket text field; use one of %s, or leave it empty for the requester's primary number",
				f, strings.Join(fields, ", "))
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
