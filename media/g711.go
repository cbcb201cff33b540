package media

// G.711 (ITU-T G.711, 1988) companding, computed rather than looked up so that the package
// holds no mutable tables. Encoders follow the segment search of the ITU reference (also the
// classic Sun g711.c); decoders return 16-bit linear PCM.

const (
	ulawBias = 0x84  // 132: μ-law bias added before segment search
	ulawClip = 32635 // largest magnitude μ-law can represent after biasing
)

// EncodeULaw compresses one 16-bit linear sample to μ-law.
func EncodeULaw(sample int16) byte {
	s := int32(sample)
	sign := byte(0)
	if s < 0 {
		s = -s
		sign = 0x80
	}
	if s > ulawClip {
		s = ulawClip
	}
	s += ulawBias
	seg := byte(0)
	for v := s >> 8; v > 0 && seg < 7; v >>= 1 {
		seg++
	}
	mant := byte(s>>(seg+3)) & 0x0F
	return ^(sign | seg<<4 | mant)
}

// DecodeULaw expands one μ-law byte to 16-bit linear PCM.
func DecodeULaw(u byte) int16 {
	u = ^u
	seg := (u >> 4) & 0x07
	mant := int32(u & 0x0F)
	s := ((mant << 3) + ulawBias) << seg
	s -= ulawBias
	if u&0x80 != 0 {
		return int16(-s)
	}
	return int16(s)
}

// EncodeALaw compresses one 16-bit linear sample to A-law (even bits inverted, 0x55).
func EncodeALaw(sample int16) byte {
	pcm := int32(sample) >> 3 // A-law works on 13 bits
	mask := byte(0xD5)
	if pcm < 0 {
		mask = 0x55
		pcm = -pcm - 1
	}
	seg := byte(0)
	for end := int32(0x1F); pcm > end; end = end<<1 | 1 {
		seg++
		if seg == 8 {
			return 0x7F ^ mask
		}
	}
	a := seg << 4
	if seg < 2 {
		a |= byte(pcm>>1) & 0x0F
	} else {
		a |= byte(pcm>>seg) & 0x0F
	}
	return a ^ mask
}

// DecodeALaw expands one A-law byte to 16-bit linear PCM.
func DecodeALaw(a byte) int16 {
	a ^= 0x55
	t := int32(a&0x0F) << 4
	seg := (a & 0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// ULawToALaw converts one μ-law byte to the nearest A-law byte (via linear PCM).
func ULawToALaw(u byte) byte { return EncodeALaw(DecodeULaw(u)) }

// ALawToULaw converts one A-law byte to the nearest μ-law byte (via linear PCM).
func ALawToULaw(a byte) byte { return EncodeULaw(DecodeALaw(a)) }

// String returns the SDP encoding name (RFC 3551 §6).
func (c Codec) String() string {
	switch c {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return "none"
}

// PayloadType is the codec's static RTP payload type (RFC 3551 §6): 0 for PCMU, 8 for PCMA.
func (c Codec) PayloadType() uint8 {
	if c == PCMA {
		return 8
	}
	return 0
}

// Silence is the codec's byte for a zero sample (0xFF μ-law, 0xD5 A-law).
func (c Codec) Silence() byte {
	if c == PCMA {
		return 0xD5
	}
	return 0xFF
}

// Encode compresses pcm into dst (one byte per sample) and returns the bytes written,
// min(len(dst), len(pcm)).
func (c Codec) Encode(dst []byte, pcm []int16) int {
	n := min(len(dst), len(pcm))
	for i := range n {
		if c == PCMA {
			dst[i] = EncodeALaw(pcm[i])
		} else {
			dst[i] = EncodeULaw(pcm[i])
		}
	}
	return n
}

// Decode expands src into dst and returns the samples written, min(len(dst), len(src)).
func (c Codec) Decode(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i := range n {
		if c == PCMA {
			dst[i] = DecodeALaw(src[i])
		} else {
			dst[i] = DecodeULaw(src[i])
		}
	}
	return n
}

// transcode converts G.711 bytes from one law to the other into dst (same length as src).
func transcode(dst, src []byte, from, to Codec) {
	switch {
	case from == PCMU && to == PCMA:
		for i, b := range src {
			dst[i] = ULawToALaw(b)
		}
	case from == PCMA && to == PCMU:
		for i, b := range src {
			dst[i] = ALawToULaw(b)
		}
	default:
		copy(dst, src)
	}
}
