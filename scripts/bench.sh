#!/usr/bin/env bash
# bench.sh — `make bench`. The load benchmarks need the B2BUA (issue 5) and are not built yet.
echo "make bench: the SIPp load benchmarks are not built yet (they need the SIP B2BUA); see BENCHMARKS.md" >&2
exit 1
