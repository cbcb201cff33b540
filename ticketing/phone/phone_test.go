package phone

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestNormalize is the table of what a carrier or a person may write and what it becomes. The
// national rows are issue 15's bug: sip's old normaliser put "+" in front of any digits, so a
// US national 2025550123 became +2025550123 (Cairo) and a French 0612345678 became
// +0612345678 (no country at all).
func TestNormalize(t *testing.T) {
	tests := []struct {
		name, raw, region, want string
	}{
		{"US national 10 digits", "2025550123", "US", "+12025550123"},
		{"US national with trunk prefix 1", "12025550123", "US", "+12025550123"},
		{"US national with separators", "(202) 555-0123", "US", "+12025550123"},
		{"US international prefix 011", "01133612345678", "US", "+33612345678"},
		{"US seven-digit test line is possible locally", "5550100", "US", "+15550100"},
		{"FR national mobile", "0612345678", "FR", "+33612345678"},
		{"FR national with dots", "06.12.34.56.78", "FR", "+33612345678"},
		{"FR international prefix 00", "0033612345678", "FR", "+33612345678"},
		{"FR country code without +", "33612345678", "FR", "+33612345678"},
		{"FR 00 to the US", "00 1 202 555 0123", "FR", "+12025550123"},
		{"00 read as international where the region's reading fails", "0033612345678", "US", "+33612345678"},
		{"E.164 with + whatever the region", "+442079460000", "US", "+442079460000"},
		{"E.164 with + and spaces", "+44 20 7946 0000", "FR", "+442079460000"},
		{"E.164 with + and no region", "+33612345678", "", "+33612345678"},
		{"test range +1555 is possible", "+15551234567", "US", "+15551234567"},
		{"tel URI", "tel:+1-202-555-0123", "US", "+12025550123"},
		{"tel URI in capitals", "TEL:+12025550123", "US", "+12025550123"},
		{"SIP user part with URI parameter", "+12025550123;user=phone", "US", "+12025550123"},
		{"global phone-context names the country", "0612345678;phone-context=+33", "US", "+33612345678"},
		{"domain phone-context keeps the trunk's region", "2025550123;phone-context=example.com", "US", "+12025550123"},
		{"surrounding white space", "  +12025550123 ", "US", "+12025550123"},

		{"national number and no region", "2025550123", "", ""},
		{"national number and unknown region", "2025550123", "ZZ", ""},
		{"lower-case region is no region", "2025550123", "us", ""},
		{"empty", "", "US", ""},
		{"white space", "   ", "US", ""},
		{"plus alone", "+", "US", ""},
		{"letters", "sipp", "US", ""},
		{"user name with digits", "alice2025550123", "US", ""},
		{"vanity letters", "1-800-FLOWERS", "US", ""},
		{"extension", "2025550123x12", "US", ""},
		{"star code", "*67", "US", ""},
		{"hash code", "#31#2025550123", "US", ""},
		{"extension number", "1000", "US", ""},
		{"two digits", "12", "US", ""},
		{"country code 0", "+0123456789", "US", ""},
		{"unassigned country code", "+999123456", "US", ""},
		{"too short for the country", "+1555", "US", ""},
		{"too long for the country", "+1202555012345", "US", ""},
		{"very long digits", strings.Repeat("9", 40), "US", ""},
		{"very long text", "+1" + strings.Repeat(" ", 200) + "2025550123", "US", ""},
		{"NUL inside", "+1202\x005550123", "US", ""},
		{"withheld marker", "anonymous", "US", ""},
		{"Arabic-Indic digits are no ASCII digits", "٢٠٢٥٥٥٠١٢٣", "US", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Normalize(tt.raw, tt.region)
			if got != tt.want || ok != (tt.want != "") {
				t.Fatalf("Normalize(%q, %q) = %q, %v; want %q", tt.raw, tt.region, got, ok, tt.want)
			}
			if ok {
				for _, r := range []string{"", "US", "FR", "GB"} {
					if again, ok := Normalize(got, r); !ok || again != got {
						t.Fatalf("Normalize(%q, %q) = %q, %v: E.164 must re-normalise to itself", got, r, again, ok)
					}
				}
			}
		})
	}
}

