package recordings

import (
	"encoding/binary"
	"fmt"
)

// The WAV files written here are canonical RIFF/WAVE files (Microsoft "Multimedia Programming
// Interface and Data Specifications 1.0", 1991): a 12-byte RIFF header, a 16-byte "fmt " chunk
// (PCM, format tag 1) and a "data" chunk, so the audio starts at byte 44. The reader below
// accepts any chunk order and extra chunks (LIST, fact, ...) so that Repair can handle files
// written by other tools too.

// Audio format of every file written here: 8 kHz, 16-bit little-endian linear PCM.
const (
	SampleRate    = 8000
	BitsPerSample = 16
	headerSize    = 44
	// maxDataSize keeps the RIFF size (data + 36) within 32 bits.
	maxDataSize = 0xFFFFFFFF - 36
	// maxChunks bounds the chunk walk of ParseHeader.
	maxChunks = 64
)

// Header is what ParseHeader learns from a WAV file's first bytes.
type Header struct {
	Format        uint16 // 1 = PCM
	Channels      uint16
	SampleRate    uint32
	BitsPerSample uint16
	BlockAlign    uint16 // bytes per sample frame (all channels)
	RIFFSize      uint32 // the RIFF chunk's size field: file size − 8 when consistent
	DataOffset    int64  // where the audio starts
	DataSize      uint32 // the data chunk's size field
}

// Frames is the number of sample frames the header's data size describes.
func (h Header) Frames() int64 {
	if h.BlockAlign == 0 {
		return 0
	}
	return int64(h.DataSize) / int64(h.BlockAlign)
}

// Consistent reports whether the header's sizes agree with a file of fileSize bytes: the data
// chunk runs to the end of the file (a pad byte allowed) and the RIFF size is the file size − 8.
func (h Header) Consistent(fileSize int64) bool {
	end := h.DataOffset + int64(h.DataSize)
	return (end == fileSize || end+1 == fileSize && h.DataSize%2 == 1) && int64(h.RIFFSize) == fileSize-8
}

// ParseHeader reads the RIFF/WAVE header in b (the first bytes of a file) up to the start of the
// data chunk. It checks the structure and the PCM format, not the sizes against the file's length
// (see Header.Consistent). Errors wrap ErrBadWAV.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return h, fmt.Errorf("%w: not a RIFF/WAVE file", ErrBadWAV)
	}
	h.RIFFSize = binary.LittleEndian.Uint32(b[4:8])
	off := int64(12)
	haveFmt := false
	for range maxChunks {
		if off+8 > int64(len(b)) {
			return h, fmt.Errorf("%w: no data chunk within the first %d bytes", ErrBadWAV, len(b))
		}
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		switch id {
		case "fmt ":
			if size < 16 || body+16 > int64(len(b)) {
				return h, fmt.Errorf("%w: fmt chunk of %d bytes", ErrBadWAV, size)
			}
			f := b[body:]
			h.Format = binary.LittleEndian.Uint16(f[0:2])
			h.Channels = binary.LittleEndian.Uint16(f[2:4])
			h.SampleRate = binary.LittleEndian.Uint32(f[4:8])
			h.BlockAlign = binary.LittleEndian.Uint16(f[12:14])
			h.BitsPerSample = binary.LittleEndian.Uint16(f[14:16])
			if h.Format != 1 {
				return h, fmt.Errorf("%w: format %d is not PCM", ErrBadWAV, h.Format)
			}
			if h.Channels == 0 || h.BitsPerSample == 0 || h.BitsPerSample%8 != 0 || h.SampleRate == 0 ||
				int(h.BlockAlign) != int(h.Channels)*int(h.BitsPerSample)/8 {
				return h, fmt.Errorf("%w: inconsistent fmt chunk (%d channels, %d bits, block %d)",
					ErrBadWAV, h.Channels, h.BitsPerSample, h.BlockAlign)
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return h, fmt.Errorf("%w: data chunk before fmt chunk", ErrBadWAV)
			}
			h.DataOffset = body
			h.DataSize = uint32(size)
			return h, nil
		}
		off = body + size + size%2 // RIFF chunks are padded to an even length
	}
	return h, fmt.Errorf("%w: more than %d chunks before the data", ErrBadWAV, maxChunks)
}

// appendHeader appends a canonical 44-byte PCM header for dataSize bytes of audio.
func appendHeader(b []byte, channels int, dataSize uint32) []byte {
	block := channels * BitsPerSample / 8
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, 36+dataSize)
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, SampleRate)
	b = binary.LittleEndian.AppendUint32(b, uint32(SampleRate*block))
	b = binary.LittleEndian.AppendUint16(b, uint16(block))
	b = binary.LittleEndian.AppendUint16(b, BitsPerSample)
	b = append(b, "data"...)
	return binary.LittleEndian.AppendUint32(b, dataSize)
}
