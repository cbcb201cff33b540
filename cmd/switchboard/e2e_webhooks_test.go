package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/webhooks"
)

// An admin registers a webhook through the API of the running gateway; a real call (SIPp as
// the carrier, bridged to a SIPp desk phone) reaches the receiver on loopback as signed call
// events in the call's order, the first one retried after the receiver's 503; the metrics
// count the attempts on the gateway's /metrics.
func TestEndToEnd_WebhookReceivesSignedOrderedRetriedCallEvents(t *testing.T) {
	requireSipp(t)
	g := runGateway(t)

	type hit struct {
		typ, id   string
		seq       float64
		signature bool
	}
	var mu sync.Mutex
	var hits []hit
	var secret string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var env struct {
			Type   string         `json:"type"`
			ID     string         `json:"id"`
			Detail map[string]any `json:"detail"`
		}
		_ = json.Unmarshal(body, &env)
		mu.Lock()
		defer mu.Unlock()
		ok := webhooks.Verify(secret, r.Header.Get(webhooks.HeaderTimestamp), body, r.Header.Get(webhooks.HeaderSignature))
		seq, _ := env.Detail["seq"].(float64)
		hits = append(hits, hit{typ: env.Type, id: env.ID, seq: seq, signature: ok})
		if len(hits) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // the first attempt fails: retried
		}
	}))
	t.Cleanup(recv.Close)

	code, m := g.api("POST", "/webhooks", fmt.Sprintf(`{"webhook":{"name":"e2e","endpoint":%q,"http_method":"POST",
		"request_format":"json","status":"active","subscriptions":["zen:event-type:call.*"]}}`, recv.URL+"/in"))
	if code != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", code, m)
	}
	id := m["webhook"].(map[string]any)["id"].(string)
	code, m = g.api("GET", "/webhooks/"+id+"/signing_secret", "")
	if code != http.StatusOK {
		t.Fatalf("signing secret: %d %v", code, m)
	}
	mu.Lock()
	secret = m["signing_secret"].(map[string]any)["secret"].(string)
	mu.Unlock()

	desk := startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
	carrier := startSipp(t, "carrier_rtp.xml", nil, "-s", "+15550197", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "carrier")
	desk.wait(t, "desk")

	var got []hit
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		got = append(got[:0], hits...)
		mu.Unlock()
		if n := len(got); n > 0 && got[n-1].typ == "zen:event-type:call.recording_ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver did not get the call's events within 60 s: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got[0].typ != "zen:event-type:call.started" || got[1].id != got[0].id {
		t.Fatalf("first deliveries %+v, want call.started twice (retried after 503)", got[:2])
	}
	types := []string{}
	for i, h := range got {
		if !h.signature {
			t.Errorf("delivery %d (%s) does not verify with the signing secret", i, h.typ)
		}
		if i > 1 && h.seq <= got[i-1].seq {
			t.Errorf("delivery %d: seq %v after %v: out of order", i, h.seq, got[i-1].seq)
		}
		types = append(types, strings.TrimPrefix(h.typ, "zen:event-type:"))
	}
	if !strings.Contains(strings.Join(types, ","), "call.answered") || !strings.Contains(strings.Join(types, ","), "call.ended") {
		t.Errorf("event types %v lack the answer or the end", types)
	}
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := withoutNodeLabel(string(body))
	for _, want := range []string{`switchboard_webhook_deliveries_total{result="failed"} 1`, `switchboard_webhook_backlog_events`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