// TestDialled: a dialled number matches a line written in E.164 when it is the national form in
// the trunk's region, or the line's digits without "+" (how many carriers deliver DIDs).
func TestDialled(t *testing.T) {
	tests := []struct {
		raw, region string
		want        []string
	}{
		{"2025550100", "US", []string{"+12025550100", "+2025550100"}},
		{"+12025550100", "US", []string{"+12025550100"}},
		{"15550197", "US", []string{"+15550197"}},
		{"15550197", "", []string{"+15550197"}},
		{"0140000000", "FR", []string{"+33140000000"}},
		{"33140000000", "FR", []string{"+33140000000"}},
		{"desk", "US", nil},
		{"", "US", nil},
	}
	for _, tt := range tests {
		got := Dialled(tt.raw, tt.region)
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("Dialled(%q, %q) = %q; want %q", tt.raw, tt.region, got, tt.want)
		}
	}
}

// TestLocation: the location of a caller comes from the E.164 number (CD-5): a French mobile is
// France, a Washington number Washington D.C. — never Cairo, which is what +2025550123 (a US
// national number with "+" put in front) says.
func TestLocation(t *testing.T) {
	tests := []struct{ e164, want string }{
		{"+33612345678", "France"},
		{"+12025550123", "Washington D.C."},
		{"+442079460000", "London"},
		{"+15551234567", ""},
		{"2025550123", ""},
		{"", ""},
		{"garbage", ""},
	}
	for _, tt := range tests {
		if got := Location(tt.e164, "en"); got != tt.want {
			t.Errorf("Location(%q) = %q; want %q", tt.e164, got, tt.want)
		}
	}
}

// TestWithheld: the markers of a withheld caller ID are anonymous (PM-3); a user name is not.
func TestWithheld(t *testing.T) {
	for _, s := range []string{"", " ", "anonymous", "Anonymous", "RESTRICTED", "unknown", "Unavailable", "withheld", "private"} {
		if !Withheld(s) {
			t.Errorf("Withheld(%q) = false", s)
		}
	}
	for _, s := range []string{"desk", "sipp", "+12025550123", "2025550123"} {
		if Withheld(s) {
			t.Errorf("Withheld(%q) = true", s)
		}
	}
}

func TestValidRegion(t *testing.T) {
	for _, r := range []string{"US", "FR", "GB", "DE"} {
		if !ValidRegion(r) {
			t.Errorf("ValidRegion(%q) = false", r)
		}
	}
	for _, r := range []string{"", "ZZ", "001", "us", "USA", "XX"} {
		if ValidRegion(r) {
			t.Errorf("ValidRegion(%q) = true", r)
		}
	}
}

// FuzzNormalize: whatever arrives in a From header or an API body, Normalize never panics and
// returns either nothing or a valid E.164 number that re-normalises to itself in any region.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"2025550123", "0612345678", "0033612345678", "01133612345678", "+442079460000",
		"tel:+1-202-555-0123", "0612345678;phone-context=+33", "+", "00", "sipp", "", "*67", "+0", "١٢٣",
		strings.Repeat("9", 200), "+1 (202) 555-0123", "0612345678;phone-context=+"} {
		for _, r := range []string{"US", "FR", "", "ZZ", "001"} {
			f.Add(s, r)
		}
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		e, ok := Normalize(raw, region)
		if ok != (e != "") {
			t.Fatalf("Normalize(%q, %q) = %q, %v", raw, region, e, ok)
		}
		if !ok {
			return
		}
		if !IsE164(e) {
			t.Fatalf("Normalize(%q, %q) = %q: not E.164", raw, region, e)
		}
		for _, r := range []string{region, "", "US", "FR"} {
			if again, ok := Normalize(e, r); !ok || again != e {
				t.Fatalf("Normalize(%q, %q) = %q, %v: does not re-normalise to itself", e, r, again, ok)
			}
		}
		for _, d := range Dialled(raw, region) {
			if !IsE164(d) {
				t.Fatalf("Dialled(%q, %q) holds %q: not E.164", raw, region, d)
			}
		}
	})
}

