package ivr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

var infoCases = []struct {
	name, ctype, body string
	digit             rune
	dur               time.Duration
	ok                bool
}{
	{"dtmf-relay CRLF", "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', 160 * time.Millisecond, true},
	{"dtmf-relay LF, spaces, order", "application/dtmf-relay", "Duration= 250\nSignal = #\n", '#', 250 * time.Millisecond, true},
	{"dtmf-relay star", "application/dtmf-relay", "Signal=*\r\n", '*', 0, true},
	{"dtmf-relay event code 11 is #", "application/dtmf-relay", "Signal=11\r\nDuration=100", '#', 100 * time.Millisecond, true},
	{"dtmf-relay lower-case letter", "application/dtmf-relay", "signal=a\r\n", 'A', 0, true},
	{"dtmf-relay with charset parameter", "application/dtmf-relay; charset=utf-8", "Signal=1", '1', 0, true},
	{"dtmf body", "application/dtmf", "7", '7', 0, true},
	{"dtmf body with newline", "Application/DTMF", "9\r\n", '9', 0, true},
	{"dtmf event code 10 is *", "application/dtmf", "10", '*', 0, true},
	{"no Signal", "application/dtmf-relay", "Duration=160\r\n", 0, 0, false},
	{"bad Signal", "application/dtmf-relay", "Signal=X\r\n", 0, 0, false},
	{"bad Duration", "application/dtmf-relay", "Signal=1\r\nDuration=-5\r\n", 0, 0, false},
	{"event code out of range", "application/dtmf", "16", 0, 0, false},
	{"event code 12 is A", "application/dtmf", "12", 'A', 0, true},
	{"three keys", "application/dtmf", "123", 0, 0, false},
	{"empty", "application/dtmf", "", 0, 0, false},
	{"other content type", "application/media_control+xml", "<xml/>", 0, 0, false},
	{"bad content type", ";;", "Signal=1", 0, 0, false},
}

// TestParseINFO covers both SIP INFO DTMF bodies.
func TestParseINFO(t *testing.T) {
	for _, tc := range infoCases {
		t.Run(tc.name, func(t *testing.T) {
			d, dur, err := ParseINFO(tc.ctype, []byte(tc.body))
			if !tc.ok {
				if !errors.Is(err, ErrNotDTMF) {
					t.Errorf("err %v, want ErrNotDTMF", err)
				}
				return
			}
			if err != nil || d != tc.digit || dur != tc.dur {
				t.Errorf("got %q %s %v, want %q %s", d, dur, err, tc.digit, tc.dur)
			}
		})
	}
}

// FuzzParseINFO: never panics; a key it returns is a DTMF key.
func FuzzParseINFO(f *testing.F) {
	for _, tc := range infoCases {
		f.Add(tc.ctype, []byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		d, dur, err := ParseINFO(ctype, body)
		if err != nil {
			if !errors.Is(err, ErrNotDTMF) {
				t.Fatalf("error not wrapping ErrNotDTMF: %v", err)
			}
			return
		}
		if _, ok := media.EventOf(d); !ok || dur < 0 {
			t.Fatalf("returned %q %s", d, dur)
		}
	})
}

// wavFile builds a WAV with the given fmt fields and data, and optional extra chunks first.
func wavFile(format, channels uint16, rate uint32, bits uint16, data []byte, extra ...[]byte) []byte {
	var b bytes.Buffer
	var body bytes.Buffer
	body.WriteString("WAVE")
	for _, e := range extra {
		body.Write(e)
	}
	body.WriteString("fmt ")
	binary.Write(&body, binary.LittleEndian, uint32(16))
	binary.Write(&body, binary.LittleEndian, format)
	binary.Write(&body, binary.LittleEndian, channels)
	binary.Write(&body, binary.LittleEndian, rate)
	binary.Write(&body, binary.LittleEndian, rate*uint32(bits/8)*uint32(channels))
	binary.Write(&body, binary.LittleEndian, uint16(bits/8)*channels)
	binary.Write(&body, binary.LittleEndian, bits)
	body.WriteString("data")
	binary.Write(&body, binary.LittleEndian, uint32(len(data)))
	body.Write(data)
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(body.Len()))
	b.Write(body.Bytes())
	return b.Bytes()
}

