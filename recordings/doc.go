// Package recordings writes calls' RTP to stereo WAV files, stores them, repairs them after a
// crash, applies retention and deletes them.
//
// Not built yet: see issue 8 (recordings).
package recordings
