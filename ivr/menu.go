package ivr

import (
	"context"
	"strings"
)

// runMenu plays menu name and returns where the caller's choice (or its absence) leads. It
// returns an error only when the call ended.
func (c *Call) runMenu(ctx context.Context, name string) (Target, error) {
	m, ok := c.e.opts.Menus[name]
	if !ok {
		c.e.log.Error("ivr: unknown menu", "menu", name, "call_id", c.ID())
		return HangupTarget(), nil
	}
	if m.Language != "" {
		c.setLang(m.Language)
	}
	c.addPath(name)
	if m.Collect != nil {
		return c.runCollect(ctx, name, m)
	}
	for try := 0; ; try++ {
		input, err := c.collect(ctx, m)
		if err != nil {
			return Target{}, err
		}
		if input == "" {
			if try < m.Retries {
				continue
			}
			c.addPath("timeout")
			return m.NoInput, nil
		}
		if t, ok := m.Options[input]; ok {
			c.addPath(input)
			return t, nil
		}
		if try < m.Retries {
			if _, ok := c.e.opts.Prompts.Get(c.Language(), PromptInvalid); ok {
				if err := c.playAll(ctx, PromptInvalid); err != nil {
					return Target{}, err
				}
			}
			continue
		}
		c.addPath("invalid")
		return m.Invalid, nil
	}
}

// collect plays the menu's prompt (a digit interrupts it) and gathers the caller's choice:
// one key when every option is one key; otherwise keys until '#', until no longer option
// starts with what was typed, or until Timeout passes without a key. "" means no input ('#'
// alone counts as none).
func (c *Call) collect(ctx context.Context, m Menu) (string, error) {
	multi := false
	for k := range m.Options {
		if len(k) > 1 {
			multi = true
		}
	}
	d, err := c.playBargeIn(ctx, m.Prompt)
	if err != nil {
		return "", err
	}
	var typed strings.Builder
	for range 64 { // bounded: no option is that long
		if d == 0 {
			if d, err = c.waitDigit(ctx, m.Timeout); err != nil {
				return "", err
			}
			if d == 0 {
				return typed.String(), nil
			}
		}
		if d == '#' {
			if _, isKey := m.Options["#"]; !isKey || typed.Len() > 0 {
				return typed.String(), nil
			}
		}
		typed.WriteRune(d)
		d = 0
		if !multi {
			return typed.String(), nil
		}
		s := typed.String()
		longer := false
		for k := range m.Options {
			if k != s && strings.HasPrefix(k, s) {
				longer = true
			}
		}
		if !longer { // a complete choice, or nothing can match any more
			return s, nil
		}
	}
	return typed.String(), nil
}
