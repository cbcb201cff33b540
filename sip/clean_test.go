package sip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCleanText names what reaches an event or a log line for each kind of hostile string.
func TestCleanText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"printable ASCII unchanged", "Alice Caller", "Alice Caller"},
		{"NUL dropped", "Al\x00ice", "Alice"},
		{"other C0 and DEL dropped", "A\x01l\x1bi\x7fce", "Alice"},
		{"C1 controls dropped", "Al\u0085i\u009bce", "Alice"},
		{"tab and newlines become spaces, ends trimmed", "\tAlice\r\nCaller\n", "Alice  Caller"},
		{"invalid UTF-8 replaced", "Al\xffice", "Al\uFFFDice"},
		{"non-ASCII letters kept", "Zoë Ångström 山田", "Zoë Ångström 山田"},
		{"cut on a rune boundary", strings.Repeat("é", 100), strings.Repeat("é", maxNameLen/2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanText(tc.in, maxNameLen); got != tc.want {
				t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if got := displayName(`Al\"ice \\ ` + "\x00"); got != `Al"ice \` {
		t.Errorf("displayName unescapes quoted-pairs and cleans: %q", got)
	}
	if got := uriUser("%00%2B1555%0a0100%zz"); got != "+1555 0100%zz" {
		t.Errorf("uriUser unescapes and cleans: %q", got)
	}
	if got := escapeUser("<+1555 é>"); got != "%3C+1555%20%C3%A9%3E" {
		t.Errorf("escapeUser = %q", got)
	}
	if got := quoteDisplayName(`Al"ice \`); got != `Al\"ice \\` {
		t.Errorf("quoteDisplayName = %q", got)
	}
}

// FuzzCleanText: whatever comes in, what comes out is valid UTF-8 without a control character,
// within the bound, and cleaning it again changes nothing.
func FuzzCleanText(f *testing.F) {
	for _, s := range []string{"", "Alice", "Al\x00ice", "\xff\xfe", "\u0085\u009f", " \t\r\n", "%00", `\"`, strings.Repeat("é", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, fn := range []struct {
			name string
			f    func(string) string
			max  int
		}{{"cleanText", func(s string) string { return cleanText(s, maxNameLen) }, maxNameLen},
			{"displayName", displayName, maxNameLen}, {"uriUser", uriUser, maxUserLen}, {"logValue", logValue, maxLogValue}} {
			out := fn.f(s)
			if !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q: invalid UTF-8", fn.name, s, out)
			}
			if len(out) > fn.max {
				t.Fatalf("%s(%q): %d bytes > %d", fn.name, s, len(out), fn.max)
			}
			for _, r := range out {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
					t.Fatalf("%s(%q) = %q keeps control %U", fn.name, s, out, r)
				}
			}
			if again := cleanText(out, fn.max); again != out {
				t.Fatalf("cleanText not idempotent on %q: %q", out, again)
			}
			if fn.name == "uriUser" {
				if back := uriUser(escapeUser(out)); back != out {
					t.Fatalf("uriUser(escapeUser(%q)) = %q: the caller ID does not survive a b-leg", out, back)
				}
			}
		}
	})
}
