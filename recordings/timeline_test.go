package recordings

import "testing"

// Rule (RFC 3550 §5.1, A.1): packet placement follows RTP timestamps per SSRC, unwrapping them
// across 2^32, counting lost packets by sequence numbers across 2^16, and re-anchoring on the
// arrival time for a new SSRC or a timestamp that disagrees with wall time.
func TestTimelinePlacement(t *testing.T) {
	type pkt struct {
		ssrc  uint32
		seq   uint16
		ts    uint32
		arr   int64
		floor int64 // written out up to here
		want  int64
	}
	cases := []struct {
		name string
		pkts []pkt
		lost uint64
	}{
		{"anchored at the first arrival, then by timestamp despite jitter", []pkt{
			{1, 10, 1000, 500, 0, 500}, {1, 11, 1160, 700, 0, 660}, {1, 12, 1320, 790, 0, 820}}, 0},
		{"a gap of lost packets is silence of their length", []pkt{
			{1, 1, 0, 0, 0, 0}, {1, 5, 640, 650, 0, 640}}, 3},
		{"timestamp and sequence wrap-around", []pkt{
			{1, 65535, 0xFFFFFF60, 0, 0, 0}, {1, 0, 0, 160, 0, 160}, {1, 2, 320, 470, 0, 480}}, 1},
		{"reordered packet goes back in place", []pkt{
			{1, 1, 0, 0, 0, 0}, {1, 3, 320, 320, 0, 320}, {1, 2, 160, 330, 0, 160}}, 1},
		{"a new SSRC is placed by arrival", []pkt{
			{1, 1, 0, 0, 0, 0}, {2, 900, 777777, 8000, 0, 8000}, {2, 901, 777937, 8160, 0, 8160}}, 0},
		{"hold without timestamp advance: re-anchored on arrival", []pkt{
			{1, 1, 0, 0, 0, 0}, {1, 2, 160, 40000, 37600, 40000}, {1, 3, 320, 40160, 37760, 40160}}, 0},
		{"a late burst after a reader stall keeps its timestamp places", []pkt{
			{1, 1, 0, 0, 0, 0}, {1, 2, 160, 2000, 0, 160}, {1, 3, 320, 2001, 0, 320}, {1, 4, 480, 2002, 0, 480}}, 0},
		{"hold with timestamp advance: stays on timestamps", []pkt{
			{1, 1, 0, 0, 0, 0}, {1, 2, 40000, 40100, 0, 40000}}, 0},
		{"an anchor that arrived late is moved to the earliest arrival: never ahead of wall time", []pkt{
			{1, 1, 0, 500, 0, 500}, {1, 2, 160, 520, 0, 660}, {1, 3, 320, 600, 0, 600}, {1, 4, 480, 760, 0, 760}}, 0},
		{"an old SSRC comes back where its timestamps say", []pkt{
			{1, 1, 0, 0, 0, 0}, {2, 1, 5, 160, 0, 160}, {1, 2, 320, 330, 0, 320}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tl := timeline{resync: 1200, ahead: 160}
			for i, p := range c.pkts {
				if got := tl.place(p.ssrc, p.seq, p.ts, p.arr, p.floor); got != p.want {
					t.Errorf("packet %d placed at %d, want %d", i, got, p.want)
				}
			}
			if tl.lost != c.lost {
				t.Errorf("lost %d, want %d", tl.lost, c.lost)
			}
		})
	}
}

// A timeline remembers a bounded number of streams.
func TestTimelineBoundsStreams(t *testing.T) {
	tl := timeline{resync: 1200, ahead: 160}
	for i := range uint32(100) {
		tl.place(i, 0, 0, int64(i), 0)
	}
	if len(tl.streams) != maxStreams {
		t.Fatalf("%d streams kept, want %d", len(tl.streams), maxStreams)
	}
}
