// Package media owns RTP below the calls: port allocation, RTP endpoints, bridging, G.711,
// RFC 4733 DTMF, RFC 3550 statistics and RTCP, and prompt playback. It knows nothing of calls,
// SIP or SDP: the sip package negotiates and tells an Endpoint what was agreed.
//
// # One leg
//
// A PortAllocator hands out even RTP ports (RTCP on the next, odd, port) from the configured
// range, round-robin, and ErrNoPorts when the range is exhausted (SIP answers 503). An Endpoint
// binds one pair and is one RTP leg:
//
//	ep, err := media.NewEndpoint(media.EndpointOptions{Allocator: ports, Metrics: m})
//	ep.SetCodec(0, media.PCMU)        // the answer's codec and payload type
//	ep.SetDTMFPayloadType(101)        // mirror the peer's telephone-event payload type
//	ep.SetRemote(remoteFromSDP)       // c=/m=; again on re-INVITE; 0.0.0.0 holds
//	ep.SetDirection(media.RecvOnly)   // our a= direction; only sendrecv/sendonly send
//	select { case err := <-ep.MediaTimeout(): … case d := <-ep.DTMF(): … }
//	ep.Close()
//
// Receiving is symmetric RTP with latching: the first valid packet fixes the peer's address,
// later packets from anywhere else are dropped and counted. Statistics follow RFC 3550
// Appendix A (loss A.3, jitter A.8) in atomics; RTCP SR/RR with SDES go out every ~5 s and the
// peer's reports are read.
//
// # One outgoing stream per leg
//
// Each Endpoint sends exactly one RTP stream (one SSRC, sequence +1 per packet, timestamps
// advancing with real time) whatever feeds it: Bridge (the other leg's audio and DTMF), Play
// (prompts, music on hold) and SendDTMF override the bridge while they run. On every change of
// source the sender re-bases sequence and timestamp, so a browser's SRTP replay protection or a
// carrier's jitter buffer never sees a jump back.
//
// Forwarding is synchronous: the receiving leg's reader goroutine parses into a value header,
// updates the statistics, taps, rewrites into the sending leg's own buffer and calls sendto(2).
// Each endpoint owns one receive and one send buffer, so nothing is pooled, retained or
// allocated per packet (TestForwardDoesNotAllocate, BenchmarkForward).
//
// # The agent's browser
//
// WebRTC (webrtc.go) holds the pion API and the one ICE socket; each logged-in agent gets a
// WebRTCLeg: one PeerConnection for the session, relayed on loopback to an internal Endpoint,
// so calls are bridged to it with Bridge and the browser hears one continuous stream.
//
// # Not built here yet
//
// SDP a=rtcp (an RTCP port other than RTP+1) and rtcp-mux are not supported.
// There is no jitter buffer or packet-loss concealment: the gateway relays, it does not play out.
package media
