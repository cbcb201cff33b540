// Command switchboard is the Switchboard voice gateway.
//
//	switchboard serve --config FILE         run the gateway
//	switchboard migrate --config FILE       apply database migrations and exit
//	switchboard check-config FILE           validate a configuration file
//	switchboard token --config FILE --email E   create an API token
//	switchboard dead-letters --config FILE  list, show, re-inject or drop refused call events
//	switchboard version                     print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=..."; "dev" otherwise.
var version = "dev"

const usage = `Switchboard — a voice gateway where every call becomes a ticket.

Usage:
  switchboard serve --config FILE        run the gateway (SIP, RTP, HTTP API, softphone)
  switchboard migrate --config FILE      apply pending database migrations and exit
  switchboard check-config FILE          validate a configuration file: "ok", or every problem
  switchboard token --config FILE --email EMAIL
                                         create an API token for an agent or admin (printed once)
  switchboard dead-letters --config FILE [--show ID | --reinject ID | --drop ID]
                                         the call events the database refused: list, show, put back, drop
  switchboard version                    print the version

Run "switchboard COMMAND --help" for a command's flags.
DATABASE_URL, when set, overrides the configuration's database.url.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(rest, stdout, stderr)
	case "version":
		return cmdVersion(rest, stdout, stderr)
	case "token":
		return cmdToken(ctx, rest, stdout, stderr)
	case "dead-letters":
		return cmdDeadLetters(ctx, rest, os.Stdin, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// newFlagSet returns a flag set whose --help prints the command's usage to stdout.
func newFlagSet(name, synopsis string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "Usage: switchboard %s\n\n", synopsis)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	return fs
}

// parseFlags parses args and returns (exit code, done): done means the command should return.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "version", stdout, stderr)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	fmt.Fprintf(stdout, "switchboard %s\n", version)
	return 0
}
