package ivr

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Defaults and bounds of Collect.
const (
	// DefaultCollectDigitTimeout is the longest pause between two keys of an entry.
	DefaultCollectDigitTimeout = 3 * time.Second
	// DefaultCollectTimeout is the longest a whole entry may take, from the end of the prompt.
	DefaultCollectTimeout = 15 * time.Second
	// MaxCollectDigits bounds every entry: a call's data value is short and clean before it
	// leaves the IVR (callevent.MaxDataValue is far above it).
	MaxCollectDigits = 32
)

// Collect makes a Menu a step that collects the caller's digits into a named variable (an
// account or order number): the variables travel with the call as call.ivr_selected's data,
// which the ticketing core maps to ticket fields (CF-4, custom_data_fields).
//
// The menu's Prompt is played (none when it is empty; a key stops it), then keys are read
// until the Terminator, until MaxDigits keys, until DigitTimeout passes after a key, or until
// Timeout passes since the prompt ended. Only 0-9, '*' and '#' are kept (A-D are dropped), so a
// value holds nothing else and is at most MaxCollectDigits long. No key (or the terminator
// alone) is no input; fewer than MinDigits keys, or an entry Pattern does not match, is invalid.
// Either replays the prompt Retries times (the "invalid" prompt first after an invalid entry,
// when there is one), then follows NoInput or Invalid. A valid entry is stored under Variable
// and the call goes to Next.
type Collect struct {
	// Variable is the data key the digits are stored under (callevent.ValidDataKey).
	Variable string
	// MinDigits is the fewest keys a valid entry has (0: 1).
	MinDigits int
	// MaxDigits ends the entry at that many keys (0 or more than MaxCollectDigits:
	// MaxCollectDigits).
	MaxDigits int
	// Terminator is the key that ends an entry ('#' or '*'; 0: none). It is not stored.
	Terminator rune
	// DigitTimeout is the longest pause between keys once the caller started (0:
	// DefaultCollectDigitTimeout); the entry ends there.
	DigitTimeout time.Duration
	// Timeout is the longest the whole entry may take, from the end of the prompt (0:
	// DefaultCollectTimeout); with no key by then there is no input.
	Timeout time.Duration
	// Retries is how many times the prompt is played again after no input or an invalid entry
	// (0: none).
	Retries int
	// Pattern, when set, must match an entry for it to be valid. It is matched as given: anchor
	// it (^…$) to judge the whole entry, as the configuration does.
	Pattern *regexp.Regexp
	// Next is where the call goes after a valid entry (required).
	Next Target
	// NoInput is where the call goes when no entry came after the retries; unset: on to Next
	// without the variable ("continue").
	NoInput Target
	// Invalid is where the call goes after invalid entries and the retries; unset: on to Next
	// without the variable.
	Invalid Target
}

// withDefaults returns col with its zero values replaced by their defaults.
func (col Collect) withDefaults() Collect {
	if col.MinDigits <= 0 {
		col.MinDigits = 1
	}
	if col.MaxDigits <= 0 || col.MaxDigits > MaxCollectDigits {
		col.MaxDigits = MaxCollectDigits
	}
	if col.DigitTimeout <= 0 {
		col.DigitTimeout = DefaultCollectDigitTimeout
	}
	if col.Timeout <= 0 {
		col.Timeout = DefaultCollectTimeout
	}
	col.Retries = max(col.Retries, 0)
	return col
}

// check reports what makes col unusable.
func (col Collect) check() error {
	if !callevent.ValidDataKey(col.Variable) {
		return fmt.Errorf("collect variable %q is not a data key: 1 to %d characters of letters, digits, '_', '-' and '.'", col.Variable, callevent.MaxDataKey)
	}
	if col.MinDigits > col.MaxDigits {
		return fmt.Errorf("collect min digits %d above max digits %d", col.MinDigits, col.MaxDigits)
	}
	switch col.Terminator {
	case 0, '#', '*':
	default:
		return fmt.Errorf("collect terminator %q is not '#' or '*'", col.Terminator)
	}
	if col.Next.Kind == TargetNone {
		return fmt.Errorf("collect step has no next target")
	}
	return nil
}

