package media

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Known points of ITU-T G.711: silence, the extremes and a few segment boundaries.
func TestG711KnownValues(t *testing.T) {
	ulaw := []struct {
		code byte
		pcm  int16
	}{
		{0xFF, 0}, {0x7F, 0}, {0x80, 32124}, {0x00, -32124}, {0xFE, 8}, {0x7E, -8},
	}
	for _, c := range ulaw {
		if got := DecodeULaw(c.code); got != c.pcm {
			t.Errorf("DecodeULaw(%#x) = %d, want %d", c.code, got, c.pcm)
		}
	}
	alaw := []struct {
		code byte
		pcm  int16
	}{
		{0xD5, 8}, {0x55, -8}, {0xAA, 32256}, {0x2A, -32256}, {0xD4, 24}, {0x80, 5504},
	}
	for _, c := range alaw {
		if got := DecodeALaw(c.code); got != c.pcm {
			t.Errorf("DecodeALaw(%#x) = %d, want %d", c.code, got, c.pcm)
		}
	}
	encodes := []struct {
		pcm    int16
		ul, al byte
	}{
		{0, 0xFF, 0xD5}, {32767, 0x80, 0xAA}, {-32768, 0x00, 0x2A}, {-1, 0x7F, 0x55}, {100, 0xF2, 0xD3},
	}
	for _, c := range encodes {
		if got := EncodeULaw(c.pcm); got != c.ul {
			t.Errorf("EncodeULaw(%d) = %#x, want %#x", c.pcm, got, c.ul)
		}
		if got := EncodeALaw(c.pcm); got != c.al {
			t.Errorf("EncodeALaw(%d) = %#x, want %#x", c.pcm, got, c.al)
		}
	}
}

// Every code decodes to a value that encodes back to the same code (except μ-law's two zeros).
func TestG711RoundTripEveryCode(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if b != 0x7F {
			if got := EncodeULaw(DecodeULaw(b)); got != b {
				t.Errorf("μ-law %#x → %d → %#x", b, DecodeULaw(b), got)
			}
		}
		if got := EncodeALaw(DecodeALaw(b)); got != b {
			t.Errorf("A-law %#x → %d → %#x", b, DecodeALaw(b), got)
		}
	}
}

// The decoders agree with SoX (an independent implementation) on all 256 codes of each law.
// (SoX's encoder rounds where the ITU reference truncates, so encoders are checked by the
// round-trip and monotonicity tests instead.)
func TestG711DecodersMatchSoX(t *testing.T) {
	sox, err := exec.LookPath("sox")
	if err != nil {
		t.Skip("sox not installed")
	}
	dir := t.TempDir()
	codes := make([]byte, 256)
	for i := range codes {
		codes[i] = byte(i)
	}
	in := filepath.Join(dir, "codes.raw")
	if err := os.WriteFile(in, codes, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		enc string
		f   func(byte) int16
	}{{"u-law", DecodeULaw}, {"a-law", DecodeALaw}} {
		out := filepath.Join(dir, c.enc+".raw")
		cmd := exec.Command(sox, "-D", "-t", "raw", "-r", "8000", "-e", c.enc, "-b", "8", "-c", "1", in,
			"-t", "raw", "-e", "signed", "-b", "16", "-L", out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sox: %v: %s", err, msg)
		}
		want, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != 512 {
			t.Fatalf("sox wrote %d bytes", len(want))
		}
		for i := range 256 {
			w := int16(binary.LittleEndian.Uint16(want[2*i:]))
			if got := c.f(byte(i)); got != w {
				t.Errorf("%s: code %#x: got %d, sox %d", c.enc, i, got, w)
			}
		}
	}
}

// Encoding is monotonic: a larger sample never gives a smaller decoded value.
func TestG711EncodeMonotonic(t *testing.T) {
	prevU, prevA := DecodeULaw(EncodeULaw(-32768)), DecodeALaw(EncodeALaw(-32768))
	for s := -32767; s <= 32767; s++ {
		u, a := DecodeULaw(EncodeULaw(int16(s))), DecodeALaw(EncodeALaw(int16(s)))
		if u < prevU || a < prevA {
			t.Fatalf("not monotonic at %d: μ %d<%d or A %d<%d", s, u, prevU, a, prevA)
		}
		prevU, prevA = u, a
	}
}

func TestTranscodeKeepsSilence(t *testing.T) {
	dst := make([]byte, 2)
	transcode(dst, []byte{0xFF, 0x7F}, PCMU, PCMA)
	if dst[0] != 0xD5 || dst[1] != 0xD5 {
		t.Errorf("μ-law silence → A-law %#x", dst)
	}
	transcode(dst, []byte{0xD5, 0x55}, PCMA, PCMU)
	if dst[0] != EncodeULaw(8) || dst[1] != EncodeULaw(-8) {
		t.Errorf("A-law ±8 → μ-law %#x", dst)
	}
}
