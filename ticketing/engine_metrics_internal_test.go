package ticketing

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// A new engine exposes switchboard_ticketing_events_total for every event type and
// switchboard_ticketing_writes_total for every write kind at 0, before any event is applied
// (docs/metrics.md): a panel of events by type reads 0, not "no data".
func TestEngineMetricsExistForEveryTypeAndKindFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := (&Store{}).NewEngine(EngineOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if n, want := testutil.CollectAndCount(e.eventsTotal), len(callevent.Types()); n != want || want < 13 {
		t.Errorf("%d event type series, want %d (one per type)", n, want)
	}
	if n := testutil.CollectAndCount(e.writes); n != 3 {
		t.Errorf("%d write kind series, want 3 (comment, comment_update, ticket_update)", n)
	}
	// Not running, so not listening: 0, the value that tells an operator the engine would
	// sweep instead.
	if got, err := testutil.GatherAndCount(reg, "switchboard_ticketing_engine_listening"); err != nil || got != 1 {
		t.Errorf("switchboard_ticketing_engine_listening: %d series (%v), want 1", got, err)
	}
	if e.listening.Load() {
		t.Error("an engine that never ran says it listens")
	}
}
