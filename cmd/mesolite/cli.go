package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The client commands are the DC/OS CLI's "marathon" commands (the word
// "marathon" may be left out), "task log", "events", "volume list" and
// "ping", run against the agent's API. This file parses the command line
// and maps errors to exit codes: 0 success, 1 a failed command (the API
// said no, the agent is unreachable), 2 a usage error.

const (
	defaultURL     = "http://127.0.0.1:8080"
	requestTimeout = 30 * time.Second
	logPollEvery   = 500 * time.Millisecond
)

// runCLI runs one client command line and returns the exit code.
// SIGINT and SIGTERM end "events" and "task log --follow" cleanly.
func runCLI(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, pollEvery: logPollEvery}
	return c.run(ctx, args)
}

// cli is one run of a client command.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	pollEvery      time.Duration // task log --follow
	api            *apiClient    // set once the command line is parsed
}

// cliCommand is one client command.
type cliCommand struct {
	name    string // command words without "marathon": "app add"
	args    string // positional arguments and options, for the usage line
	summary string
	help    string   // more lines for --help
	bools   []string // boolean options, without "--"
	values  []string // options that take a value
	minArgs int
	maxArgs int // -1: any number
	run     func(ctx context.Context, c *cli, inv *invocation) error
}

// invocation is a parsed command line.
type invocation struct {
	cmd    *cliCommand
	args   []string
	bools  map[string]bool
	values map[string][]string
}

func (inv *invocation) flag(name string) bool { return inv.bools[name] }

