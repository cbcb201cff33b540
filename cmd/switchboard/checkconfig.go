package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/switchboard-voice/switchboard/config"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check-config", "check-config FILE\n\nPrints \"ok\" and exits 0 for a valid file, then any warnings on stderr (a development\npassword, a trunk open to the whole Internet, an RTP range too small for sip.max_calls),\none a line starting \"warning: \" with its YAML path; otherwise prints every problem, one a\nline with its YAML path, and exits 1.", stdout, stderr)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: switchboard check-config FILE")
		return 2
	}
	cfg, err := config.Load(fs.Arg(0))
	if err != nil {
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
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning: "+w.String())
	}
	return 0
}
