package config

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
)

// collectDoc is a valid document with a collect step; cases append to its ivr.account node.
const collectDoc = base + `trunks: [{name: c, inbound: {allow: [127.0.0.0/8]}}]
lines: [{number: "+15550100", target: "ivr:account"}]
queues: {support: {overflow: hangup}}
ivr:
  main: {options: {"1": "queue:support"}, no_input: "queue:support"}
  account:
`

// TestRule_CF4_CollectStepDecodesIntoTheIVR: a collect step's keys decode into ivr.Collect,
// omitted ones taking their defaults (terminator #, timeouts 3 s and 15 s, one retry,
// continue on no input and invalid input), the pattern anchored to the whole entry.
func TestRule_CF4_CollectStepDecodesIntoTheIVR(t *testing.T) {
	c, err := parse([]byte(collectDoc+`    prompt: enter-account
    collect:
      variable: account
      min_digits: 4
      max_digits: 10
      pattern: "[0-9]{4}|[0-9]{6}"
      next: "queue:support"
      invalid: "ivr:main"
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.IVR["account"].IVR()
	if err != nil {
		t.Fatal(err)
	}
	col := m.Collect
	if m.Prompt != "enter-account" || col == nil {
		t.Fatalf("menu %+v, want the prompt and a collect step", m)
	}
	want := ivr.Collect{Variable: "account", MinDigits: 4, MaxDigits: 10, Terminator: '#',
		DigitTimeout: 3 * time.Second, Timeout: 15 * time.Second, Retries: 1,
		Next: ivr.QueueTarget("support"), Invalid: ivr.MenuTarget("main")}
	got := *col
	got.Pattern = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("collect\n got %+v\nwant %+v", got, want)
	}
	for entry, match := range map[string]bool{"1234": true, "123456": true, "12345": false, "91234": false} {
		if col.Pattern.MatchString(entry) != match {
			t.Errorf("pattern matches %q: %v, want %v (the whole entry)", entry, !match, match)
		}
	}
	// Omitted prompt: none (not the node's name); no terminator when none.
	c, err = parse([]byte(collectDoc+"    collect: {variable: order, terminator: none, next: hangup}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ = c.IVR["account"].IVR(); m.Prompt != "" || m.Collect.Terminator != 0 || m.Collect.MinDigits != 1 ||
		m.Collect.MaxDigits != ivr.MaxCollectDigits || m.Collect.NoInput.Kind != ivr.TargetNone {
		t.Errorf("defaults: menu %+v collect %+v", m, *m.Collect)
	}
}

// TestRule_CF4_CollectStepConfigErrors: every problem of a collect step is reported at its
// YAML path and line, all at once.
func TestRule_CF4_CollectStepConfigErrors(t *testing.T) {
	// collectDoc's account node is at line 7; its keys start at line 8.
	for _, tc := range []struct {
		name string
		node string
		want []Problem
	}{
		{"variable required, next required", "    collect: {min_digits: 2}\n", []Problem{
			{"ivr.account.collect.variable", "is required: the name the digits are stored under (the data key custom_data_fields maps), e.g. account", 8},
			{"ivr.account.collect.next", "is required; use " + targetForms, 8}}},
		{"bad variable, menu_path", "    collect: {variable: \"acc ount\", next: hangup}\n", []Problem{
			{"ivr.account.collect.variable", `"acc ount" is not a variable name: 1 to 64 characters of letters, digits, '_', '-' and '.'`, 8}}},
		{"menu_path is taken", "    collect: {variable: menu_path, next: hangup}\n", []Problem{
			{"ivr.account.collect.variable", `"menu_path" is the key of the IVR menu path; name the variable otherwise`, 8}}},
		{"digit bounds", "    collect:\n      variable: a\n      next: hangup\n      min_digits: 0\n      max_digits: 40\n", []Problem{
			{"ivr.account.collect.min_digits", "must be from 1 to 32, got 0", 11},
			{"ivr.account.collect.max_digits", "must be from 1 to 32, got 40", 12}}},
		{"min above max", "    collect:\n      variable: a\n      next: hangup\n      min_digits: 8\n      max_digits: 4\n", []Problem{
			{"ivr.account.collect.min_digits", "is 8, more than max_digits (4)", 11}}},
		{"terminator, timeouts, retries", "    collect:\n      variable: a\n      next: hangup\n      terminator: \"5\"\n      digit_timeout: 0s\n      timeout: 10m\n      retries: 11\n", []Problem{
			{"ivr.account.collect.terminator", `"5" is not a terminator key; use "#", "*" or none (quote # and *)`, 11},
			{"ivr.account.collect.digit_timeout", "must be from 1s to 30s, got 0s", 12},
			{"ivr.account.collect.timeout", "must be from 1s to 2m0s, got 10m0s", 13},
			{"ivr.account.collect.retries", "must be from 0 to 10, got 11", 14}}},
		{"pattern", "    collect: {variable: a, next: hangup, pattern: \"[0-9\"}\n", []Problem{
			{"ivr.account.collect.pattern", "\"[0-9\" is not a regular expression (RE2 syntax): error parsing regexp: missing closing ]: `[0-9)$`", 8}}},
		{"branches name what exists", "    collect: {variable: a, next: \"queue:nope\", no_input: \"ivr:nope\", invalid: \"ivr:main\"}\n", []Problem{
			{"ivr.account.collect.next", `"queue:nope" names no queue; queues: support`, 8},
			{"ivr.account.collect.no_input", `"ivr:nope" names no IVR menu; menus under ivr: account, main`, 8}}},
		{"a branch is continue or a target", "    collect: {variable: a, next: hangup, no_input: carry_on}\n", []Problem{
			{"ivr.account.collect.no_input", `"carry_on" is not a target; use ` + targetForms + `; or continue (on to the step's next target)`, 8}}},
		{"menu keys refused on a collect step", "    options: {\"1\": hangup}\n    timeout: 5s\n    retries: 2\n    no_input: hangup\n    collect: {variable: a, next: hangup}\n", []Problem{
			{"ivr.account.options", "a collect step takes no options: it stores the digits under collect.variable and goes on to collect.next", 8},
			{"ivr.account.timeout", "a collect step has its own (under collect): use collect.timeout and collect.digit_timeout", 9},
			{"ivr.account.retries", "a collect step has its own (under collect): use collect.retries", 10},
			{"ivr.account.no_input", "a collect step has its own (under collect): use collect.no_input", 11}}},
		{"unknown key lists the allowed ones", "    collect: {variable: a, next: hangup, digits: 4}\n", []Problem{
			{"ivr.account.collect.digits", `unknown key "digits"; allowed here: variable, min_digits, max_digits, terminator, digit_timeout, timeout, retries, pattern, next, no_input, invalid`, 8}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse([]byte(collectDoc+tc.node), noEnv)
			var got Problems
			if !errors.As(err, &got) {
				t.Fatalf("parse: got error %v (%T), want Problems", err, err)
			}
			if !reflect.DeepEqual([]Problem(got), tc.want) {
				t.Errorf("problems:\n got: %s\nwant: %s", fmtProblems(got), fmtProblems(tc.want))
			}
		})
	}
}