func (inv *invocation) value(name string) (string, bool) {
	vs := inv.values[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

var cliCommands = []*cliCommand{
	{name: "app add", args: "[FILE|URL|-]", minArgs: 0, maxArgs: 1, run: appAdd,
		summary: "Add an application from a Marathon app definition (JSON).",
		help:    "Reads FILE, an http(s) URL, or standard input when FILE is - or missing, and\nposts it as is. Prints the id of the deployment that starts the application."},
	{name: "app list", args: "[--json] [--quiet]", bools: []string{"json", "quiet"}, maxArgs: 0, run: appList,
		summary: "List the applications.",
		help:    "Columns: ID MEM CPUS TASKS (running/instances) HEALTH (healthy/running, --- without\nhealth checks) DEPLOYMENT (current action) WAITING (launch overdue) CONTAINER CMD.\n--quiet prints only the ids; --json prints the applications as JSON."},
	{name: "app show", args: "ID", minArgs: 1, maxArgs: 1, run: appShow,
		summary: "Show an application as JSON, with its tasks and counts."},
	{name: "app stop", args: "ID [--force]", bools: []string{"force"}, minArgs: 1, maxArgs: 1, run: appStop,
		summary: "Stop an application: scale it to 0 instances.",
		help:    "Instances with persistent volumes keep their reservations and data, and their\ntasks stay listed without STARTED; \"app start\" reuses them.\n--force overrides a deployment in progress."},
	{name: "app start", args: "ID [N] [--force]", bools: []string{"force"}, minArgs: 1, maxArgs: 2, run: appStart,
		summary: "Start a stopped application with N instances (default 1).",
		help:    "--force overrides a deployment in progress."},
	{name: "app restart", args: "ID [--force]", bools: []string{"force"}, minArgs: 1, maxArgs: 1, run: appRestart,
		summary: "Restart every task of an application (rolling, on the same reservations).",
		help:    "--force overrides a deployment in progress."},
	{name: "app update", args: "ID [key=value ...] [--force]", bools: []string{"force"}, minArgs: 1, maxArgs: -1, run: appUpdate,
		summary: "Change fields of an application.",
		help:    "Each value is read as an integer, a number, true/false, a JSON array, a JSON\nobject or else a string (null is null), e.g. instances=2 env='{\"A\":\"b\"}'.\nWithout key=value, reads a JSON object from standard input.\n--force overrides a deployment in progress."},
	{name: "app remove", args: "ID [--force]", bools: []string{"force"}, minArgs: 1, maxArgs: 1, run: appRemove,
		summary: "Remove an application, its tasks and its persistent volumes (their data is deleted)."},
	{name: "task list", args: "[--json] [--quiet] [APP]", bools: []string{"json", "quiet"}, maxArgs: 1, run: taskList,
		summary: "List the tasks, of every application or of APP.",
		help:    "Columns: APP HEALTHY STARTED (N/A when not running) HOST ID. Stopped tasks of\napplications with persistent volumes stay listed."},
	{name: "task show", args: "TASK", minArgs: 1, maxArgs: 1, run: taskShow,
		summary: "Show a task as JSON."},
	{name: "task kill", args: "[--scale] [--wipe] TASK...", bools: []string{"scale", "wipe"}, minArgs: 1, maxArgs: -1, run: taskKill,
		summary: "Kill tasks; they are relaunched in place unless --scale.",
		help:    "--scale lowers the applications' instances instead of relaunching.\n--wipe also deletes the instances' persistent volumes (their data) and\nreleases their reservations; new instances replace them."},
	{name: "task stop", args: "[--wipe] TASK", bools: []string{"wipe"}, minArgs: 1, maxArgs: 1, run: taskStop,
		summary: "Kill one task and print it; --wipe also deletes its persistent volumes."},
	{name: "task log", args: "[--follow] [--stderr] [--lines N] TASK", bools: []string{"follow", "stderr"}, values: []string{"lines"}, minArgs: 1, maxArgs: 1, run: taskLog,
		summary: "Print the last N lines (default 10) of a task's stdout or stderr.",
		help:    "TASK is a whole task id (also of a past incarnation whose sandbox is still on\ndisk), or part of the id of one current task, e.g. the app's name.\n--follow keeps printing what the task writes until interrupted (Ctrl-C), and\ngoes on with the next task when the instance is relaunched."},
	{name: "group add", args: "[FILE|URL|-]", minArgs: 0, maxArgs: 1, run: groupAdd,
		summary: "Add a group of applications (and subgroups) from a Marathon group definition (JSON).",
		help:    "Reads FILE, an http(s) URL, or standard input when FILE is - or missing. The\napplications start in the order their dependencies give, each once those it\ndepends on run, are healthy and ready. Prints the id of the deployment."},
	{name: "group list", args: "[--json]", bools: []string{"json"}, maxArgs: 0, run: groupList,
		summary: "List the groups (those made by group add, and those application ids make).",
		help:    "Columns: ID APPS (the applications in the group and its subgroups).\n--json prints the groups as JSON, as GET /v2/groups gives them."},
	{name: "group show", args: "[--group-version VERSION] ID", values: []string{"group-version"}, minArgs: 1, maxArgs: 1, run: groupShow,
		summary: "Show a group as JSON, with its applications and subgroups.",
		help:    "--group-version shows one of its versions (GET /v2/groups/ID/versions lists them)."},
	{name: "group update", args: "ID [key=value ...] [--force]", bools: []string{"force"}, minArgs: 1, maxArgs: -1, run: groupUpdate,
		summary: "Change a group: its apps, groups, dependencies; version=V rolls it back.",
		help:    "Each value is read as in app update, e.g. version=2024-01-02T03:04:05.678Z or\napps='[...]'. Without key=value, reads a group definition from standard input.\nApplications and subgroups missing from a given list are removed; only the\napplications that changed are restarted. --force overrides a deployment in progress."},
	{name: "group scale", args: "ID FACTOR [--force]", bools: []string{"force"}, minArgs: 2, maxArgs: 2, run: groupScale,
		summary: "Scale every application of a group by FACTOR (instances × FACTOR, rounded up).",
		help:    "FACTOR 0 stops the group: instances with persistent volumes keep their\nreservations and data. From 0, scaling by any factor stays at 0: roll back with\n'group update ID version=...' or start the applications. --force overrides a\ndeployment in progress."},
	{name: "group remove", args: "ID [--force]", bools: []string{"force"}, minArgs: 1, maxArgs: 1, run: groupRemove,
		summary: "Remove a group with its applications (and their persistent volumes) and subgroups.",
		help:    "The applications stop in reverse dependency order. --force overrides a\ndeployment in progress."},
	{name: "events", args: "[--type TYPE ...]", values: []string{"type"}, maxArgs: 0, run: events,
		summary: "Print the event stream, one \"TYPE JSON\" line per event, until interrupted.",
		help:    "--type (repeatable) keeps only events of that type, e.g. status_update_event,\ndeployment_success, health_status_changed_event."},
	{name: "volume list", args: "[--orphans] [--json]", bools: []string{"orphans", "json"}, maxArgs: 0, run: volumeList,
		summary: "List the persistent volumes on disk and who owns them.",
		help:    "--orphans lists only directories no reservation owns (never deleted automatically)."},
	{name: "volume release", args: "PERSISTENCE-ID", minArgs: 1, maxArgs: 1, run: volumeRelease,
		summary: "Let go of a volume no reservation owns: keep its data, never give it to an instance.",
		help:    "A volume whose instance record and owner record were lost goes to its app's\nnext instance instead of a new, empty one. Release it to start that instance\nafresh; the data stays in the volume until you remove it."},
	{name: "ping", maxArgs: 0, run: ping,
		summary: "Check that the agent answers."},
	{name: "vip list", args: "[--json] [APP]", bools: []string{"json"}, maxArgs: 1, run: vipList,
		summary: "List every VIP (VIP_<n> port labels), its backends and their state.",
		help:    "Columns: APP LABEL ADDRESS (the VIP's, a named VIP's given one) NAME (a named\nVIP's DNS name) SERVED (yes, or why not) BACKENDS (address and state of each task;\nonly serving ones get connections). --json prints GET /mesolite/v1/vips."},
	{name: "dns", args: "NAME [A|SRV|ANY]", minArgs: 1, maxArgs: 2, run: dnsLookup,
		summary: "Ask mesolite's DNS server for NAME, as a task would (default type A).",
		help:    "Mesos-DNS names (<app>.marathon.mesos, SRV _<app>._tcp.marathon.mesos) and\nDC/OS names (<app>.marathon.containerip.dcos.thisdcos.directory,\n<name>.marathon.l4lb.thisdcos.directory) are mesolite's; other names are\nforwarded to the resolvers tasks would otherwise use."},
	{name: "network cleanup", args: "[--config FILE]", values: []string{"config"}, maxArgs: 0, run: networkCleanup,
		summary: "Remove mesolite's network rules (the nftables table) and its helper container.",
		help:    "--config is the agent's configuration (none: the built-in defaults, as for\nmesolite agent). Run it with the agent stopped: VIPs stop answering at once,\nestablished connections through them included. The next agent start puts\neverything back."},
}

// groups are the first words that take a sub-command.
var groups = map[string]bool{"app": true, "group": true, "task": true, "volume": true, "vip": true, "network": true}

// usageError is a malformed command line: exit 2 with the usage line.
type usageError struct {
	cmd *cliCommand // nil: no command was recognised
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd *cliCommand, format string, a ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, a...)}
}