// TestParseWAV: the formats prompts come in, and refusals with ErrBadWAV.
func TestParseWAV(t *testing.T) {
	pcm := []int16{0, 1000, -1000, 32000, -32000, 5}
	ulaw := make([]byte, len(pcm))
	media.PCMU.Encode(ulaw, pcm)
	alaw := make([]byte, len(pcm))
	media.PCMA.Encode(alaw, pcm)
	list := append([]byte("LIST\x03\x00\x00\x00abc"), 0) // odd-sized chunk with its pad byte
	good := []struct {
		name string
		file []byte
	}{
		{"pcm16", EncodeWAV(pcm)},
		{"ulaw", wavFile(wavULaw, 1, 8000, 8, ulaw)},
		{"alaw", wavFile(wavALaw, 1, 8000, 8, alaw)},
		{"pcm8", wavFile(wavPCM, 1, 8000, 8, []byte{128, 200, 56, 255, 0, 129})},
		{"pcm16 after a LIST chunk", wavFile(wavPCM, 1, 8000, 16, EncodeWAV(pcm)[44:], list)},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseWAV(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Bytes(media.PCMU)) != len(pcm) || len(p.Bytes(media.PCMA)) != len(pcm) {
				t.Fatalf("%d/%d samples", len(p.Bytes(media.PCMU)), len(p.Bytes(media.PCMA)))
			}
			if (tc.name == "ulaw" || tc.name == "pcm16") && !bytes.Equal(p.Bytes(media.PCMU), ulaw) {
				t.Errorf("μ-law %v, want %v", p.Bytes(media.PCMU), ulaw)
			}
			if p.Duration() != time.Duration(len(pcm))*125*time.Microsecond {
				t.Errorf("duration %s", p.Duration())
			}
		})
	}
	bad := []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"not RIFF", []byte("RIFX0000WAVE")},
		{"16 kHz", wavFile(wavPCM, 1, 16000, 16, make([]byte, 8))},
		{"stereo", wavFile(wavPCM, 2, 8000, 16, make([]byte, 8))},
		{"24-bit", wavFile(wavPCM, 1, 8000, 24, make([]byte, 9))},
		{"IEEE float", wavFile(3, 1, 8000, 32, make([]byte, 8))},
		{"no data", EncodeWAV(pcm)[:36]},
		{"fmt runs past the end", []byte("RIFF\x20\x00\x00\x00WAVEfmt \xff\x00\x00\x00")},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseWAV(tc.file); !errors.Is(err, ErrBadWAV) {
				t.Errorf("err %v, want ErrBadWAV", err)
			}
		})
	}
}

// FuzzParseWAV: never panics; a parsed prompt has both laws of equal length.
func FuzzParseWAV(f *testing.F) {
	f.Add(EncodeWAV([]int16{1, 2, 3}))
	f.Add(wavFile(wavULaw, 1, 8000, 8, []byte{1, 2, 3}))
	f.Add(wavFile(wavALaw, 1, 8000, 8, []byte{1, 2, 3}, []byte("LIST\x01\x00\x00\x00a\x00")))
	f.Add(wavFile(wavExtensible, 1, 8000, 16, []byte{1, 2}))
	if b, err := os.ReadFile(filepath.Join("prompts", "beep.wav")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseWAV(b)
		if err != nil {
			if !errors.Is(err, ErrBadWAV) {
				t.Fatalf("error not wrapping ErrBadWAV: %v", err)
			}
			return
		}
		if len(p.Bytes(media.PCMU)) != len(p.Bytes(media.PCMA)) {
			t.Fatal("laws differ in length")
		}
	})
}

