package media

// TEMPORARY: signatures published early for the sip package; bodies land in the next commits.
// Every body panics until then, so nothing pretends to work.

import (
	"context"
	"io"
	"net/netip"
	"time"
)

// Endpoint is one RTP leg: a bound even port (RTCP on +1), symmetric RTP with latching then
// strict source, RTCP reports, RFC 3550 stats, a media timeout, DTMF detection, and one
// continuous outgoing stream (own SSRC, monotonic sequence, advancing timestamp) fed by a
// bridge, a prompt player or the DTMF generator. Methods are safe for concurrent use.
type Endpoint struct{}

// NewEndpoint allocates ports and starts the endpoint's goroutines (RTP reader, RTCP reader,
// timer loop); Close ends all of them.
func NewEndpoint(opts EndpointOptions) (*Endpoint, error) { panic("media: not built yet") }

// LocalAddr is the bound RTP address for SDP c=/m= (substitute the external address when the
// allocator binds 0.0.0.0).
func (e *Endpoint) LocalAddr() netip.AddrPort { panic("media: not built yet") }

// SetRemote sets the peer's RTP address from SDP (again on re-INVITE). An unspecified address
// (c=0.0.0.0, RFC 3264 §8.4 legacy hold) stops sending and applies HoldTimeout. A changed IP
// drops the latch so the new peer can latch.
func (e *Endpoint) SetRemote(addr netip.AddrPort) { panic("media: not built yet") }

// Remote is where RTP is sent: the latched source if any, else the SDP address.
func (e *Endpoint) Remote() netip.AddrPort { panic("media: not built yet") }

// SetCodec sets the negotiated audio codec and its payload type.
func (e *Endpoint) SetCodec(pt uint8, c Codec) { panic("media: not built yet") }

// SetDTMFPayloadType sets the telephone-event payload type (mirror the peer's); 0 disables.
func (e *Endpoint) SetDTMFPayloadType(pt uint8) { panic("media: not built yet") }

// SetDirection sets our SDP direction; only SendRecv/SendOnly send audio.
func (e *Endpoint) SetDirection(d Direction) { panic("media: not built yet") }

// SetTap installs (nil removes) the packet tap for recordings.
func (e *Endpoint) SetTap(t Tap) { panic("media: not built yet") }

// DTMF delivers detected digits.
func (e *Endpoint) DTMF() <-chan DTMFEvent { panic("media: not built yet") }

// MediaTimeout receives at most one error wrapping ErrMediaTimeout.
func (e *Endpoint) MediaTimeout() <-chan error { panic("media: not built yet") }

// Stats returns a snapshot of the counters.
func (e *Endpoint) Stats() Stats { panic("media: not built yet") }

// Play sends 160-byte frames (20 ms of G.711 in the endpoint's codec) read from src, paced on
// the monotonic clock, on the continuous outgoing stream, overriding a bridge for its duration.
// It returns nil at io.EOF and the context's cause when ctx is cancelled (barge-in).
func (e *Endpoint) Play(ctx context.Context, src io.Reader) error { panic("media: not built yet") }

// SendDTMF sends one RFC 4733 event (marker on the first packet, updates every 20 ms, three end
// packets) on the continuous outgoing stream.
func (e *Endpoint) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	panic("media: not built yet")
}

// Close stops everything, releases the ports and records the final metrics. Idempotent.
func (e *Endpoint) Close() error { panic("media: not built yet") }

// Bridge forwards RTP both ways between a and b with SSRC/sequence/timestamp rewriting and
// telephone-event payload type mapping. stop undoes it (idempotent).
func Bridge(a, b *Endpoint) (stop func(), err error) { panic("media: not built yet") }