// TestParseRemembersWhatItRead: parse's memory answers exactly what libphonenumber read, the
// first time and the second, in every region, and stays bounded.
func TestParseRemembersWhatItRead(t *testing.T) {
	inputs := []string{"+12025550123", "2025550123", "0612345678", "+33612345678", "+3580401234567",
		"12", "+1555", "00441632960000", "+15550197", "+1650100000"}
	for _, region := range []string{"", "ZZ", "US", "FR", "FI", "GB"} {
		for _, s := range inputs {
			wantE, wantOK := readNumber(s, region)
			for round := 0; round < 2; round++ {
				if e, ok := parse(s, region); e != wantE || ok != wantOK {
					t.Errorf("parse(%q, %q) round %d = %q %v, want %q %v", s, region, round, e, ok, wantE, wantOK)
				}
			}
		}
	}
	for i := range parsedMax + 10 {
		parse("+1202555"+strconv.Itoa(1000+i%9000), "US")
	}
	parsed.mu.Lock()
	n := len(parsed.m)
	parsed.mu.Unlock()
	if n > parsedMax {
		t.Errorf("parse remembers %d results, more than %d", n, parsedMax)
	}
}

// FuzzIsE164: the hand-written check answers what the regular expression of E.164's form
// (`^\+[1-9][0-9]{1,14}$`) answers, for any text.
func FuzzIsE164(f *testing.F) {
	e164RE := regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	for _, s := range []string{"", "+", "+1", "+12", "+0123", "+123456789012345", "+1234567890123456", "12025550123",
		"+1202555012a", "+1202555012\n", "++12", "+١٢٣", "+12025550123 ", "+9", "+99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsE164(s), e164RE.MatchString(s); got != want {
			t.Fatalf("IsE164(%q) = %v, the expression says %v", s, got, want)
		}
	})
}

// TestLocationRemembersWhatItFound: Location's memory answers what the geocoding found, the
// first time and the second, and stays bounded.
func TestLocationRemembersWhatItFound(t *testing.T) {
	for _, lang := range []string{"en", "fr", ""} {
		for _, s := range []string{"+33612345678", "+12025550123", "+442079460000", "+15551234567", "+3580401234567"} {
			Normalize(s, "US") // the reading Location reuses
			// The reference: libphonenumber's own reading and geocoding, nothing remembered.
			want := ""
			if n, err := phonenumbers.Parse(s, "ZZ"); err == nil {
				want, _ = phonenumbers.GetGeocodingForNumber(n, lang)
			}
			for round := 0; round < 2; round++ {
				if got := Location(s, lang); got != want {
					t.Errorf("Location(%q, %q) round %d = %q, want %q", s, lang, round, got, want)
				}
			}
		}
	}
	for i := range parsedMax + 10 {
		Location("+1202555"+strconv.Itoa(1000+i%9000), "en")
	}
	located.mu.Lock()
	n := len(located.m)
	located.mu.Unlock()
	if n > parsedMax {
		t.Errorf("Location remembers %d results, more than %d", n, parsedMax)
	}
}

// TestReadNumberMatchesTwoReadings: readNumber skips the second reading of a number given in its
// own E.164 form in "ZZ" (it would read the same text in the same region again); it answers what
// reading twice answers, for every input and region.
func TestReadNumberMatchesTwoReadings(t *testing.T) {
	twice := func(s, region string) (string, bool) {
		n, err := phonenumbers.Parse(s, region)
		if err != nil || n.GetExtension() != "" || !phonenumbers.IsPossibleNumber(n) {
			return "", false
		}
		e := phonenumbers.Format(n, phonenumbers.E164)
		if !IsE164(e) {
			return "", false
		}
		if again, err := phonenumbers.Parse(e, "ZZ"); err != nil || phonenumbers.Format(again, phonenumbers.E164) != e {
			return "", false
		}
		return e, true
	}
	for _, region := range []string{"", "ZZ", "US", "FR", "FI", "IT"} {
		for _, s := range []string{"+12025550123", "+3580401234567", "+358401234567", "+390612345678", "+33612345678",
			"+1555", "+15551234567", "2025550123", "0612345678", "+44 20 7946 0000", "+4420794600001234"} {
			we, wok := twice(s, region)
			if e, ok := readNumber(s, region); e != we || ok != wok {
				t.Errorf("readNumber(%q, %q) = %q %v; reading twice gives %q %v", s, region, e, ok, we, wok)
			}
		}
	}
}
