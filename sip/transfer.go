package sip

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

// Transfers the ACD runs (ivr/consult.go) need two things of the call only sip can give: a leg
// to an outside number through the trunk (ivr.ExternalDialer), and a pair of RTP endpoints that
// send to each other, through which two browser softphones talk during a consult
// (ivr.EndpointPairer). Both are methods of the IVR's view of the carrier leg, so every leg the
// transfer places is the call's own: journaled, ended with the call, its Call-ID on call.ended.

// DialExternal dials number (E.164, allowed by the dial plan: web checked it) through the trunk
// the call came in on when it takes outbound calls, else the first trunk that does, with the
// trunk's caller ID, and returns the answered leg. The caller's codec is offered first, so the
// bridge needs no transcoding. ctx's end cancels the attempt (CANCEL, RFC 3261 §9.1).
func (l ivrLeg) DialExternal(ctx context.Context, number string) (*ivr.MediaAgentLeg, error) {
	c := l.c
	trunk := ""
	for _, t := range c.s.opts.Trunks {
		if t.OutboundURI == "" {
			continue
		}
		if t.Name == c.trunk {
			trunk = t.Name
			break
		}
		if trunk == "" {
			trunk = t.Name
		}
	}
	if trunk == "" {
		return nil, ErrNoOutboundTrunk
	}
	out, err := dialOffer(ctx, c, DialOptions{Trunk: trunk, Number: number, Codecs: carrierCodecsFirst(c)})
	if err != nil {
		return nil, fmt.Errorf("sip: transfer to %s: %w", number, err)
	}
	c.journalLegs()
	return &ivr.MediaAgentLeg{
		Endpoint: out.Endpoint(),
		Ended:    out.Done(),
		HangupFunc: func(context.Context) error {
			out.Hangup()
			return nil
		},
	}, nil
}

// EndpointPair returns two endpoints of the call's media plane, each sending to the other on
// the RTP address, in the caller's codec; closePair closes both. Strict source holds: each
// latches the other's address at once.
func (l ivrLeg) EndpointPair() (x, y *media.Endpoint, closePair func(), err error) {
	s := l.c.s
	mk := func() (*media.Endpoint, error) {
		return media.NewEndpoint(media.EndpointOptions{
			Allocator: s.ports, Metrics: s.opts.MediaMetrics,
			LearningWindow: media.DefaultLearningWindow,
		})
	}
	if x, err = mk(); err != nil {
		return nil, nil, nil, fmt.Errorf("sip: consult endpoint: %w", err)
	}
	if y, err = mk(); err != nil {
		_ = x.Close()
		return nil, nil, nil, fmt.Errorf("sip: consult endpoint: %w", err)
	}
	// Each sends to the other's port, on loopback when the range is bound to every interface.
	dest := func(e *media.Endpoint) netip.AddrPort {
		ap := e.LocalAddr()
		if ap.Addr().IsUnspecified() {
			lo := netip.MustParseAddr("127.0.0.1")
			if ap.Addr().Is6() {
				lo = netip.IPv6Loopback()
			}
			return netip.AddrPortFrom(lo, ap.Port())
		}
		return ap
	}
	x.SetRemote(dest(y))
	y.SetRemote(dest(x))
	// The softphones' legs are G.711 μ-law (the WebRTC leg negotiates PCMU only).
	x.SetCodec(0, media.PCMU)
	y.SetCodec(0, media.PCMU)
	return x, y, func() { _ = x.Close(); _ = y.Close() }, nil
}
