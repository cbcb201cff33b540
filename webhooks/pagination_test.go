package webhooks_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// page walks one page and returns its item ids, meta and links.
func (e *env) page(path, key string) ([]string, map[string]any, map[string]any) {
	e.t.Helper()
	code, m, _ := e.do("GET", path, e.admin, "")
	if code != http.StatusOK {
		e.t.Fatalf("GET %s: %d %v", path, code, m)
	}
	var out []string
	for _, it := range m[key].([]any) {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out, m["meta"].(map[string]any), m["links"].(map[string]any)
}

func rel(link any) string {
	s, _ := link.(string)
	return s[strings.Index(s, "/api/v2")+len("/api/v2"):]
}

// page[before] walks GET /webhooks and GET /webhooks/{id}/invocations back the way page[after]
// came: the same pages, each in the list's order, links.prev and has_more saying what lies
// before. Before issue 20's second wave page[before] was ignored (the first page came back).
func TestWebhookLists_PageBeforeWalksBack(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.createHook("https://example.com/hook", "zen:event-type:call.*")
	}
	p1, meta, links := e.page("/webhooks?page[size]=2", "webhooks")
	if meta["has_more"] != true || links["prev"] != nil {
		t.Fatalf("first page: meta %v links %v", meta, links)
	}
	p2, meta, links := e.page(rel(links["next"]), "webhooks")
	if len(p2) != 1 || meta["has_more"] != false || links["prev"] == nil {
		t.Fatalf("second page %v: meta %v links %v", p2, meta, links)
	}
	back, meta, links := e.page(rel(links["prev"]), "webhooks")
	if fmt.Sprint(back) != fmt.Sprint(p1) || meta["has_more"] != false || links["prev"] != nil || links["next"] == nil {
		t.Fatalf("links.prev of the second page: %v (meta %v links %v), want %v", back, meta, links, p1)
	}
	if code, m, _ := e.do("GET", "/webhooks?page[before]=nope", e.admin, ""); code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(m), "page[before]") {
		t.Errorf("bad page[before]: %d %v, want 422 naming it", code, m)
	}

	// Invocations, newest first: page[after] goes to older ones, page[before] back to newer.
	rcv := newReceiver(t, nil)
	id, _ := e.createHook(rcv.url, "zen:event-type:call.*")
	e.run(fast(e))
	e.emit("call-pages", 1, 5)
	rcv.wait(t, 5)
	path := "/webhooks/" + id + "/invocations?page[size]=2"
	eventually(t, "5 invocations recorded", func() bool {
		_, m, _ := e.do("GET", "/webhooks/"+id+"/invocations?filter[status]=success", e.admin, "")
		return len(m["invocations"].([]any)) == 5
	})
	i1, _, links := e.page(path, "invocations")
	i2, _, links := e.page(rel(links["next"]), "invocations")
	i3, meta, links := e.page(rel(links["next"]), "invocations")
	if len(i3) != 1 || meta["has_more"] != false {
		t.Fatalf("pages %v %v %v, want 2+2+1", i1, i2, i3)
	}
	b2, meta, links := e.page(rel(links["prev"]), "invocations")
	if fmt.Sprint(b2) != fmt.Sprint(i2) || meta["has_more"] != true {
		t.Fatalf("back from the last page: %v (meta %v), want %v", b2, meta, i2)
	}
	b1, meta, _ := e.page(rel(links["prev"]), "invocations")
	if fmt.Sprint(b1) != fmt.Sprint(i1) || meta["has_more"] != false {
		t.Fatalf("back to the first page: %v (meta %v), want %v", b1, meta, i1)
	}
}
