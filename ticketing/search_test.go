package ticketing_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// GET /search without sort_by orders by relevance, as Zendesk does: a word in a ticket's
// subject counts twice a word only in its comments, a user's name twice their email; ties
// newest first. sort_by=priority, status and ticket_type order tickets by that field (users,
// who have none, after every ticket, in either order); an unknown sort_by is a 422 naming it.
// On the old code (newest first whatever the query) the relevance order fails.
func TestSearch_RelevanceByDefault_FieldSortsPutUsersLast(t *testing.T) {
	e := newEnv(t)
	person := e.newUser("Alice Zorblat") // the word in a name: 2
	req := e.newUser("Requester")
	inSubject := e.newTicket(req, map[string]any{"subject": "Zorblat on fire", "priority": "urgent", "type": "problem", "status": "open"})
	inComment := e.newTicket(req, map[string]any{"comment": map[string]any{"body": "the zorblat jams"}, "priority": "low", "type": "incident", "status": "pending"})
	inCommentNewer := e.newTicket(req, map[string]any{"comment": map[string]any{"body": "zorblat again"}, "type": "question"})

	// ids lists a search's results as t<id> and u<id>, in order.
	ids := func(query, extra string) []string {
		t.Helper()
		r := must(t, e.call(e.asAgent(), "GET", "/search?query="+url.QueryEscape(query)+extra, nil), http.StatusOK)
		var out []string
		for _, x := range r.list("results") {
			out = append(out, fmt.Sprintf("%s%.0f", x["result_type"].(string)[:1], x["id"].(float64)))
		}
		return out
	}
	tk := func(id int64) string { return fmt.Sprintf("t%d", id) }
	us := func(id int64) string { return fmt.Sprintf("u%d", id) }
	for _, c := range []struct {
		what, query, extra string
		want               []string
	}{
		{"relevance, ties newest first", "zorblat", "", []string{tk(inSubject), us(person), tk(inCommentNewer), tk(inComment)}},
		{"relevance, least relevant first", "zorblat", "&sort_order=asc", []string{tk(inComment), tk(inCommentNewer), us(person), tk(inSubject)}},
		{"two words, both in one subject", "zorblat fire", "", []string{tk(inSubject)}},
		{"keywords only: newest first", "type:ticket requester:" + fmt.Sprint(req), "", []string{tk(inCommentNewer), tk(inComment), tk(inSubject)}},
		{"created_at, as before", "zorblat", "&sort_by=created_at", []string{tk(inCommentNewer), tk(inComment), tk(inSubject), us(person)}},
		{"priority, users last", "zorblat", "&sort_by=priority", []string{tk(inSubject), tk(inComment), tk(inCommentNewer), us(person)}},
		{"priority ascending, users still last", "zorblat", "&sort_by=priority&sort_order=asc", []string{tk(inCommentNewer), tk(inComment), tk(inSubject), us(person)}},
		{"status", "type:ticket zorblat", "&sort_by=status", []string{tk(inComment), tk(inSubject), tk(inCommentNewer)}},
		{"ticket_type ascending", "type:ticket zorblat", "&sort_by=ticket_type&sort_order=asc", []string{tk(inComment), tk(inSubject), tk(inCommentNewer)}},
	} {
		if got := ids(c.query, c.extra); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q%s = %v, want %v", c.what, c.query, c.extra, got, c.want)
		}
	}
	// Pages follow the same order.
	r := must(t, e.call(e.asAgent(), "GET", "/search?query=zorblat&per_page=2&page=2", nil), http.StatusOK)
	if l := r.list("results"); len(l) != 2 || l[0]["id"].(float64) != float64(inCommentNewer) {
		t.Errorf("page 2 of relevance: %s", r.Raw)
	}
	r = must(t, e.call(e.asAgent(), "GET", "/search?query=zorblat&sort_by=score", nil), http.StatusUnprocessableEntity)
	if !r.detail("sort_by") {
		t.Errorf("sort_by=score: %s", r.Raw)
	}
}
