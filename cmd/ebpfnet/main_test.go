package main

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// The test binary doubles as the CLI: run with cliMainEnv set it is
// `ebpfnet`, so each case runs the real main() in a sandbox host namespace
// as a user would, with exit code, stdout and stderr to check.
const cliMainEnv = "EBPFNET_CLI_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(cliMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Setenv(cliMainEnv, "1")
	os.Exit(m.Run())
}

// newHost builds a sandbox host (and its outside) for CLI tests.
func newHost(t *testing.T) *testutil.Topology {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("CLI tests build network namespaces: run as root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return testutil.NewTopology(t, exe)
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, tp *testutil.Topology, args ...string) result {
	t.Helper()
	out, errOut, err := tp.Ebpfnet(args...)
	r := result{stdout: out, stderr: errOut}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("ebpfnet %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// cliCase is one command line and what it must do. stdout and stderr are
// regular expressions; a failing command must say why, one line per error.
type cliCase struct {
	name   string
	args   []string
	code   int
	stdout string
	stderr string
}

func runCases(t *testing.T, tp *testutil.Topology, cases []cliCase) {
	t.Helper()
	for _, c := range cases {
		r := run(t, tp, c.args...)
		what := c.name + ": ebpfnet " + strings.Join(c.args, " ")
		if r.code != c.code {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, c.code, r.stdout, r.stderr)
			continue
		}
		if c.stdout != "" && !regexp.MustCompile(c.stdout).MatchString(r.stdout) {
			t.Errorf("%s: stdout %q does not match %q", what, r.stdout, c.stdout)
		}
		if c.stderr != "" && !regexp.MustCompile(c.stderr).MatchString(r.stderr) {
			t.Errorf("%s: stderr %q does not match %q", what, r.stderr, c.stderr)
		}
		if c.code != 0 && r.stderr != "" {
			// One line per error, each saying who speaks.
			for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				if !strings.HasPrefix(line, "ebpfnet: ") {
					t.Errorf("%s: error line %q is not one line starting with \"ebpfnet: \"", what, line)
				}
			}
		}
	}
}

func TestRootCommand(t *testing.T) {
	tp := newHost(t)
	runCases(t, tp, []cliCase{
		{name: "help lists commands", args: []string{"--help"}, stdout: `(?s)attach.*daemon.*network`},
		{name: "unknown command", args: []string{"frobnicate"}, code: 1, stderr: `^ebpfnet: unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"ls", "--bogus"}, code: 1, stderr: `^ebpfnet: unknown flag: --bogus`},
	})
}
