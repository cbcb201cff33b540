package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/bench/relay"
)

// cmdRelay is `sbbench relay`: the bare relay as a process of its own, so that its CPU is read
// from /proc like the gateway's and it can be pinned to the gateway's core. It prints one line
// "A B" per pair (the two ports), then "ready"; it runs until its stdin closes, SIGTERM, or
// -max, then prints "forwarded N unlatched M".
func cmdRelay(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pairs := fs.Int("pairs", 1, "socket pairs (calls)")
	addr := fs.String("addr", "127.0.0.1", "local address")
	maxLife := fs.Duration("max", 10*time.Minute, "exit after this long whatever happens")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil || *pairs < 1 {
		fmt.Fprintln(stderr, "sbbench relay: want -pairs ≥ 1 and an IP -addr")
		return 2
	}
	r, err := relay.New(a, *pairs)
	if err != nil {
		fmt.Fprintln(stderr, "sbbench relay:", err)
		return 1
	}
	defer r.Close()
	w := bufio.NewWriter(stdout)
	for _, p := range r.Ports() {
		fmt.Fprintf(w, "%d %d\n", p[0], p[1])
	}
	fmt.Fprintln(w, "ready")
	if err := w.Flush(); err != nil {
		return 1
	}
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(eof) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	select {
	case <-eof:
	case <-sig:
	case <-time.After(*maxLife):
	}
	fw, un := r.Counts()
	fmt.Fprintf(stdout, "forwarded %d unlatched %d\n", fw, un)
	return 0
}
