package bencode

import (
	"reflect"
	"strings"
	"testing"
)

func TestMarshalSortsKeysAndEncodesEveryType(t *testing.T) {
	got, err := Marshal(map[string]any{
		"sdp":     "v=0\r\n",
		"command": "offer",
		"flags":   []string{"trust-address"},
		"n":       -12,
		"raw":     []byte("ab"),
		"nested":  []any{int64(7), map[string]any{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "d7:command5:offer5:flagsl13:trust-addresse1:ni-12e6:nestedli7edee3:raw2:ab3:sdp5:v=0\r\ne"
	if string(got) != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestRoundTripOfAnNgReply(t *testing.T) {
	in := map[string]any{"result": "ok", "sdp": "v=0\r\nm=audio 30000 RTP/AVP 0\r\n", "warning": "x:y", "n": int64(0), "l": []any{"a", int64(1)}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip: %#v", out)
	}
}

func TestUnmarshalRefusesMalformedInput(t *testing.T) {
	for _, s := range []string{
		"", "i12", "i01e", "i-0e", "ie", "5:abc", "-1:a", "d3:keye", "di1ei2ee", "l", "x", "4:spamX",
		strings.Repeat("l", 100) + strings.Repeat("e", 100),
	} {
		if v, err := Unmarshal([]byte(s)); err == nil {
			t.Errorf("%q decoded to %#v, want an error", s, v)
		}
	}
}

func TestMarshalRefusesUnknownTypes(t *testing.T) {
	if _, err := Marshal(map[string]any{"x": 1.5}); err == nil {
		t.Fatal("a float encoded")
	}
}
