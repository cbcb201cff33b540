// Package media owns RTP: endpoints and port allocation, bridging, G.711, RFC 4733 DTMF,
// jitter and loss statistics, prompt playback and the WebRTC leg. It knows nothing of calls.
//
// Not built yet: see issue 5 (SIP B2BUA and RTP media).
package media
