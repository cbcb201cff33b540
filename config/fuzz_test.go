package config

import (
	"os"
	"testing"
)

// FuzzParse proves Parse never panics, that every problem it returns says something, and
// that a configuration it accepts validates again unchanged.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(devFile); err == nil {
		f.Add(b)
	}
	for _, tc := range problemCases {
		f.Add([]byte(base + tc.yaml))
	}
	f.Add([]byte(""))
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte("<<: {log: {level: info}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parse(b, noEnv)
		if err != nil {
			ps, ok := err.(Problems)
			if !ok || len(ps) == 0 {
				t.Fatalf("parse returned %T %v, want non-empty Problems", err, err)
			}
			for _, p := range ps {
				if p.Message == "" {
					t.Fatalf("problem without a message: %#v", p)
				}
			}
			return
		}
		if ps := c.Validate(); len(ps) > 0 {
			t.Fatalf("accepted configuration fails Validate again: %v", ps)
		}
	})
}
