package config

import (
	"fmt"
	"regexp"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Prompts says where recorded prompts live.
type Prompts struct {
	// Dir holds prompts as DIR/LANGUAGE/NAME.wav (8 kHz mono); empty means the built-in
	// prompts only.
	Dir string `yaml:"dir"`
	// DefaultLanguage is the language of calls whose line sets none (default "en").
	DefaultLanguage string `yaml:"default_language"`
}

// Menu is one IVR menu: a prompt, then a digit chooses where the call goes.
type Menu struct {
	// Prompt names the prompt played (default: the menu's name).
	Prompt string `yaml:"prompt"`
	// Language, when set, becomes the call's language on entering the menu (so a first menu
	// can offer "1 for English, 2 pour le français" by sending each digit to a menu with its
	// language); the prompt is played in the call's language.
	Language string `yaml:"language"`
	// Timeout is how long the menu waits for a digit after the prompt (default 5s).
	Timeout Duration `yaml:"timeout"`
	// Retries is how many times the menu is played again after no digit or an invalid one,
	// before NoInput or Invalid is followed (default 1).
	Retries int `yaml:"retries"`
	// Options maps one DTMF key (0-9, *, #) to a target.
	Options map[string]Target `yaml:"options"`
	// NoInput is where the call goes when no digit came after the retries.
	NoInput Target `yaml:"no_input"`
	// Invalid is where the call goes after invalid digits and the retries (default NoInput).
	Invalid Target `yaml:"invalid"`
	// Collect, when set, makes the node a step that collects the caller's digits into a
	// variable instead of a menu: Prompt (none by default) and Language serve it; Timeout,
	// Retries, Options, NoInput and Invalid are refused (Collect has its own).
	Collect *Collect `yaml:"collect"`
}

// Collect is an IVR step that collects digits into a named variable (an account or order
// number) that travels with the call as its custom data, for custom_data_fields to map to a
// ticket field (CF-4). It decodes into ivr.Collect (Menu.IVR).
type Collect struct {
	// Variable is the data key the digits are stored under: letters, digits, '_', '-' and '.',
	// at most 64 (required; not menu_path, the key of the IVR menu path).
	Variable string `yaml:"variable"`
	// MinDigits is the fewest keys a valid entry has (default 1).
	MinDigits int `yaml:"min_digits"`
	// MaxDigits ends the entry at that many keys (default and at most ivr.MaxCollectDigits).
	MaxDigits int `yaml:"max_digits"`
	// Terminator is the key that ends an entry: "#" (default), "*" or none.
	Terminator string `yaml:"terminator"`
	// DigitTimeout is the longest pause between keys once the caller started (default 3s).
	DigitTimeout Duration `yaml:"digit_timeout"`
	// Timeout is the longest the whole entry may take, from the end of the prompt (default 15s).
	Timeout Duration `yaml:"timeout"`
	// Retries is how many times the prompt is played again after no input or an invalid entry
	// (default 1).
	Retries int `yaml:"retries"`
	// Pattern is a regular expression (RE2 syntax) the whole entry must match to be valid.
	Pattern string `yaml:"pattern"`
	// Next is where the call goes after a valid entry (required).
	Next Target `yaml:"next"`
	// NoInput is where the call goes when no entry came after the retries: a target, or
	// continue (default): on to Next without the variable.
	NoInput Branch `yaml:"no_input"`
	// Invalid is where the call goes after invalid entries and the retries (default NoInput).
	Invalid Branch `yaml:"invalid"`

	pattern *regexp.Regexp // Pattern anchored and compiled by Validate
}

// Values of Collect.Terminator.
const (
	TerminatorNone = "none"
)

// anchoredPattern compiles p to match a whole entry.
func anchoredPattern(p string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + p + `)$`)
}

