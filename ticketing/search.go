package ticketing

import (
	"bytes"
	"encoding/json"
)

// SearchResult is one result of GET /search: a ticket or a user with its result_type, as
// Zendesk lists them.
type SearchResult struct {
	Ticket *Ticket
	User   *User
}

// MarshalJSON writes the resource's own fields with "result_type" added.
func (r SearchResult) MarshalJSON() ([]byte, error) {
	var kind string
	var v any
	switch {
	case r.Ticket != nil:
		kind, v = "ticket", r.Ticket
	case r.User != nil:
		kind, v = "user", r.User
	default:
		return []byte("null"), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("}"))
	return append(b, []byte(`,"result_type":"`+kind+`"}`)...), nil
}