// collectKey reports whether a key may be part of an entry: 0-9, '*', '#' (RFC 4733 §3.2
// events 0-11). A-D are dropped: no account or order number holds them.
func collectKey(r rune) bool { return '0' <= r && r <= '9' || r == '*' || r == '#' }

// runCollect runs the collect step of menu name and returns where the call goes next. It
// returns an error only when the call ended.
func (c *Call) runCollect(ctx context.Context, name string, m Menu) (Target, error) {
	col := *m.Collect
	for try := 0; ; try++ {
		entry, err := c.collectEntry(ctx, m.Prompt, col)
		if err != nil {
			return Target{}, err
		}
		valid := len(entry) >= col.MinDigits && (col.Pattern == nil || col.Pattern.MatchString(entry))
		if entry != "" && valid {
			c.setVar(col.Variable, entry)
			return col.Next, nil
		}
		if try < col.Retries {
			if entry != "" {
				if _, ok := c.e.opts.Prompts.Get(c.Language(), PromptInvalid); ok {
					if err := c.playAll(ctx, PromptInvalid); err != nil {
						return Target{}, err
					}
				}
			}
			continue
		}
		next, branch, mark := col.NoInput, "no_input", "timeout"
		if entry != "" {
			next, branch, mark = col.Invalid, "invalid", "invalid"
		}
		c.addPath(mark)
		c.e.log.Info("ivr: collect step left without a value", "menu", name, "variable", col.Variable,
			"branch", branch, "digits", len(entry), "call_id", c.ID())
		if next.Kind == TargetNone {
			return col.Next, nil // continue without the variable
		}
		return next, nil
	}
}

// collectEntry plays prompt (none when empty; a key stops it) and reads one entry: the keys
// typed until the terminator, MaxDigits keys, DigitTimeout after a key or Timeout after the
// prompt. "" means no input. The entry holds only collectKey keys, at most MaxDigits of them.
// The loop ends: every turn takes a key or a timer, and Timeout bounds the whole entry.
func (c *Call) collectEntry(ctx context.Context, prompt string, col Collect) (string, error) {
	var d rune
	if prompt != "" {
		var err error
		if d, err = c.playBargeIn(ctx, prompt); err != nil {
			return "", err
		}
	}
	overall := c.e.opts.Clock.NewTimer(col.Timeout)
	defer overall.Stop()
	typed := make([]byte, 0, col.MaxDigits)
	for {
		if d == 0 {
			var gap Timer
			var gapC <-chan time.Time
			if len(typed) > 0 {
				gap = c.e.opts.Clock.NewTimer(col.DigitTimeout)
				gapC = gap.C()
			}
			var ended bool
			select {
			case d = <-c.digits:
			case <-gapC:
				ended = true
			case <-overall.C():
				ended = true
			case <-ctx.Done():
				if gap != nil {
					gap.Stop()
				}
				return "", ctx.Err()
			}
			if gap != nil {
				gap.Stop()
			}
			if ended {
				return string(typed), nil
			}
		}
		switch {
		case col.Terminator != 0 && d == col.Terminator:
			return string(typed), nil
		case collectKey(d):
			typed = append(typed, byte(d))
			if len(typed) >= col.MaxDigits {
				return string(typed), nil
			}
		}
		d = 0
	}
}

// setVar stores a collected variable; the call's next call.ivr_selected carries it.
func (c *Call) setVar(name, value string) {
	c.mu.Lock()
	if c.vars == nil {
		c.vars = map[string]string{}
	}
	c.vars[name] = value
	c.varsSent = false
	c.mu.Unlock()
}

// Variables returns a copy of the variables collected so far (nil when none).
func (c *Call) Variables() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.vars)
}