// token is one command-line argument after the global options are taken out.
type token struct {
	s     string
	value string // for options given a value
	isOpt bool
}

// valueOptions take a value, as "--name VALUE" or "--name=VALUE".
var valueOptions = map[string]bool{"lines": true, "type": true, "config": true, "group-version": true}

func (c *cli) run(ctx context.Context, args []string) int {
	var (
		toks    []token
		rawURL  string
		urlSet  bool
		help    bool
		literal bool
	)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if literal || a == "-" || !strings.HasPrefix(a, "-") || isNumber(a) {
			toks = append(toks, token{s: a})
			continue
		}
		if a == "--" {
			literal = true
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case name == "help" || a == "-h":
			help = true
			continue
		case name == "url" || valueOptions[name]:
			if !hasVal {
				if i+1 >= len(args) {
					return c.usage(usagef(nil, "option --%s needs a value", name))
				}
				i++
				val = args[i]
			}
			if name == "url" {
				rawURL, urlSet = val, true
				continue
			}
			toks = append(toks, token{s: name, value: val, isOpt: true})
		default:
			toks = append(toks, token{s: a, isOpt: true})
		}
	}

	// The command words: the first positional arguments.
	var (
		words   []string
		rest    []token
		skipped bool
	)
	for _, t := range toks {
		if t.isOpt {
			rest = append(rest, t)
			continue
		}
		switch {
		case len(words) == 0 && t.s == "marathon" && !skipped:
			skipped = true
			continue
		case len(words) == 0, len(words) == 1 && groups[words[0]]:
			words = append(words, t.s)
		default:
			rest = append(rest, t)
		}
	}
	if len(words) == 0 {
		if help {
			fmt.Fprint(c.stdout, usage)
			return 0
		}
		fmt.Fprint(c.stderr, usage)
		return 2
	}
	name := strings.Join(words, " ")
	var cmd *cliCommand
	for _, k := range cliCommands {
		if k.name == name {
			cmd = k
		}
	}
	if cmd == nil {
		if groups[words[0]] {
			if len(words) == 1 && help {
				fmt.Fprint(c.stdout, groupUsage(words[0]))
				return 0
			}
			if len(words) == 1 {
				fmt.Fprintf(c.stderr, "mesolite: %q needs a command\n%s", words[0], groupUsage(words[0]))
			} else {
				fmt.Fprintf(c.stderr, "mesolite: unknown command %q\n%s", name, groupUsage(words[0]))
			}
			return 2
		}
		fmt.Fprintf(c.stderr, "mesolite: unknown command %q; run 'mesolite help' for the commands\n", name)
		return 2
	}
	if help {
		fmt.Fprint(c.stdout, commandHelp(cmd))
		return 0
	}
	inv, err := parseInvocation(cmd, rest)
	if err != nil {
		return c.usage(err)
	}
	if !urlSet {
		rawURL = c.getenv("MESOLITE_URL")
	}
	api, err := newAPIClient(rawURL, c.getenv("MESOLITE_TOKEN"))
	if err != nil {
		return c.usage(usagef(cmd, "%v", err))
	}
	c.api = api
	if err := cmd.run(ctx, c, inv); err != nil {
		return c.fail(err)
	}
	return 0
}

