// Package media owns RTP below the calls: port allocation, RTP endpoints, bridging, G.711,
// RFC 4733 DTMF, RFC 3550 statistics and RTCP, and prompt playback. It knows nothing of calls,
// SIP or SDP: the sip package negotiates and tells an Endpoint what was agreed.
//
// # One leg
//
// A PortAllocator hands out even RTP ports (RTCP on the next, odd, port) from the configured
// range, from a free list shuffled at start (PortAllocatorOptions.Rand) with released ports
// going to its tail — never next = last + 2, so one call's port says nothing about the next —
// and ErrNoPorts when the range is exhausted (SIP answers 503). An Endpoint binds one pair and
// is one RTP leg:
//
//	ep, err := media.NewEndpoint(media.EndpointOptions{Allocator: ports, Metrics: m,
//		MediaTimeout: media.DefaultMediaTimeout, HoldTimeout: media.DefaultHoldTimeout,
//		RTCPInterval: media.DefaultRTCPInterval, LearningWindow: media.DefaultLearningWindow, // 0: off
//		SignalSource: inviteSourceIP})     // a NAT'd phone's RTP comes from there
//	ep.SetCodec(0, media.PCMU)        // the answer's codec and payload type
//	ep.SetDTMFPayloadType(101)        // mirror the peer's telephone-event payload type
//	ep.SetRemote(remoteFromSDP)       // c=/m=; again on re-INVITE; 0.0.0.0 holds
//	ep.SetDirection(media.RecvOnly)   // our a= direction; only sendrecv/sendonly send
//	select { case err := <-ep.MediaTimeout(): … case d := <-ep.DTMF(): … }
//	ep.Close()
//
// Receiving is symmetric RTP (RFC 4961) with a strict source (source.go), the rules of
// rtpengine's heuristic endpoint learning with strict-source and Asterisk's strictrtp probation,
// so that an RTP sprayer cannot take a call ("RTP bleed"):
//
//   - a source whose IP is the SDP c= address (SetRemote) or the signalling source
//     (EndpointOptions.SignalSource) latches at once; the c= address and port beat the c=
//     address, which beats the signalling source, while a learning window is open;
//   - any other source must send Probation (4) consecutive sequence numbers within
//     ProbationWindow (1 s) and may latch only once the LearningWindow (3 s from the first c=)
//     has closed with nobody better heard; until then nothing is sent to it;
//   - after latching every other source is dropped, counted (reason foreign_source) and reported
//     to Metrics.OnForeignSource (sip's rtp_source_rejected security event);
//   - a re-INVITE never drops the latch and never lets a stranger in again; one that moves c=
//     makes us send to the new address, whose source takes the latch when it speaks;
//   - RTCP keeps its own latch under the same rules (the RTP peer's address counts as matching);
//   - an endpoint with EndpointOptions.Peer (the WebRTC leg's relay) accepts that address only.
//
// Statistics follow RFC 3550 Appendix A (loss A.3, jitter A.8) in atomics; RTCP SR/RR with SDES
// go out every ~5 s and the peer's reports are read.
//
// # One outgoing stream per leg
//
// Each Endpoint sends exactly one RTP stream (one SSRC, sequence +1 per packet, timestamps
// advancing with real time) whatever feeds it: Bridge (the other leg's audio and DTMF), Play
// (prompts, music on hold) and SendDTMF override the bridge while they run. On every change of
// source the sender re-bases sequence and timestamp, so a browser's SRTP replay protection or a
// carrier's jitter buffer never sees a jump back.
//
// Forwarding is synchronous: the reader that received a packet parses it into a value header,
// updates the statistics, taps, and rewrites it into its send batch (recv_linux.go, txBatch);
// once the datagrams of one recvmmsg(2) are handled, the batch goes out on the other leg's
// socket with one sendmmsg(2) — the packets of one read all go to the same leg — and what the
// kernel refuses (a full send buffer) is dropped, never waited for. Play and SendDTMF send
// each packet at once with sendto(2). An endpoint has no goroutine of its own: its two sockets are read by the
// PortAllocator's poll loops (recv_linux.go), one per GOMAXPROCS at most, each an epoll
// instance over many sockets, edge-triggered and parked in the runtime's netpoller. The sockets
// are bare descriptors (Socket, socket_linux.go) that only their loop's epoll watches — not the
// runtime's, which the net package would register them with. One wake-up
// serves every socket with something queued, each with recvmmsg(2), so at load a wake-up
// carries many packets and the per-packet cost falls; a busy loop (two packets a round or
// more) is not woken by each packet but reads once a millisecond (coalesceWindow). Its timers are time.AfterFunc
// (rtcp.go), and a media timeout can be delivered to a callback (OnMediaTimeout) rather than
// to a goroutine waiting on a channel for the whole call. Close returns only when no packet of
// the endpoint is being handled. Other systems than Linux read each socket with a goroutine
// of its own and send each packet at once (recv_other.go). The receive and send batches belong
// to the loops, and the buffers of packets sent at once to the PortAllocator's pool, held only
// while a packet is handled, so an idle leg holds none and nothing is retained or allocated
// per packet (TestForwardDoesNotAllocate, TestBatchedForwardDoesNotAllocate, BenchmarkForward,
// BenchmarkForwardBatch).
//
// # More than two parties
//
// Mixer (mixer.go) joins several endpoints with N-1 mixing: G.711 decoded to linear, summed per
// listener without the listener's own audio, clipped, encoded in the listener's law, one frame
// every 20 ms from one goroutine per mix, nothing allocated per packet or frame. Who hears whom
// is per member (everyone, nobody, one listener: a conference, a supervisor who monitors, one who
// whispers). A member that hears the mix has the mixer's stream override its bridge like Play;
// one that does not keeps its bridge, so monitoring a call leaves the caller–agent path as it was.
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