// IVR returns the menu as the IVR runs it. The configuration must be valid (Parse).
func (m *Menu) IVR() (ivr.Menu, error) {
	im := ivr.Menu{Prompt: m.Prompt, Language: m.Language, Timeout: m.Timeout.D(), Retries: m.Retries,
		NoInput: m.NoInput.Target, Invalid: m.Invalid.Target}
	if len(m.Options) > 0 {
		im.Options = make(map[string]ivr.Target, len(m.Options))
		for k, v := range m.Options {
			im.Options[k] = v.Target
		}
	}
	col := m.Collect
	if col == nil {
		return im, nil
	}
	re := col.pattern
	if re == nil && col.Pattern != "" {
		var err error
		if re, err = anchoredPattern(col.Pattern); err != nil {
			return ivr.Menu{}, fmt.Errorf("config: collect pattern %q: %w", col.Pattern, err)
		}
	}
	var term rune
	if col.Terminator != TerminatorNone && col.Terminator != "" {
		term = rune(col.Terminator[0])
	}
	im.Collect = &ivr.Collect{
		Variable: col.Variable, MinDigits: col.MinDigits, MaxDigits: col.MaxDigits, Terminator: term,
		DigitTimeout: col.DigitTimeout.D(), Timeout: col.Timeout.D(), Retries: col.Retries, Pattern: re,
		Next: col.Next.Target, NoInput: col.NoInput.Target.Target, Invalid: col.Invalid.Target.Target,
	}
	return im, nil
}

// Queue is an ACD queue: calls wait with music and are offered to the longest-idle available
// agent of the queue.
type Queue struct {
	// RingTimeout is how long each agent is offered the call before the next (default 15s).
	RingTimeout Duration `yaml:"ring_timeout"`
	// MaxWait is the longest a call waits before Overflow (default 120s).
	MaxWait Duration `yaml:"max_wait"`
	// Overflow is where a call goes after MaxWait (default voicemail).
	Overflow Target `yaml:"overflow"`
	// Music is a WAV file played while waiting (default: the built-in music).
	Music string `yaml:"music"`
	// WrapUp is how long an agent stays in wrap_up after a call before being offered the next
	// (default 0s).
	WrapUp Duration `yaml:"wrap_up"`
	// MaxMissedOffers sets an agent away after this many offers in a row went unanswered
	// (default 3; 0 never).
	MaxMissedOffers int `yaml:"max_missed_offers"`
	// AnnouncePosition tells a waiting caller their place in the queue (default false).
	AnnouncePosition bool `yaml:"announce_position"`
	// OutboundLine is the number of the line the queue's agents call from when they pick none
	// (OB-7): one of lines[].number whose trunk takes outbound calls. An agent in several
	// queues gets the first of their queues that names one. Empty: the trunk's caller_id.
	OutboundLine string `yaml:"outbound_line"`
	// ServiceLevelSeconds is the queue's service-level threshold: the reports count a call
	// answered within it as answered in service level (default 20; 1 to 3600).
	ServiceLevelSeconds int `yaml:"service_level_seconds"`
	// Callback lets a waiting caller press a key to be called back instead of waiting,
	// keeping their place (default off).
	Callback QueueCallback `yaml:"callback"`
}

// QueueCallback configures a queue's callbacks (docs/ivr.md, "Callbacks").
type QueueCallback struct {
	// Key is the key (0-9, * or #) that asks for a callback; empty: off. The built-in
	// callback_offer prompt says "press 1": another key needs its own prompt.
	Key string `yaml:"key"`
	// Attempts is how many times the caller is dialled before the callback is dropped
	// (default 3; 1 to 10).
	Attempts int `yaml:"attempts"`
	// RetryDelay is the pause after an unanswered attempt (default 60s).
	RetryDelay Duration `yaml:"retry_delay"`
}

// Values of Recordings.Start.
const (
	RecordFromAnswer    = "answer"
	RecordFromCallStart = "call_start"
)

// Recordings configures call recording (CD-6, TU-5) and where audio files are kept.
type Recordings struct {
	// Enabled records every call (default false).
	Enabled bool `yaml:"enabled"`
	// Dir holds recordings and voicemail messages; required when recording is enabled or any
	// target is voicemail.
	Dir string `yaml:"dir"`
	// Start is answer (from when an agent or far end answers; default) or call_start (from when
	// the gateway answers the carrier, IVR and queue included).
	Start string `yaml:"start"`
	// RetentionDays deletes recordings older than this many days (default 0: keep them).
	RetentionDays int `yaml:"retention_days"`
}

// Voicemail configures voicemail messages (VM rules).
type Voicemail struct {
	// Prompt names the greeting played before the beep (default "voicemail").
	Prompt string `yaml:"prompt"`
	// MaxLength ends a message after this long (default 120s).
	MaxLength Duration `yaml:"max_length"`
	// MinLength: a shorter message counts as none, the call as abandoned in voicemail (TC-5)
	// (default 1s; 0: any message counts).
	MinLength Duration `yaml:"min_length"`
	// Beep plays a tone before recording (default true).
	Beep bool `yaml:"beep"`
}
