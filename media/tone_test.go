package media

import (
	"math"
	"testing"
)

// goertzel returns the relative power of freq in samples at 8 kHz.
func goertzel(samples []int16, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/clockRate)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return (s1*s1 + s2*s2 - coeff*s1*s2) / float64(len(samples)*len(samples))
}

// tone encodes n samples of a sine of freq Hz at about −6 dBFS.
func tone(c Codec, freq float64, n int) []byte {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(16000 * math.Sin(2*math.Pi*freq*float64(i)/clockRate))
	}
	out := make([]byte, n)
	c.Encode(out, pcm)
	return out
}

// Rule: audio crossing a bridge between a μ-law and an A-law leg is still the same sound: a
// 1 kHz tone sent as PCMU arrives as PCMA that decodes to a 1 kHz tone (detected, not compared
// byte for byte, since the laws quantise differently).
func TestBridgedToneSurvivesLawConversion(t *testing.T) {
	alloc := testAllocator(t, 8)
	carrier := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	agent := newTestEndpoint(t, EndpointOptions{Allocator: alloc})
	carrier.SetCodec(0, PCMU)
	agent.SetCodec(8, PCMA)
	pc, pa := newPeer(t), newPeer(t)
	agent.SetRemote(pa.addr())
	if _, err := Bridge(carrier, agent); err != nil {
		t.Fatal(err)
	}
	sent := tone(PCMU, 1000, 10*FrameSize)
	var got []int16
	for i := range 10 {
		p := audio(0, uint16(i), uint32(i*FrameSize), 1, 0)
		p.Payload = sent[i*FrameSize : (i+1)*FrameSize]
		pc.send(carrier.LocalAddr(), p)
		r := pa.recv()
		if r.PayloadType != 8 {
			t.Fatalf("PT %d, want PCMA", r.PayloadType)
		}
		pcm := make([]int16, len(r.Payload))
		PCMA.Decode(pcm, r.Payload)
		got = append(got, pcm...)
	}
	on, off := goertzel(got, 1000), goertzel(got, 1500)
	if on < 1000*off {
		t.Errorf("1 kHz power %.0f vs 1.5 kHz %.0f: the tone did not survive", on, off)
	}
}
