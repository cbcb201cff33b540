package config

import (
	"strings"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Team is a group of agents sharing outbound options: team ticket entry (docs/rules.md TB).
type Team struct {
	// Name names the team (letters, digits, '_' and '-').
	Name string `yaml:"name"`
	// Agents lists the emails of the team's agents (accounts under agents or users). An agent
	// belongs to at most one team; an agent in no team dials without ticket entry.
	Agents []string `yaml:"agents"`
	// TicketEntry is the team's outbound ticket entry: mode off (default), optional or
	// required, and number_field (docs/rules.md TB-1 … TB-4).
	TicketEntry ticketing.TicketEntry `yaml:"ticket_entry"`
}

// TicketEntryOf returns the ticket entry of the agent with this email (compared without
// regard to case): its team's, or off for an agent in no team.
// It is the team policy of the agent page and of POST /api/v2/calls (web.TeamPolicy).
func (c *Config) TicketEntryOf(email string) ticketing.TicketEntry {
	for _, t := range c.Teams {
		for _, a := range t.Agents {
			if strings.EqualFold(a, email) {
				return t.TicketEntry
			}
		}
	}
	return ticketing.TicketEntry{Mode: ticketing.TicketEntryOff}
}

func (c *Config) validateTeams(k *checker) {
	names := map[string]int{}
	member := map[string]string{} // lower-cased email → the path of the team holding it
	fields := ticketing.TextFieldNames()
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
		oneOf(k, p+".ticket_entry.mode", t.TicketEntry.Mode, ticketing.TicketEntryOff, ticketing.TicketEntryOptional, ticketing.TicketEntryRequired)
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
