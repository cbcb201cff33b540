// Package ivr runs menu flows, prompts and voicemail, and the queue (ACD) with its agent states.
//
// Not built yet: see issue 6 (IVR, queue and voicemail).
package ivr
