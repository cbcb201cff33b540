package ticketing

import (
	"errors"
	"testing"
)

// FuzzDecodeBodies reads arbitrary JSON the way every handler does, without a database: it
// never panics, and every refusal is an ErrInvalid naming at least one field.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range []string{
		`{"ticket":{"requester_id":1,"assignee_id":null,"tags":["a"],"custom_fields":{"csat":5,"queue_name":"support"},"comment":{"body":"x"}}}`,
		`{"ticket":{"custom_fields":{"csat":"great"}}}`, `{"user":{"name":"A","email":null,"phone":"+12125550100"}}`,
		`{"identity":{"type":"phone_number","value":"+12125550100","primary":true}}`, `{"ids":[1,2]}`, `{`, `[]`, `1`, `{"a":`,
		`{"user":{"id":"1"}}`, `{"ticket":{"comment":[]}}`, `{"ticket":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, wrapper := range []string{"user", "identity", "ticket", ""} {
			b, err := parseBody([]byte(raw), wrapper)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) || len(e.Details) == 0 {
					t.Fatalf("wrapper %q: refusal %v is not an ErrInvalid naming a field", wrapper, err)
				}
				continue
			}
			b.str("name")
			b.nullableStr("email")
			b.id("id")
			b.nullableID("assignee_id")
			b.boolean("primary")
			b.strs("tags")
			b.ids("ids")
			_, cf := readCustomFields(b)
			_, cb := readComment(b)
			if err := b.check(cf, cb); err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("wrapper %q: %v", wrapper, err)
			}
		}
	})
}
