package media

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// Rule: RTP ports are even, RTCP is RTP+1, exhaustion is ErrNoPorts, and released ports return.
func TestPortAllocatorEvenPortsExhaustionAndRelease(t *testing.T) {
	a := testAllocator(t, 4)
	var pairs []PortPair
	for {
		p, err := a.Allocate()
		if errors.Is(err, ErrNoPorts) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Port%2 != 0 {
			t.Errorf("RTP port %d is odd", p.Port)
		}
		if got := p.RTP.LocalAddrPort().String(); got != netip.AddrPortFrom(loopback, uint16(p.Port)).String() {
			t.Errorf("RTP bound to %s, want port %d", got, p.Port)
		}
		if got := p.RTCP.LocalAddrPort().String(); got != netip.AddrPortFrom(loopback, uint16(p.Port+1)).String() {
			t.Errorf("RTCP bound to %s, want port %d", got, p.Port+1)
		}
		pairs = append(pairs, p)
		if len(pairs) > 4 {
			t.Fatal("allocated more pairs than the range holds")
		}
	}
	if len(pairs) == 0 {
		t.Fatal("nothing allocated")
	}
	if a.InUse() != len(pairs) {
		t.Errorf("InUse = %d, want %d", a.InUse(), len(pairs))
	}
	freed := pairs[0]
	a.Release(freed)
	a.Release(freed) // twice is harmless
	p, err := a.Allocate()
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if p.Port != freed.Port {
		t.Errorf("got port %d, want the released %d", p.Port, freed.Port)
	}
	a.Release(p)
	for _, p := range pairs[1:] {
		a.Release(p)
	}
	if a.InUse() != 0 {
		t.Errorf("InUse = %d after releasing all", a.InUse())
	}
}

// Rule: a just-released port is not handed out again while others are free (it goes to the
// tail of the free list).
func TestPortAllocatorRoundRobin(t *testing.T) {
	a := testAllocator(t, 8)
	p1, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	a.Release(p1)
	p2, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(p2)
	if p2.Port == p1.Port {
		t.Errorf("port %d reused at once", p1.Port)
	}
}

func TestNewPortAllocatorRejectsEmptyRanges(t *testing.T) {
	for _, r := range [][2]int{{10001, 10001}, {10000, 10000}, {20, 10}, {0, 1}, {65534, 65536}} {
		if _, err := NewPortAllocator(loopback, r[0], r[1]); err == nil {
			t.Errorf("range %d-%d accepted", r[0], r[1])
		}
	}
	a, err := NewPortAllocator(loopback, 10001, 10003) // rounds up to 10002/10003
	if err != nil {
		t.Fatal(err)
	}
	if a.min != 10002 || a.max != 10002 {
		t.Errorf("range = %d-%d", a.min, a.max)
	}
}

// Rule: an endpoint that cannot get ports fails with ErrNoPorts (SIP answers 503).
func TestNewEndpointExhaustion(t *testing.T) {
	a := testAllocator(t, 1)
	e1, err := NewEndpoint(EndpointOptions{Allocator: a})
	if err != nil {
		t.Skipf("the single pair is held by another process: %v", err)
	}
	defer e1.Close()
	if _, err := NewEndpoint(EndpointOptions{Allocator: a}); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("err = %v, want ErrNoPorts", err)
	}
	e1.Close()
	e2, err := NewEndpoint(EndpointOptions{Allocator: a})
	if err != nil {
		t.Fatalf("after Close the pair must be free again: %v", err)
	}
	e2.Close()
}

// seeded returns an allocator over pairs pairs from base with the free list shuffled by seed.
func seeded(t *testing.T, base, pairs int, seed uint64) *PortAllocator {
	t.Helper()
	a, err := NewPortAllocatorWithOptions(PortAllocatorOptions{Addr: loopback, Min: base, Max: base + 2*pairs - 1,
		Rand: rand.New(rand.NewPCG(seed, seed))})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// freeOrder is the order in which a fresh allocator will hand out its ports.
func freeOrder(a *PortAllocator) []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []int
	for i := range a.count {
		out = append(out, int(a.free[(a.head+i)%len(a.free)]))
	}
	return out
}

