package ticketing_test

import (
	"fmt"
	"net/http"
	"testing"
)

// FuzzAPIBodies sends arbitrary bodies to every endpoint that reads one: the answer is never
// a 5xx and always matches the OpenAPI description (both checked by env.call).
func FuzzAPIBodies(f *testing.F) {
	e := newEnv(f)
	u := e.newUser("Fuzz", "+12125550190")
	tk := e.newTicket(u, nil)
	endpoints := []struct{ method, path string }{
		{"POST", "/users"},
		{"PUT", fmt.Sprintf("/users/%d", u)},
		{"POST", fmt.Sprintf("/users/%d/identities", u)},
		{"PUT", fmt.Sprintf("/users/%d/merge", u)},
		{"POST", "/tickets"},
		{"PUT", fmt.Sprintf("/tickets/%d", tk)},
		{"POST", fmt.Sprintf("/tickets/%d/comments", tk)},
		{"POST", fmt.Sprintf("/tickets/%d/merge", tk)},
		{"PUT", "/settings/voice"},
	}
	seeds := []string{
		``, `{`, `[]`, `null`, `"x"`, `{"user":{"name":"A","phone":"+12125550191"}}`, `{"user":{"name":5}}`,
		`{"user":{"email":null,"phone":null}}`, `{"identity":{"value":"+1 212 555 0192"}}`, `{"identity":{"value":12}}`,
		`{"user":{"id":1}}`, `{"user":{"id":1e3}}`, `{"ticket":{"requester_id":1,"tags":["a"],"custom_fields":{"csat":5}}}`,
		`{"ticket":{"status":"solved","assignee_id":null}}`, `{"ticket":{"custom_fields":[]}}`, `{"comment":{"body":"hi","public":false}}`,
		`{"ids":[1,2,3]}`, `{"ids":[-1]}`, `{"settings":{"outbound":{"prompt_ticket_choice":true,"allow_new_ticket":true}}}`,
		`{"settings":{"callback_append_window":"10s"}}`, `{"settings":{"callback_append_window":1e400}}`, `{"settings":{"write_batching":null}}`,
		"{\"user\":{\"name\":\"\\u0000\"}}", `{"user":{"name":"` + string([]byte{0xff, 0xfe}) + `"}}`,
	}
	for i, s := range seeds {
		for j := range endpoints {
			if (i+j)%3 == 0 || len(s) < 4 {
				f.Add(uint8(j), s)
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		te := *e
		te.t = t
		ep := endpoints[int(which)%len(endpoints)]
		r := te.call(te.asAdmin(), ep.method, ep.path, body)
		if r.Status >= 400 && r.Status != http.StatusNotFound && r.str("error") == "" {
			t.Fatalf("%s %s: error without the error shape: %d %s", ep.method, ep.path, r.Status, r.Raw)
		}
	})
}
