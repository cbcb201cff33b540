package recordings

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The header written is the canonical 44-byte PCM header and reads back.
func TestHeaderRoundTrip(t *testing.T) {
	for _, ch := range []int{1, 2} {
		b := appendHeader(nil, ch, 3200)
		if len(b) != headerSize {
			t.Fatalf("header of %d bytes", len(b))
		}
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		want := Header{Format: 1, Channels: uint16(ch), SampleRate: 8000, BitsPerSample: 16, BlockAlign: uint16(2 * ch),
			RIFFSize: 36 + 3200, DataOffset: 44, DataSize: 3200}
		if h != want {
			t.Errorf("got %+v, want %+v", h, want)
		}
		if !h.Consistent(44+3200) || h.Consistent(44+3199) || h.Frames() != int64(3200/(2*ch)) {
			t.Errorf("consistency or frames wrong for %+v", h)
		}
	}
}

// Headers with extra chunks parse; broken ones are ErrBadWAV.
func TestParseHeader(t *testing.T) {
	good := appendHeader(nil, 2, 0)
	withList := append([]byte(nil), good[:36]...)
	withList = append(withList, "LIST"...)
	withList = binary.LittleEndian.AppendUint32(withList, 3) // odd: padded
	withList = append(withList, "abc\x00"...)
	withList = append(withList, good[36:]...)
	if h, err := ParseHeader(withList); err != nil || h.DataOffset != 56 {
		t.Errorf("with a LIST chunk: %+v, %v", h, err)
	}
	bad := map[string][]byte{
		"empty":          nil,
		"not RIFF":       append([]byte("RIFX"), good[4:]...),
		"not WAVE":       append(append([]byte(nil), good[:8]...), append([]byte("AVI "), good[12:]...)...),
		"no data chunk":  good[:36],
		"short fmt":      append(append([]byte(nil), good[:16]...), 8, 0, 0, 0),
		"data first":     append(append([]byte(nil), good[:12]...), good[36:]...),
		"not PCM":        patch(good, 20, 3),
		"zero channels":  patch(good, 22, 0),
		"bad block size": patch(good, 32, 3),
	}
	for name, b := range bad {
		if _, err := ParseHeader(b); !errors.Is(err, ErrBadWAV) {
			t.Errorf("%s: %v, want ErrBadWAV", name, err)
		}
	}
}

func patch(b []byte, off int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[off] = v
	return c
}

// FuzzParseHeader: any bytes either fail with ErrBadWAV or give a header whose data starts
// within the bytes and whose format is sane. Seeded from the tests' headers.
func FuzzParseHeader(f *testing.F) {
	f.Add(appendHeader(nil, 2, 0))
	f.Add(appendHeader(nil, 1, 1<<20))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Add(append(appendHeader(nil, 2, 0)[:36], "LIST\x03\x00\x00\x00abc\x00data\x00\x00\x00\x00"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrBadWAV) {
				t.Fatalf("error %v does not wrap ErrBadWAV", err)
			}
			return
		}
		if h.DataOffset > int64(len(b)) || h.DataOffset < 20 || h.Format != 1 || h.Channels == 0 ||
			int(h.BlockAlign) != int(h.Channels)*int(h.BitsPerSample)/8 {
			t.Fatalf("accepted %+v from %d bytes", h, len(b))
		}
	})
}

// FuzzRepairFile: repairing any file either refuses it (ErrBadWAV) or leaves a file whose header
// is consistent with its size and whose data is whole sample frames; repairing again changes
// nothing. Seeded with a complete file, a stale header, a torn last frame and garbage.
func FuzzRepairFile(f *testing.F) {
	audio := bytes.Repeat([]byte{1, 2, 3, 4}, 100)
	complete := append(appendHeader(nil, 2, uint32(len(audio))), audio...)
	f.Add(complete)
	f.Add(append(appendHeader(nil, 2, 0), audio...))
	f.Add(append(appendHeader(nil, 1, 0), append(audio, 9)...))
	f.Add(append(appendHeader(nil, 2, 1<<30), audio[:7]...))
	f.Add([]byte("RIFF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.wav")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := RepairFile(path)
		if err != nil {
			if !errors.Is(err, ErrBadWAV) {
				t.Fatalf("repair: %v", err)
			}
			return
		}
		fixed, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(fixed)
		if err != nil {
			t.Fatalf("repaired file does not parse: %v", err)
		}
		if !h.Consistent(int64(len(fixed))) || h.DataSize%uint32(h.BlockAlign) != 0 {
			t.Fatalf("repaired header %+v for %d bytes", h, len(fixed))
		}
		if _, changed, err := RepairFile(path); err != nil || changed {
			t.Fatalf("second repair changed %v, %v", changed, err)
		}
	})
}
