#!/usr/bin/env bash
# toolchain.sh — sourced by the scripts under scripts/ (and so by `make run|test|bench` and
# .ci/run): build with the Go toolchain that go.mod's `toolchain` line names (go1.26.10 or later:
# the November standard-library fixes) even where `go env GOTOOLCHAIN` says local, as Go's own
# release archives and Debian's golang packages set it. With GOTOOLCHAIN=auto the go command
# uses the installed Go when it is at least that version, and otherwise fetches that toolchain
# once from the module proxy (GOPROXY) into the module cache. An explicit GOTOOLCHAIN other than
# local (e.g. go1.26.11, or path on an offline machine that installs Go itself) is respected.
case "${GOTOOLCHAIN:-local}" in
  local) export GOTOOLCHAIN=auto ;;
esac