// TestBuiltinPrompts: the committed set loads (every file parses as 8 kHz mono), holds what
// ivr plays, and falls back from a regional language to its base, then to English.
func TestBuiltinPrompts(t *testing.T) {
	p, err := NewPrompts(PromptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"greeting", "menu", PromptPleaseHold, PromptVoicemail, PromptGoodbye,
		PromptClosed, PromptPosition, PromptPositionMany, PromptTransfer, PromptInvalid, "num_1", "num_20"} {
		for _, lang := range []string{"en", "fr"} {
			if _, ok := p.Get(lang, name); !ok {
				t.Errorf("no built-in %s/%s", lang, name)
			}
		}
	}
	for _, name := range []string{PromptBeep, PromptMusic} {
		if pr, ok := p.Get("", name); !ok || pr.Duration() < 300*time.Millisecond {
			t.Errorf("no built-in %s", name)
		}
	}
	en, _ := p.Get("en", "greeting")
	fr, _ := p.Get("fr", "greeting")
	frCA, _ := p.Get("fr-CA", "greeting")
	de, _ := p.Get("de", "greeting")
	if frCA != fr || de != en || fr == en {
		t.Error("language fallback: fr-CA → fr, de → en")
	}
	var total int
	if len(p.Names()) < 60 {
		t.Errorf("%d built-in prompts", len(p.Names()))
	}
	filepath.WalkDir("prompts", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			total += int(fi.Size())
		}
		return nil
	})
	if total > 1<<20 {
		t.Errorf("built-in prompts take %d bytes; keep them under 1 MiB", total)
	}
}

// TestPromptDirOverrides: an operator's directory replaces built-in prompts; a bad file is an
// error naming it.
func TestPromptDirOverrides(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "en"), 0o755)
	os.WriteFile(filepath.Join(dir, "en", "greeting.wav"), EncodeWAV(make([]int16, 80)), 0o644)
	p, err := NewPrompts(PromptOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := p.Get("en", "greeting"); g.Duration() != 10*time.Millisecond {
		t.Errorf("greeting not replaced: %s", g.Duration())
	}
	os.WriteFile(filepath.Join(dir, "en", "bad.wav"), []byte("nope"), 0o644)
	if _, err := NewPrompts(PromptOptions{Dir: dir}); !errors.Is(err, ErrBadWAV) {
		t.Errorf("bad prompt: %v", err)
	}
	if _, err := NewPrompts(PromptOptions{Dir: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing directory accepted")
	}
	if _, err := LoadWAV(filepath.Join(dir, "en", "greeting.wav")); err != nil {
		t.Error(err)
	}
}

// TestTargetString writes each target in the configuration's syntax (the configuration
// parses it: config.ParseTarget decodes straight into Target).
func TestTargetString(t *testing.T) {
	for s, tg := range map[string]Target{
		"ivr:main": MenuTarget("main"), "queue:support": QueueTarget("support"),
		"voicemail": VoicemailTarget(), "hangup": HangupTarget(), "sip:desk@127.0.0.1:5090": SIPTarget("sip:desk@127.0.0.1:5090"),
	} {
		if tg.String() != s {
			t.Errorf("String %q, want %q", tg.String(), s)
		}
	}
}

// TestNew_RefusesUnknownTargets: a menu naming a missing menu or queue is refused at start.
func TestNew_RefusesUnknownTargets(t *testing.T) {
	for _, m := range []Menu{
		{Options: map[string]Target{"1": MenuTarget("nowhere")}},
		{Options: map[string]Target{"1": QueueTarget("nowhere")}},
		{Options: map[string]Target{"x": HangupTarget()}},
		{NoInput: MenuTarget("nowhere")},
	} {
		if _, err := New(Options{Menus: map[string]Menu{"main": m}, Prompts: testPrompts(t, time.Millisecond)}); err == nil {
			t.Errorf("menu %+v accepted", m)
		}
	}
}
