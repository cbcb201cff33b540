package sip

import (
	"log/slog"
	"runtime"
	"testing"
	"weak"

	"github.com/emiago/sipgo/sip"
)

// TestEndedLegIsNotKeptByItsInviteTransaction proves what leg.onCancel is for: sipgo keeps an
// INVITE's server transaction, with its CANCEL callback, up to 32 s after the call, and once
// the leg has ended that callback no longer keeps what it closed over (the leg, and through it
// the call, its media endpoint and recording buffers: 800 MB at 300 calls a second before).
// The control half shows the transaction does keep a callback registered directly.
func TestEndedLegIsNotKeptByItsInviteTransaction(t *testing.T) {
	invite := func() *sip.ServerTx {
		req := sip.NewRequest(sip.INVITE, sip.Uri{User: "+15550197", Host: "127.0.0.1", Port: 5060})
		req.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-test"))
		return sip.NewServerTx("key", req, nil, slog.New(slog.DiscardHandler))
	}
	collected := func(w weak.Pointer[[1 << 20]byte]) bool {
		runtime.GC()
		return w.Value() == nil
	}

	// holding hands register a callback that holds 1 MiB, and returns a weak pointer to it.
	holding := func(register func(fn func())) weak.Pointer[[1 << 20]byte] {
		held := new([1 << 20]byte)
		register(func() { held[0]++ })
		return weak.Make(held)
	}

	// Control: a callback registered on the transaction directly keeps what it holds.
	tx := invite()
	w := holding(func(fn func()) { tx.OnCancel(func(*sip.Request) { fn() }) })
	if collected(w) {
		t.Fatal("control: the transaction did not keep its callback's memory; this test proves nothing here")
	}
	runtime.KeepAlive(tx)

	// The leg's hook: kept while the leg lives, let go of when it ends.
	tx = invite()
	l := &leg{ended: make(chan struct{})}
	w = holding(func(fn func()) {
		if !l.onCancel(tx, fn) {
			t.Fatal("onCancel refused a live transaction")
		}
	})
	if collected(w) {
		t.Fatal("the callback's memory went while the leg lives")
	}
	l.releaseCancel() // what leg.end does
	if !collected(w) {
		t.Fatal("the transaction still keeps the ended leg's callback memory")
	}
	runtime.KeepAlive(tx)
}