// parseInvocation checks the options and the number of arguments of cmd.
func parseInvocation(cmd *cliCommand, toks []token) (*invocation, error) {
	inv := &invocation{cmd: cmd, bools: map[string]bool{}, values: map[string][]string{}}
	for _, t := range toks {
		if !t.isOpt {
			inv.args = append(inv.args, t.s)
			continue
		}
		if valueOptions[t.s] {
			if !contains(cmd.values, t.s) {
				return nil, usagef(cmd, "%s has no option --%s", cmd.name, t.s)
			}
			inv.values[t.s] = append(inv.values[t.s], t.value)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(t.s, "-"), "=")
		if !contains(cmd.bools, name) {
			return nil, usagef(cmd, "%s has no option %s", cmd.name, strings.SplitN(t.s, "=", 2)[0])
		}
		on := true
		if hasVal {
			b, err := strconv.ParseBool(val)
			if err != nil {
				return nil, usagef(cmd, "option --%s takes true or false, not %q", name, val)
			}
			on = b
		}
		inv.bools[name] = on
	}
	switch n := len(inv.args); {
	case n < cmd.minArgs:
		var names []string
		for _, f := range strings.Fields(cmd.args) {
			if !strings.HasPrefix(f, "[") {
				names = append(names, f)
			}
		}
		return nil, usagef(cmd, "%s needs %s", cmd.name, names[n])
	case cmd.maxArgs >= 0 && n > cmd.maxArgs:
		return nil, usagef(cmd, "unexpected argument %q", inv.args[cmd.maxArgs])
	}
	return inv, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isNumber reports whether a looks like a (negative) number, which is an
// argument, not an option: "app start x -1".
func isNumber(a string) bool {
	_, err := strconv.ParseFloat(a, 64)
	return err == nil
}

func usageLine(cmd *cliCommand) string {
	prefix := "mesolite [marathon] "
	switch cmd.name {
	case "task log", "events", "volume list", "ping":
		prefix = "mesolite "
	}
	return strings.TrimSpace(prefix + cmd.name + " " + cmd.args)
}

func groupUsage(group string) string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, k := range cliCommands {
		if strings.HasPrefix(k.name, group+" ") {
			fmt.Fprintf(&b, "  %s\n", usageLine(k))
		}
	}
	return b.String()
}

func commandHelp(cmd *cliCommand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\n%s\n", usageLine(cmd), cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(&b, "%s\n", cmd.help)
	}
	b.WriteString("\nGlobal options:\n  --url URL   the agent's API (default $MESOLITE_URL or " + defaultURL + ");\n" +
		"              $MESOLITE_TOKEN is sent as the token when set\n")
	return b.String()
}

func (c *cli) usage(err error) int {
	var ue *usageError
	if !errors.As(err, &ue) || ue.cmd == nil {
		fmt.Fprintf(c.stderr, "mesolite: %v\n", err)
		return 2
	}
	fmt.Fprintf(c.stderr, "mesolite: %s\nusage: %s\n", ue.msg, usageLine(ue.cmd))
	return 2
}

// fail prints the error of a command and returns its exit code.
func (c *cli) fail(err error) int {
	var (
		ue *usageError
		ur *unreachableError
		ae *apiError
	)
	switch {
	case errors.As(err, &ue):
		return c.usage(err)
	case errors.As(err, &ur):
		fmt.Fprintf(c.stderr, "mesolite: %v\n", ur)
	case errors.As(err, &ae):
		fmt.Fprintf(c.stderr, "Error: %s\n", ae.Message)
		for _, d := range ae.detailLines() {
			fmt.Fprintf(c.stderr, "  %s\n", d)
		}
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(c.stderr, "mesolite: interrupted")
		return 130
	default:
		fmt.Fprintf(c.stderr, "Error: %v\n", err)
	}
	return 1
}

// normalizeAppID gives an app id its leading slash, as the DC/OS CLI does.
func normalizeAppID(id string) (string, error) {
	t := strings.Trim(id, "/")
	if t == "" {
		return "", fmt.Errorf("the application id %q is empty", id)
	}
	return "/" + t, nil
}

// appPath is the API path of an app, with the id escaped segment by segment.
func appPath(id string) string {
	segs := strings.Split(strings.TrimPrefix(id, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/v2/apps/" + strings.Join(segs, "/")
}
