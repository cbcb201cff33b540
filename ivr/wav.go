package ivr

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// WAV format tags (RIFF WAVE fmt chunk, wFormatTag).
const (
	wavPCM        = 1
	wavALaw       = 6
	wavULaw       = 7
	wavExtensible = 0xFFFE
)

// maxWAVBytes bounds a prompt file: 10 minutes of 8 kHz 16-bit audio.
const maxWAVBytes = 10 * 60 * 8000 * 2

// Prompt is one piece of audio ready to play: the same sound in both G.711 laws, so that it
// goes out in the leg's codec without per-packet conversion. Immutable once made.
type Prompt struct {
	ulaw, alaw []byte
}

// NewPrompt makes a prompt from 8 kHz linear PCM samples.
func NewPrompt(pcm []int16) *Prompt {
	p := &Prompt{ulaw: make([]byte, len(pcm)), alaw: make([]byte, len(pcm))}
	media.PCMU.Encode(p.ulaw, pcm)
	media.PCMA.Encode(p.alaw, pcm)
	return p
}

// Duration is how long the prompt plays.
func (p *Prompt) Duration() time.Duration {
	return time.Duration(len(p.ulaw)) * time.Second / 8000
}

// Bytes returns the prompt encoded in codec c (μ-law for CodecNone). Do not modify it.
func (p *Prompt) Bytes(c media.Codec) []byte {
	if c == media.PCMA {
		return p.alaw
	}
	return p.ulaw
}

// ParseWAV reads a RIFF WAVE file holding 8 kHz mono audio: 16-bit linear PCM, 8-bit unsigned
// PCM, G.711 μ-law (format 7) or A-law (format 6), also inside WAVE_FORMAT_EXTENSIBLE. Other
// rates or channel counts are refused (ErrBadWAV) rather than resampled: prompts are made for
// the phone network. Unknown chunks (LIST, fact) are skipped.
func ParseWAV(b []byte) (*Prompt, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%w: not a RIFF WAVE file", ErrBadWAV)
	}
	if len(b) > maxWAVBytes+1024 {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadWAV, maxWAVBytes)
	}
	var (
		haveFmt                bool
		format, channels, bits uint16
		rate                   uint32
		data                   []byte
		haveData               bool
	)
	rest := b[12:]
	for len(rest) >= 8 && !haveData {
		id := string(rest[0:4])
		size := binary.LittleEndian.Uint32(rest[4:8])
		rest = rest[8:]
		if uint64(size) > uint64(len(rest)) {
			if id != "data" {
				return nil, fmt.Errorf("%w: chunk %q runs past the end", ErrBadWAV, id)
			}
			size = uint32(len(rest)) // a truncated data chunk (a recording cut short) plays what is there
		}
		body := rest[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, fmt.Errorf("%w: fmt chunk of %d bytes", ErrBadWAV, size)
			}
			format = binary.LittleEndian.Uint16(body[0:2])
			channels = binary.LittleEndian.Uint16(body[2:4])
			rate = binary.LittleEndian.Uint32(body[4:8])
			bits = binary.LittleEndian.Uint16(body[14:16])
			if format == wavExtensible {
				if size < 40 {
					return nil, fmt.Errorf("%w: short WAVE_FORMAT_EXTENSIBLE fmt chunk", ErrBadWAV)
				}
				format = binary.LittleEndian.Uint16(body[24:26]) // first two bytes of the SubFormat GUID
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, fmt.Errorf("%w: data before fmt", ErrBadWAV)
			}
			data, haveData = body, true
		}
		// Chunks are padded to an even size.
		skip := int(size) + int(size&1)
		if skip > len(rest) {
			skip = len(rest)
		}
		rest = rest[skip:]
	}
	if !haveFmt || !haveData {
		return nil, fmt.Errorf("%w: no fmt or data chunk", ErrBadWAV)
	}
	if channels != 1 || rate != 8000 {
		return nil, fmt.Errorf("%w: %d Hz, %d channels; want 8000 Hz mono", ErrBadWAV, rate, channels)
	}
	switch {
	case format == wavULaw && bits == 8:
		pcm := make([]int16, len(data))
		media.PCMU.Decode(pcm, data)
		return &Prompt{ulaw: bytes.Clone(data), alaw: encode(media.PCMA, pcm)}, nil
	case format == wavALaw && bits == 8:
		pcm := make([]int16, len(data))
		media.PCMA.Decode(pcm, data)
		return &Prompt{ulaw: encode(media.PCMU, pcm), alaw: bytes.Clone(data)}, nil
	case format == wavPCM && bits == 16:
		pcm := make([]int16, len(data)/2)
		for i := range pcm {
			pcm[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
		}
		return NewPrompt(pcm), nil
	case format == wavPCM && bits == 8:
		pcm := make([]int16, len(data))
		for i, v := range data {
			pcm[i] = (int16(v) - 128) << 8
		}
		return NewPrompt(pcm), nil
	}
	return nil, fmt.Errorf("%w: format %d with %d bits per sample; want PCM 16-bit, μ-law or A-law", ErrBadWAV, format, bits)
}

func encode(c media.Codec, pcm []int16) []byte {
	out := make([]byte, len(pcm))
	c.Encode(out, pcm)
	return out
}

// LoadWAV reads and parses a WAV file (a queue's music, an operator's prompt).
func LoadWAV(path string) (*Prompt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ivr: load prompt: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxWAVBytes+1025))
	if err != nil {
		return nil, fmt.Errorf("ivr: load prompt %s: %w", path, err)
	}
	p, err := ParseWAV(b)
	if err != nil {
		return nil, fmt.Errorf("ivr: load prompt %s: %w", path, err)
	}
	return p, nil
}

// EncodeWAV writes pcm as an 8 kHz mono 16-bit PCM WAV file (tests, voicemail writers).
func EncodeWAV(pcm []int16) []byte {
	var b bytes.Buffer
	n := uint32(2 * len(pcm))
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, 36+n)
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, uint32(16))
	binary.Write(&b, binary.LittleEndian, uint16(wavPCM))
	binary.Write(&b, binary.LittleEndian, uint16(1))
	binary.Write(&b, binary.LittleEndian, uint32(8000))
	binary.Write(&b, binary.LittleEndian, uint32(16000))
	binary.Write(&b, binary.LittleEndian, uint16(2))
	binary.Write(&b, binary.LittleEndian, uint16(16))
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, n)
	binary.Write(&b, binary.LittleEndian, pcm)
	return b.Bytes()
}
