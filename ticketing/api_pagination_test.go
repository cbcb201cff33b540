package ticketing_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Zendesk's cursor pagination both ways: walking a list forward with page[after] and then back
// with page[before] (from meta.before_cursor or links.prev) visits the same pages in reverse,
// each page in id order, with has_more and the links saying what lies in each direction. Until
// issue 20's second wave page[before] was refused with 422.
func TestCursorPagination_PageBeforeWalksBack(t *testing.T) {
	e := newEnv(t)
	var users []int64
	for i := range 5 {
		u := e.newUser(fmt.Sprintf("Pager %d", i))
		users = append(users, u)
		e.newTicket(u, nil)
	}
	for _, list := range []struct{ path, key string }{
		{"/tickets?page[size]=2", "tickets"},
		{"/users?role=end-user&page[size]=2", "users"},
	} {
		t.Run(list.key, func(t *testing.T) {
			ids := func(r resp) []int64 {
				var out []int64
				for _, it := range r.list(list.key) {
					out = append(out, int64(it["id"].(float64)))
				}
				return out
			}
			var pages [][]int64
			var befores []string
			r := must(t, e.call(e.asAdmin(), "GET", list.path, nil), http.StatusOK)
			if r.get("links", "prev") != nil {
				t.Errorf("first page: links.prev = %v, want null", r.get("links", "prev"))
			}
			for n := 0; ; n++ {
				if n > 5 {
					t.Fatal("more than 5 pages of 2 for 5 items")
				}
				pages = append(pages, ids(r))
				befores = append(befores, r.str("meta", "before_cursor"))
				if r.get("meta", "has_more") != true {
					break
				}
				next := r.str("links", "next")
				u, err := url.Parse(next)
				if err != nil || !strings.Contains(u.RawQuery, "page%5Bafter%5D") {
					t.Fatalf("links.next = %q", next)
				}
				r = must(t, e.call(e.asAdmin(), "GET", strings.TrimPrefix(u.RequestURI(), "/api/v2"), nil), http.StatusOK)
				if r.get("links", "prev") == nil {
					t.Errorf("page %d reached with page[after]: links.prev is null, want the page before", n+1)
				}
			}
			if len(pages) != 3 || len(pages[2]) != 1 {
				t.Fatalf("pages %v, want 2+2+1", pages)
			}
			// Back from the last page by meta.before_cursor, then by links.prev.
			back := must(t, e.call(e.asAdmin(), "GET", list.path+"&page[before]="+befores[2], nil), http.StatusOK)
			if got := ids(back); fmt.Sprint(got) != fmt.Sprint(pages[1]) {
				t.Errorf("page[before] of the last page = %v, want the middle page %v", got, pages[1])
			}
			if back.get("meta", "has_more") != true || back.get("links", "prev") == nil || back.get("links", "next") == nil {
				t.Errorf("middle page reached backwards: meta %v links %v, want has_more and both links", back.get("meta"), back.get("links"))
			}
			u, _ := url.Parse(back.str("links", "prev"))
			first := must(t, e.call(e.asAdmin(), "GET", strings.TrimPrefix(u.RequestURI(), "/api/v2"), nil), http.StatusOK)
			if got := ids(first); fmt.Sprint(got) != fmt.Sprint(pages[0]) {
				t.Errorf("links.prev of the middle page = %v, want the first page %v", got, pages[0])
			}
			if first.get("meta", "has_more") != false || first.get("links", "prev") != nil {
				t.Errorf("first page reached backwards: meta %v links %v, want has_more false and no prev", first.get("meta"), first.get("links"))
			}
			u, _ = url.Parse(first.str("links", "next"))
			again := must(t, e.call(e.asAdmin(), "GET", strings.TrimPrefix(u.RequestURI(), "/api/v2"), nil), http.StatusOK)
			if got := ids(again); fmt.Sprint(got) != fmt.Sprint(pages[1]) {
				t.Errorf("links.next of a page reached backwards = %v, want %v", got, pages[1])
			}
		})
	}
	// Bad cursors and both directions at once: 422 naming the parameter.
	for _, q := range []string{"page[before]=bm90LWEtY3Vyc29y", "page[before]=MA", "page[after]=MQ&page[before]=Mg"} {
		r := must(t, e.call(e.asAdmin(), "GET", "/tickets?"+q, nil), http.StatusUnprocessableEntity)
		if !r.detail("page[before]") {
			t.Errorf("%s: details %s, want page[before] named", q, r.Raw)
		}
	}
}
