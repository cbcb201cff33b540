package main

import (
	"debug/buildinfo"
	"os"
	"runtime"
	"strings"
	"testing"

	goversion "go/version"
)

// Supply chain (issue 14, item 8): the tests and the gateway binary they run are built with at
// least the toolchain go.mod's `toolchain` line names (the November standard-library fixes).
// It is enforced where make test (scripts/test.sh) sets SWITCHBOARD_REQUIRE_TOOLCHAIN: a plain
// `go test` with GOTOOLCHAIN=local builds with whatever Go is installed, and says so.
func TestBuiltWithTheToolchainOfGoMod(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "toolchain" {
			want = f[1]
		}
	}
	if !goversion.IsValid(want) || goversion.Compare(want, "go1.26.10") < 0 {
		t.Fatalf("go.mod's toolchain line is %q, want go1.26.10 or later", want)
	}
	test, _, _ := strings.Cut(runtime.Version(), " ")
	if goversion.Compare(test, want) < 0 {
		if os.Getenv("SWITCHBOARD_REQUIRE_TOOLCHAIN") == "" {
			t.Skipf("built with %s, older than go.mod's %s: run through make test (or GOTOOLCHAIN=auto)", test, want)
		}
		t.Fatalf("the tests are built with %s, older than go.mod's toolchain %s: GOTOOLCHAIN=auto was not honoured", test, want)
	}
	info, err := buildinfo.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if goversion.Compare(info.GoVersion, want) < 0 {
		t.Fatalf("the gateway binary is built with %s, older than %s", info.GoVersion, want)
	}
	t.Logf("tests %s, gateway binary %s, go.mod toolchain %s", test, info.GoVersion, want)
}
