package recordings

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// TestAppendSamplesMatchesSampleBySample proves the decoding eight slots at a time (words of
// one law through its table, words mixing both laws sample by sample) gives what media's
// decoders give sample by sample, and clears what it decoded: random codes over words all
// μ-law, all A-law and mixed, runs starting and ending anywhere in a word, odd lengths, after
// data already in the buffer.
func TestAppendSamplesMatchesSampleBySample(t *testing.T) {
	s := &Service{g711: newDecodeTables()}
	w := newWriter(s, "id", "call", "call", "x.wav", 2, time.Now(), nil)
	rnd := uint32(11)
	next := func(n uint32) uint32 { rnd = rnd*1664525 + 1013904223; return (rnd >> 8) % n }
	for round := range 400 {
		// Fill the ring with random codes; each word of law bits all μ-law, all A-law or mixed.
		for i := range w.ring {
			w.ring[i] = byte(next(256))
		}
		for i := range w.alaw {
			switch next(3) {
			case 0:
				w.alaw[i] = 0
			case 1:
				w.alaw[i] = ^uint64(0)
			default:
				w.alaw[i] = uint64(next(1<<16)) | uint64(next(1<<16))<<16 | uint64(next(1<<16))<<32 | uint64(next(1<<16))<<48
			}
		}
		ring := append([]byte(nil), w.ring...)
		alaw := append([]uint64(nil), w.alaw...)
		from := int64(next(uint32(len(ring))))
		to := from + int64(next(uint32(int64(len(ring))-from)+1))
		prefix := []byte{1, 2, 3}[:next(4)]
		out := w.appendSamples(append([]byte(nil), prefix...), from, to)
		if int64(len(out)) != int64(len(prefix))+2*(to-from) || string(out[:len(prefix)]) != string(prefix) {
			t.Fatalf("round %d: %d bytes out after a prefix of %d for %d slots", round, len(out), len(prefix), to-from)
		}
		for i := from; i < to; i++ {
			want := media.DecodeULaw(^ring[i])
			if alaw[i/64]>>(i%64)&1 != 0 {
				want = media.DecodeALaw(^ring[i])
			}
			if got := int16(binary.LittleEndian.Uint16(out[len(prefix)+int(2*(i-from)):])); got != want {
				t.Fatalf("round %d, slots [%d, %d): slot %d (code %#x, law word %#x) decoded %d, want %d",
					round, from, to, i, ring[i], alaw[i/64], got, want)
			}
			if w.ring[i] != 0 || w.alaw[i/64]>>(i%64)&1 != 0 {
				t.Fatalf("round %d: slot %d not cleared after decoding", round, i)
			}
		}
		for i := range ring {
			if int64(i) >= from && int64(i) < to {
				continue
			}
			if w.ring[i] != ring[i] || w.alaw[i/64]>>(i%64)&1 != alaw[i/64]>>(i%64)&1 {
				t.Fatalf("round %d: slot %d outside [%d, %d) changed", round, i, from, to)
			}
		}
	}
}

// BenchmarkDecodeASecond measures decoding a second of stereo G.711 codes from the ring into
// 16-bit samples (and clearing it), speech-like codes rather than the zero ring of
// BenchmarkCommitASecond: μ-law, A-law, and both laws on alternate slots (a call whose legs
// speak different codecs: every word mixed).
func BenchmarkDecodeASecond(b *testing.B) {
	s := &Service{g711: newDecodeTables()}
	frame := toneFrame(media.PCMU, 440, 0)
	for _, law := range []struct {
		name string
		word uint64
	}{{"PCMU", 0}, {"PCMA", ^uint64(0)}, {"mixed", 0xAAAAAAAAAAAAAAAA}} {
		b.Run(law.name, func(b *testing.B) {
			w := newWriter(s, "id", "call", "call", "x.wav", 2, time.Now(), nil)
			out := make([]byte, 0, 2*2*SampleRate)
			n := int64(min(len(w.ring), 2*SampleRate))
			codes := make([]byte, n)
			for i := range codes {
				codes[i] = ^frame[i%len(frame)] // the ring keeps codes inverted
			}
			b.ReportAllocs()
			b.SetBytes(2 * n)
			for b.Loop() {
				copy(w.ring, codes)
				for i := range (n + 63) / 64 {
					w.alaw[i] = law.word
				}
				out = w.appendSamples(out[:0], 0, n)
			}
		})
	}
}
