package media

import (
	"errors"
	"sync"
)

// bridgeLink, installed on one endpoint, sends its received packets to peer's sender as source id.
type bridgeLink struct {
	peer *Endpoint
	id   uint64
	br   *bridge
}

type bridge struct {
	a, b   *Endpoint
	la, lb *bridgeLink
	once   sync.Once
}

// Bridge forwards RTP both ways between a and b: audio and RFC 4733 telephone-events received on
// one are sent on the other's continuous outgoing stream (SSRC, sequence and timestamp rewritten,
// payload types mapped to the other leg's negotiated ones, μ-law ↔ A-law converted if the legs
// differ; events are dropped towards a leg without telephone-event). Each endpoint keeps
// detecting DTMF and tapping. A Play or SendDTMF on either endpoint overrides the bridge towards
// that endpoint's peer while it runs (music on hold), after which the bridge is heard again.
//
// stop undoes the bridge; it is idempotent and called by Close of either endpoint. Bridge
// returns ErrBridged if a is b or either is already bridged, ErrClosed if either is closed.
func Bridge(a, b *Endpoint) (stop func(), err error) {
	if a == nil || b == nil {
		return nil, errors.New("media: bridge: nil endpoint")
	}
	if a == b {
		return nil, ErrBridged
	}
	if a.closed.Load() || b.closed.Load() {
		return nil, ErrClosed
	}
	br := &bridge{a: a, b: b}
	br.la = &bridgeLink{peer: b, id: b.out.newID(), br: br}
	br.lb = &bridgeLink{peer: a, id: a.out.newID(), br: br}
	if !a.bridge.CompareAndSwap(nil, br.la) {
		return nil, ErrBridged
	}
	if !b.bridge.CompareAndSwap(nil, br.lb) {
		a.bridge.CompareAndSwap(br.la, nil)
		return nil, ErrBridged
	}
	b.out.setBase(br.la.id)
	a.out.setBase(br.lb.id)
	if a.closed.Load() || b.closed.Load() { // lost a race with Close, which may not have seen the links
		br.stop()
		return nil, ErrClosed
	}
	return br.stop, nil
}

func (br *bridge) stop() {
	br.once.Do(func() {
		br.a.bridge.CompareAndSwap(br.la, nil)
		br.b.bridge.CompareAndSwap(br.lb, nil)
		br.b.out.clearBase(br.la.id)
		br.a.out.clearBase(br.lb.id)
	})
}
