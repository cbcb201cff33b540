// Package sip is Switchboard's back-to-back user agent: trunks, dialogs, SDP offer/answer,
// authentication, call control and its state machine, and SIP timers, on top of sipgo.
//
// Not built yet: see issue 5 (SIP B2BUA and RTP media).
package sip
