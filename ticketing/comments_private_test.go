package ticketing_test

import (
	"fmt"
	"net/http"
	"testing"
)

// PUT /tickets/{id}/comments/{comment_id}/make_private (Zendesk's): the comment becomes an
// internal note — 200 with no body, the comment listed with public false — and stays so when
// asked again; a comment of a ticket merged into it is one the ticket lists, so it can be made
// private through the target; a comment of another ticket, an unknown one, an unknown ticket
// and an id that is no number are 404s; a closed ticket's comment can be made private too.
func TestMakeCommentPrivate(t *testing.T) {
	e := newEnv(t)
	req := e.newUser("Requester")
	tk := e.newTicket(req, map[string]any{"comment": map[string]any{"body": "card 4111 1111 1111 1111", "public": true}})
	other := e.newTicket(req, nil)
	firstComment := func(id int64) (int64, bool) {
		t.Helper()
		r := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", id), nil), http.StatusOK)
		c := r.list("comments")[0]
		return int64(c["id"].(float64)), c["public"].(bool)
	}
	cid, public := firstComment(tk)
	if !public {
		t.Fatal("the comment was private from the start")
	}
	path := func(ticket, comment int64) string {
		return fmt.Sprintf("/tickets/%d/comments/%d/make_private", ticket, comment)
	}
	for range 2 { // the second time: already private, still 200
		r := must(t, e.call(e.asAgent(), "PUT", path(tk, cid), nil), http.StatusOK)
		if len(r.Raw) != 0 {
			t.Errorf("make_private answered a body: %s", r.Raw)
		}
		if _, public := firstComment(tk); public {
			t.Fatal("the comment is still public")
		}
	}
	otherCID, _ := firstComment(other)
	for _, c := range []struct {
		what, path string
	}{
		{"another ticket's comment", path(tk, otherCID)},
		{"an unknown comment", path(tk, otherCID+1000)},
		{"an unknown ticket", path(other+1000, otherCID)},
		{"a comment id that is no number", fmt.Sprintf("/tickets/%d/comments/x/make_private", tk)},
	} {
		if r := e.call(e.asAgent(), "PUT", c.path, nil); r.Status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404: %s", c.what, r.Status, r.Raw)
		}
	}
	if _, public := firstComment(other); !public {
		t.Error("a refused make_private changed another ticket's comment")
	}

	// Merged: other's comment is listed on tk now, and made private through tk. Then a closed
	// ticket's comment.
	must(t, e.call(e.asAgent(), "POST", fmt.Sprintf("/tickets/%d/merge", tk), map[string]any{"ids": []int64{other}}), http.StatusOK)
	must(t, e.call(e.asAgent(), "PUT", path(tk, otherCID), nil), http.StatusOK)
	closed := e.newTicket(req, map[string]any{"status": "solved", "assignee_id": e.agent.ID})
	must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/tickets/%d", closed), map[string]any{"ticket": map[string]any{"status": "closed"}}), http.StatusOK)
	closedCID, _ := firstComment(closed)
	must(t, e.call(e.asAgent(), "PUT", path(closed, closedCID), nil), http.StatusOK)
	if _, public := firstComment(closed); public {
		t.Error("a closed ticket's comment is still public")
	}
}