// Attack (RTP bleed): a sprayer that learns one call's port must not be able to guess the next
// one. Ports come from a free list shuffled by the allocator's random source, not next = last + 2:
// different seeds give different orders, the same seed the same order (the randomness comes in
// through the options), the order is not a run of +2 steps, and Allocate follows it.
func TestPortAllocationIsNotPredictable(t *testing.T) {
	base := 21000 + 2*rand.IntN(5000)
	one, two, again := freeOrder(seeded(t, base, 64, 1)), freeOrder(seeded(t, base, 64, 2)), freeOrder(seeded(t, base, 64, 1))
	if slices.Equal(one, two) {
		t.Fatal("two seeds gave the same port order")
	}
	if !slices.Equal(one, again) {
		t.Fatal("the same seed gave different orders: the randomness does not come from the options")
	}
	steps := 0
	for i := 1; i < len(one); i++ {
		if one[i] == one[i-1]+2 {
			steps++
		}
	}
	if steps > 4 {
		t.Errorf("%d of %d steps are +2: %v", steps, len(one)-1, one)
	}
	sorted := slices.Clone(one)
	slices.Sort(sorted)
	for i, p := range sorted {
		if p != base+2*i {
			t.Fatalf("the free list is not the range's even ports: %v", sorted)
		}
	}
	// Allocate takes the ports in that order (a port another process holds is skipped).
	a := seeded(t, base, 64, 1)
	var got []int
	for range 8 {
		p, err := a.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Release(p)
		got = append(got, p.Port)
	}
	i := 0
	for _, p := range one {
		if i < len(got) && got[i] == p {
			i++
		}
	}
	if i != len(got) {
		t.Errorf("allocated %v, not in the free list's order %v", got, one[:16])
	}
}

// Rule: a released port goes to the tail of the free list — it is handed out again only after
// every port that was free before it — and exhaustion is ErrNoPorts, however often pairs were
// released (twice included) in between.
func TestPortAllocatorReusesFreedPortOnlyFromFreeList(t *testing.T) {
	base := 21000 + 2*rand.IntN(5000)
	a := seeded(t, base, 8, 7)
	var first []PortPair
	for range 3 {
		p, err := a.Allocate()
		if err != nil {
			t.Skipf("range %d+ busy: %v", base, err)
		}
		first = append(first, p)
	}
	freed := first[1]
	a.Release(freed)
	a.Release(freed) // twice: must not enter the free list twice
	var rest []PortPair
	for range 20 {
		p, err := a.Allocate()
		if errors.Is(err, ErrNoPorts) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, p)
	}
	if len(rest) == 0 || rest[len(rest)-1].Port != freed.Port {
		t.Fatalf("the released port %d was not the last handed out: %v", freed.Port, ports(rest))
	}
	seen := map[int]bool{first[0].Port: true, first[2].Port: true}
	for _, p := range rest {
		if seen[p.Port] {
			t.Fatalf("port %d handed out twice: %v", p.Port, ports(rest))
		}
		seen[p.Port] = true
	}
	if a.InUse() != 2+len(rest) {
		t.Errorf("InUse = %d, want %d", a.InUse(), 2+len(rest))
	}
	if _, err := a.Allocate(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("exhausted range: err = %v, want ErrNoPorts", err)
	}
	// Exhausted: the one port released is the one port that comes back.
	back := rest[0]
	a.Release(back)
	p, err := a.Allocate()
	if err != nil || p.Port != back.Port {
		t.Fatalf("after releasing %d in an exhausted range: got %d, %v", back.Port, p.Port, err)
	}
	rest[0] = p
	for _, p := range append(rest, first[0], first[2]) {
		a.Release(p)
	}
	if a.InUse() != 0 {
		t.Errorf("InUse = %d after releasing everything", a.InUse())
	}
}

// Rule: allocation stays correct when goroutines allocate and release at once on a range that
// keeps running out: no pair is ever held twice, every failure is ErrNoPorts.
func TestPortAllocatorConcurrentExhaustion(t *testing.T) {
	a := testAllocator(t, 4)
	var mu sync.Mutex
	held := map[int]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				p, err := a.Allocate()
				if err != nil {
					if !errors.Is(err, ErrNoPorts) {
						t.Error(err)
						return
					}
					continue
				}
				mu.Lock()
				if held[p.Port] {
					t.Errorf("port %d handed out while held", p.Port)
				}
				held[p.Port] = true
				mu.Unlock()
				mu.Lock()
				delete(held, p.Port)
				mu.Unlock()
				a.Release(p)
			}
		}()
	}
	wg.Wait()
	if a.InUse() != 0 {
		t.Errorf("InUse = %d", a.InUse())
	}
}

func ports(ps []PortPair) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.Port
	}
	return out
}
