package sip

import "testing"

// TestCallbackTrunkIsTheTrunkOfTheLineCalled: a queue callback goes out through the trunk of
// the line the caller called (Line.Trunk), not the first outbound trunk; a line that names no
// trunk, or one that takes no outbound calls, falls back to the first outbound trunk. (Before,
// every callback went through the first outbound trunk.)
func TestCallbackTrunkIsTheTrunkOfTheLineCalled(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Trunks = append(o.Trunks,
			Trunk{Name: "first", OutboundURI: "sip:first@127.0.0.1"},
			Trunk{Name: "inbound-only"},
			Trunk{Name: "second", OutboundURI: "sip:second@127.0.0.1"})
		o.Lines = []Line{
			{Number: "+15550101", Target: statusTarget(486), Trunk: "second"},
			{Number: "+15550102", Target: statusTarget(486)},
			{Number: "+15550103", Target: statusTarget(486), Trunk: "inbound-only"},
		}
	})
	first := g.s.callbackTrunk("")
	if first == "" || first == "second" {
		t.Fatalf("first outbound trunk %q", first)
	}
	for line, want := range map[string]string{"+15550101": "second", "+15550102": first, "+15550103": first, "+15559999": first} {
		if got := g.s.callbackTrunk(line); got != want {
			t.Errorf("callback of a caller of line %s through trunk %q, want %q", line, got, want)
		}
	}
}
