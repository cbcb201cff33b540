package ticketing_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// checkConstraints asserts the PM invariants straight from the database.
func (e *env) checkConstraints() {
	e.t.Helper()
	var bad int
	err := e.store.Pool().QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM (SELECT value FROM user_identities WHERE line_type = 'direct' GROUP BY value HAVING count(*) > 1) a) +
		(SELECT count(*) FROM (SELECT user_id FROM user_identities WHERE line_type = 'shared' GROUP BY user_id HAVING count(*) > 1) b) +
		(SELECT count(*) FROM user_identities i JOIN users u ON u.id = i.user_id WHERE u.merged_into_id IS NOT NULL) +
		(SELECT count(*) FROM users u JOIN users t ON t.id = u.merged_into_id WHERE t.merged_into_id IS NOT NULL) +
		(SELECT count(*) FROM tickets k JOIN users u ON u.id = k.requester_id WHERE u.merged_into_id IS NOT NULL)`).Scan(&bad)
	if err != nil {
		e.t.Fatal(err)
	}
	if bad != 0 {
		e.t.Fatalf("%d broken invariants (two direct owners, two shared numbers, numbers or tickets on a merged user, a redirect to a redirect)", bad)
	}
}

// Many agents add the same number to different users at once: one user owns it as a direct
// line, the others hold it shared or lose the race with a 409; never a 500.
func TestConcurrency_SameNumberToManyUsers(t *testing.T) {
	e := newEnv(t)
	const n = 16
	users := make([]int64, n)
	for i := range users {
		users[i] = e.newUser(fmt.Sprintf("Racer %d", i))
	}
	statuses := make([]resp, n)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.call(e.asAgent(), "POST", fmt.Sprintf("/users/%d/identities", users[i]),
				map[string]any{"identity": map[string]any{"value": "+12125550151"}})
		}()
	}
	wg.Wait()
	direct, shared, conflicts := 0, 0, 0
	for _, r := range statuses {
		switch {
		case r.Status == http.StatusCreated && r.str("identity", "line_type") == "direct":
			direct++
		case r.Status == http.StatusCreated:
			shared++
		case r.Status == http.StatusConflict && r.detail("value"):
			conflicts++
		default:
			t.Errorf("unexpected answer %d %s", r.Status, r.Raw)
		}
	}
	if direct != 1 || direct+shared+conflicts != n {
		t.Fatalf("direct %d shared %d conflicts %d", direct, shared, conflicts)
	}
	e.checkConstraints()

	// One user adding two other people's direct lines at once: one becomes shared, the other
	// is refused by PM-8 (422) or loses the race (409).
	e.newUser("O1", "+12125550152")
	e.newUser("O2", "+12125550153")
	u := e.newUser("Greedy")
	var two [2]resp
	for i, num := range []string{"+12125550152", "+12125550153"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			two[i] = e.call(e.asAgent(), "POST", fmt.Sprintf("/users/%d/identities", u), map[string]any{"identity": map[string]any{"value": num}})
		}()
	}
	wg.Wait()
	ok := 0
	for _, r := range two {
		if r.Status == http.StatusCreated {
			ok++
		} else if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusConflict {
			t.Errorf("unexpected answer %d %s", r.Status, r.Raw)
		}
	}
	if ok != 1 {
		t.Fatalf("%d shared numbers added, want exactly 1", ok)
	}
	e.checkConstraints()
}

// Merging the same users into each other from many requests at once leaves no cycle, no
// number or ticket on a merged user, and gives the losers 409 or 422, never a 500.
func TestConcurrency_MergeSameUsers(t *testing.T) {
	e := newEnv(t)
	const n = 5
	users := make([]int64, n)
	for i := range users {
		users[i] = e.newUser(fmt.Sprintf("M%d", i), fmt.Sprintf("+1212555016%d", i))
		e.newTicket(users[i], nil)
	}
	// Everyone shares the first user's number, to move shared identities around too.
	for _, u := range users[1:] {
		e.addPhone(u, "+12125550160", http.StatusCreated)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[int]int{}
	for i := range users {
		for j := range users {
			if i == j {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.call(e.asAgent(), "PUT", fmt.Sprintf("/users/%d/merge", users[i]), map[string]any{"user": map[string]any{"id": users[j]}})
				mu.Lock()
				got[r.Status]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for status := range got {
		if status != http.StatusOK && status != http.StatusConflict && status != http.StatusUnprocessableEntity {
			t.Fatalf("statuses %v: only 200, 409 and 422 are allowed", got)
		}
	}
	if got[http.StatusOK] != n-1 {
		t.Fatalf("statuses %v: want %d successful merges leaving one user", got, n-1)
	}
	e.checkConstraints()
	// Every call from any of the numbers lands on the one live user.
	var live []int64
	for _, u := range users {
		r := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d", u), nil), http.StatusOK)
		if r.get("user", "merged_into_id") == nil {
			live = append(live, u)
		}
	}
	if len(live) != 1 {
		t.Fatalf("live users %v", live)
	}
	for i := range users {
		if res := e.resolve(fmt.Sprintf("+1212555016%d", i), ticketing.ResolveOptions{}); res.Requester.ID != live[0] {
			t.Fatalf("number %d resolves to %d, want %d", i, res.Requester.ID, live[0])
		}
	}
}

// Calls racing from one new number create one user (PM-2), not one each.
func TestConcurrency_ResolveNewNumberOnce(t *testing.T) {
	e := newEnv(t)
	const n = 12
	ids := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.store.ResolveCaller(context.Background(), "+12125550170", ticketing.ResolveOptions{})
			errs[i] = err
			if err == nil {
				ids[i] = r.Requester.ID
			}
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("call %d: user %d err %v, want everyone on user %d", i, ids[i], errs[i], ids[0])
		}
	}
	e.checkConstraints()
}
