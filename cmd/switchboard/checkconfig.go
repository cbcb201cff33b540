package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/switchboard-voice/switchboard/config"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check-config", "check-config FILE\n\nPrints \"ok\" and exits 0 for a valid file; otherwise prints every problem,\none a line with its YAML path, and exits 1.", stdout, stderr)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: switchboard check-config FILE")
		return 2
	}
	if _, err := config.Load(fs.Arg(0)); err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				fmt.Fprintln(stdout, p.String())
			}
		} else {
			fmt.Fprintln(stdout, err)
		}
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}
