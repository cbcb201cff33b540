package ticketing_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Rule (issue 21, the agent page's Recent calls): GET /calls?agent_id=N lists only the calls
// agent N answered, GET /calls?queue=a,b only those queues' calls (the page's team view) —
// before, the page could only list every call of the gateway; a malformed agent_id or queue
// is a 422 naming the field.
func TestListCallsFiltersByAgentAndQueues(t *testing.T) {
	h := newEngineHarness(t, nil)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	api := ticketing.NewAPI(h.store, ticketing.APIOptions{PublicURL: srv.URL})
	api.Register(mux, "/api/v2")
	api.RegisterCalls(mux, "/api/v2", nil, nil)
	get := func(path string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v2"+path, nil)
		req.SetBasicAuth("agent1@example.com", "password1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	// agent1: two support calls; agent2: one sales call and one billing call.
	for i, c := range []struct {
		queue string
		agent int64
	}{{"support", h.agent1.ID}, {"sales", h.agent2.ID}, {"support", h.agent1.ID}, {"billing", h.agent2.ID}} {
		h.run(h.answeredCall(h.now.Add(time.Duration(i)*time.Minute), fmt.Sprintf("+1555888100%d", i), c.queue, c.agent, 10).evs...)
	}
	froms := func(m map[string]any) string {
		var out []string
		for _, c := range m["calls"].([]any) {
			out = append(out, c.(map[string]any)["from"].(string))
		}
		return strings.Join(out, ",")
	}
	if code, m := get(fmt.Sprintf("/calls?agent_id=%d", h.agent1.ID)); code != 200 || froms(m) != "+15558881002,+15558881000" {
		t.Errorf("agent 1's calls = %d %v, want its two, newest first", code, m)
	}
	if code, m := get("/calls?queue=sales,billing"); code != 200 || froms(m) != "+15558881003,+15558881001" {
		t.Errorf("sales and billing calls = %d %v", code, m)
	}
	if code, m := get(fmt.Sprintf("/calls?agent_id=%d&queue=support", h.agent2.ID)); code != 200 || froms(m) != "" {
		t.Errorf("agent 2 in support = %d %v, want none", code, m)
	}
	for _, q := range []struct{ path, field string }{
		{"/calls?agent_id=me", "agent_id"}, {"/calls?agent_id=-3", "agent_id"},
		{"/calls?queue=sales,%27%3Bdrop", "queue"}, {"/calls?queue=" + strings.Repeat("a,", 60) + "a", "queue"},
	} {
		code, m := get(q.path)
		if code != 422 || !strings.Contains(fmt.Sprint(m), q.field) {
			t.Errorf("GET %s = %d %v, want 422 naming %s", q.path, code, m, q.field)
		}
	}
}
