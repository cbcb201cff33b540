package callevent_test

import (
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// An outside system's event naming a node is refused, naming the field: a node's loss closes
// the calls that name it, and an outside call belongs to no node.
func TestDecodeRefusesNodeFromOutside(t *testing.T) {
	raw := `{"id":"0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1","call_id":"c-1","seq":1,"type":"call.started",
		"at":"2026-01-02T03:04:05Z","direction":"inbound","node":"node-b"}`
	_, fe := callevent.Decode([]byte(raw))
	if len(fe) != 1 || fe[0].Field != "node" {
		t.Fatalf("Decode with a node: %v, want one error on field node", fe)
	}
	// Without the node it is a good event.
	raw = `{"id":"0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1","call_id":"c-1","seq":1,"type":"call.started",
		"at":"2026-01-02T03:04:05Z","direction":"inbound"}`
	if _, fe := callevent.Decode([]byte(raw)); len(fe) != 0 {
		t.Fatalf("Decode without a node: %v", fe)
	}
}
