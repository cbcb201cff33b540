package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

const deadLettersUsage = `dead-letters --config FILE [--all]
dead-letters --config FILE --show ID
dead-letters --config FILE --reinject ID [--event FILE]
dead-letters --config FILE --drop ID

A dead letter is a call event PostgreSQL refused for what it held (a NUL character in a name, a
value out of range): the gateway set it aside in call_events_dead and went on with the other
events; the call's record and ticket miss it until it is put back.

Without an action, lists the pending dead letters (--all: every one, with what became of it).
--show prints one whole, its event as the gateway had it. --reinject puts it back into the
event log, in one transaction with marking it re-injected: the rules engine then applies it
like any event (late, if its call went on meanwhile). The event is stored with control
characters removed from its strings and invalid UTF-8 replaced; --event FILE ('-': standard
input) stores the event in FILE instead, rewritten by hand, which must be the same event (its
id, call_id and seq). --drop marks it dropped: the call's record goes without it.`

// cmdDeadLetters lists, shows, re-injects and drops the event log's dead letters.
func cmdDeadLetters(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("dead-letters", deadLettersUsage, stdout, stderr)
	path := fs.String("config", "", "configuration file (required)")
	all := fs.Bool("all", false, "list every dead letter, not only the pending ones")
	show := fs.String("show", "", "print the dead letter with this id")
	reinject := fs.String("reinject", "", "put the dead letter with this id back into the event log")
	event := fs.String("event", "", "with --reinject: a file holding the event to store instead ('-': standard input)")
	drop := fs.String("drop", "", "mark the dead letter with this id dropped")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "switchboard dead-letters: "+format+"\n", a...)
		return code
	}
	if *path == "" {
		return fail(2, "--config is required")
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q (an id goes after --show, --reinject or --drop)", fs.Arg(0))
	}
	actions := 0
	for _, a := range []string{*show, *reinject, *drop} {
		if a != "" {
			actions++
		}
	}
	if actions > 1 || (actions == 1 && *all) {
		return fail(2, "--all, --show, --reinject and --drop do not go together")
	}
	if *event != "" && *reinject == "" {
		return fail(2, "--event goes with --reinject")
	}
	id := func(flag, v string) (int64, bool) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			fail(2, "--%s takes a dead letter's id (a positive number from the list), got %q", flag, v)
			return 0, false
		}
		return n, true
	}
	var body []byte
	if *event != "" {
		var err error
		if *event == "-" {
			body, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		} else {
			body, err = os.ReadFile(*event)
		}
		if err != nil {
			return fail(1, "--event: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, pool, err := openConfigDatabase(ctx, *path)
	if err != nil {
		return fail(1, "%v", err)
	}
	defer pool.Close()
	switch {
	case *show != "":
		n, ok := id("show", *show)
		if !ok {
			return 2
		}
		d, err := eventlog.DeadLetterByID(ctx, pool, n)
		if err != nil {
			return fail(1, "%v", err)
		}
		printDeadLetter(stdout, d)
	case *reinject != "":
		n, ok := id("reinject", *reinject)
		if !ok {
			return 2
		}
		ev, err := eventlog.Reinject(ctx, pool, n, body)
		if err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(stdout, "re-injected dead letter %d: event %s, %s of call %s (seq %d)\n", n, ev.ID, ev.Type, ev.CallID, ev.Seq)
	case *drop != "":
		n, ok := id("drop", *drop)
		if !ok {
			return 2
		}
		if err := eventlog.Drop(ctx, pool, n); err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(stdout, "dropped dead letter %d\n", n)
	default:
		ds, err := eventlog.DeadLetters(ctx, pool, *all, 10000)
		if err != nil {
			return fail(1, "%v", err)
		}
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tDEAD AT\tNODE\tSTAGE\tSQLSTATE\tCALL\tSEQ\tTYPE\tSTATE\tERROR")
		for _, d := range ds {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.DeadAt.UTC().Format(time.RFC3339), oneLine(d.Node), d.Stage,
				d.SQLState, oneLine(d.CallID), d.Seq, oneLine(d.Type), deadState(d), oneLine(d.Error))
		}
		_ = tw.Flush()
		if len(ds) == 0 && !*all {
			fmt.Fprintln(stdout, "no pending dead letters")
		}
	}
	return 0
}

// deadState is what became of d.
func deadState(d eventlog.DeadLetter) string {
	switch {
	case d.ReinjectedAt != nil:
		return "re-injected " + d.ReinjectedAt.UTC().Format(time.RFC3339)
	case d.DroppedAt != nil:
		return "dropped " + d.DroppedAt.UTC().Format(time.RFC3339)
	}
	return "pending"
}

func printDeadLetter(w io.Writer, d eventlog.DeadLetter) {
	fmt.Fprintf(w, "dead letter %d (%s)\n", d.ID, deadState(d))
	fmt.Fprintf(w, "  event     %s, %s of call %s (seq %d)\n", oneLine(d.EventID), oneLine(d.Type), oneLine(d.CallID), d.Seq)
	fmt.Fprintf(w, "  refused   %s by node %s at stage %s: %s (SQLSTATE %s)\n", d.DeadAt.UTC().Format(time.RFC3339), oneLine(d.Node), d.Stage, oneLine(d.Error), d.SQLState)
	// The event as the gateway had it; its JSON escapes (\u0000) are shown as written. Bytes
	// that are not text are shown quoted, escaped.
	if utf8.Valid(d.Raw) {
		fmt.Fprintf(w, "  event as set aside:\n%s\n", oneLine(string(d.Raw)))
	} else {
		fmt.Fprintf(w, "  event as set aside (not UTF-8, quoted):\n%q\n", d.Raw)
	}
	if clean, err := eventlog.CleanEventJSON(d.Raw); err == nil && string(clean) != string(d.Raw) {
		fmt.Fprintf(w, "  --reinject would store it cleaned:\n%s\n", clean)
	}
}
