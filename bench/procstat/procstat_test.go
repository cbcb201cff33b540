package procstat

import (
	"net"
	"os"
	"testing"
	"time"
)

// utime and stime are fields 14 and 15, counted after a command name that may hold ") ".
func TestParseStat_UtimeStimeAfterTrickyCommandName(t *testing.T) {
	line := "23777 (a) b (c) R 23774 23774 18309 0 -1 4194304 99 0 0 0 250 30 0 0 20 0 1 0 535606 3133440 397\n"
	d, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if d != 2800*time.Millisecond {
		t.Errorf("cpu = %v, want 2.8s (280 ticks)", d)
	}
	if _, err := parseStat([]byte("12 (x) R 1 2")); err == nil {
		t.Error("a truncated stat line parsed")
	}
}

func TestParseRSS_ReadsVmRSSInKiB(t *testing.T) {
	kb, err := parseRSS([]byte("Name:\tx\nVmPeak:\t 900 kB\nVmRSS:\t   12345 kB\nThreads: 3\n"))
	if err != nil || kb != 12345 {
		t.Errorf("rss = %d, %v; want 12345", kb, err)
	}
	if _, err := parseRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("no VmRSS line parsed")
	}
}

// Only the sockets of the given ports count; the drops column is the last one.
func TestParseUDP_SumsDropsOfOurPortsOnly(t *testing.T) {
	text := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 2976: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 288006 2 0000000013aecba4 7
 4667: 0100007F:9C42 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 288007 2 00000000b17bff65 5
 4668: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 288008 2 00000000b17bff66 1000
`
	drops, found, err := parseUDP([]byte(text), map[int]bool{0x9C40: true, 0x9C42: true, 1: true})
	if err != nil || drops != 12 || found != 2 {
		t.Errorf("drops %d found %d err %v; want 12 from 2 sockets", drops, found, err)
	}
}

// The readers work on this machine's /proc: our own process and a socket we bind.
func TestLive_OwnProcessAndSocket(t *testing.T) {
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if kb, err := RSSKB(os.Getpid()); err != nil || kb <= 0 {
		t.Fatalf("rss %d, %v", kb, err)
	}
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.UDPAddr).Port
	if _, found, err := UDPDrops(map[int]bool{port: true}); err != nil || found != 1 {
		t.Fatalf("found %d sockets on port %d, %v", found, port, err)
	}
}

func TestParseCoresSumsBusyTicksOfTheCoresAsked(t *testing.T) {
	stat := "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 1 2 3 40 5 6 7 8 0 0\ncpu1 10 0 20 70 0 0 0 0 0 0\nintr 5\n"
	got, err := parseCores([]byte(stat), map[int]bool{0: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (CoreTimes{Busy: 1 + 2 + 3 + 6 + 7, Total: 1 + 2 + 3 + 6 + 7 + 40 + 5}) {
		t.Fatalf("got %+v", got)
	}
	if _, err := parseCores([]byte("cpu1 1 x 3 4 5 6 7 8\n"), map[int]bool{1: true}); err == nil {
		t.Fatal("a bad field parsed")
	}
}

func TestFDCountSeesANewDescriptor(t *testing.T) {
	// A first open, so that the runtime's poller descriptors exist before the count.
	f0, err := os.Open("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f0.Close()
	before, err := FDCount(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after, err := FDCount(os.Getpid())
	if err != nil || after != before+1 {
		t.Fatalf("fds %d then %d (%v), want one more", before, after, err)
	}
}
