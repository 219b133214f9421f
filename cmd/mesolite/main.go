// Command mesolite is DC/OS on one machine: "mesolite agent" runs the
// Mesos master, Marathon and the Mesos agent in one process; the other
// commands are the DC/OS CLI's "marathon" commands against its API.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/netplane"
	"github.com/mesolite/mesolite/sandbox/taskinit"
)

// version is set at build time with -ldflags "-X main.version=…"; left
// at devVersion, buildVersion takes the module's version when there is one.
var version = devVersion

const devVersion = "0.1.0-dev"

// commit is set at build time with -ldflags "-X main.commit=…" (make
// build, make release); empty, buildVersion reads the build's VCS stamp.
var commit string

const usage = `mesolite: DC/OS on one machine (Mesos master, Marathon and Mesos agent in one binary)

usage:
  mesolite agent [--config agent.toml] [--listen ADDR] [--work-dir DIR]
  mesolite [marathon] app add [FILE|-]
  mesolite [marathon] app list [--json] [--quiet]
  mesolite [marathon] app show ID
  mesolite [marathon] app stop ID [--force]
  mesolite [marathon] app start ID [N] [--force]
  mesolite [marathon] app restart ID [--force]
  mesolite [marathon] app update ID [key=value ...] [--force]
  mesolite [marathon] app remove ID [--force]
  mesolite [marathon] task list [--json] [--quiet] [APP]
  mesolite [marathon] task show TASK
  mesolite [marathon] task kill [--scale] [--wipe] TASK...
  mesolite [marathon] task stop [--wipe] TASK
  mesolite task log [--follow] [--stderr] [--lines N] TASK
  mesolite events [--type TYPE ...]
  mesolite volume list [--orphans] [--json]
  mesolite vip list [--json] [APP]
  mesolite dns NAME [A|SRV]
  mesolite network cleanup [--config FILE]
  mesolite ping
  mesolite version
  mesolite completion bash|zsh
  mesolite cleanup [--config agent.toml] [--work-dir DIR]
  mesolite COMMAND --help

The client commands talk to --url, $MESOLITE_URL or http://127.0.0.1:8080,
with the token in $MESOLITE_TOKEN when the agent requires one.
`

func main() {
	// In a command task's container this binary is the task's first
	// process, bound there under taskinit's name.
	if filepath.Base(os.Args[0]) == taskinit.Name {
		os.Exit(taskinit.Main(os.Args[1:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "agent":
		return runAgent(args[1:], stderr)
	case netplane.HelperCommand:
		return runNetplaneHelper(args[1:], stdin, stdout, stderr)
	case "version", "--version":
		return runVersion(args[1:], stdout, stderr)
	case "completion":
		return runCompletion(args[1:], stdout, stderr)
	case docker.ChecksHelperCommand:
		return runCheckHelper(args[1:], stderr)
	case "cleanup":
		return runCleanup(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		if len(args) == 1 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		return runCLI(append(args[1:], "--help"), stdin, stdout, stderr)
	}
	return runCLI(args, stdin, stdout, stderr)
}
