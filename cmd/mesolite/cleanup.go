package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/store"
)

const cleanupUsage = `usage: mesolite cleanup [--config agent.toml] [--work-dir DIR]

Removes what a stopped agent leaves running besides its tasks: its check
helper container. The agent of the work directory must be stopped (a
running one would make it again). Tasks, their containers and volumes are
not touched: remove the apps first to remove those.
`

// runCleanup is "mesolite cleanup": the explicit clean-up of an agent's
// helper containers.
func runCleanup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, cleanupUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file (default: none, the built-in defaults)")
	workDir := fs.String("work-dir", "", "work directory (overrides work_dir)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*configPath)
	if err == nil && *configPath == "" && *workDir == "" {
		cfg.WorkDir, err = defaultWorkDir(runtime.GOOS, os.Getenv)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mesolite cleanup: %v\n", err)
		return 2
	}
	if *workDir != "" {
		cfg.WorkDir = *workDir
	}
	if _, err := os.Stat(cfg.WorkDir); err != nil {
		fmt.Fprintf(stderr, "mesolite cleanup: no work directory %s: nothing to clean up\n", cfg.WorkDir)
		return 1
	}
	st, err := store.Open(cfg.WorkDir)
	if err != nil {
		fmt.Fprintf(stderr, "mesolite cleanup: %v\n", err)
		return 1
	}
	defer func() { _ = st.Close() }() // releases the lock; nothing was written
	id, err := agent.ReadAgentID(st)
	if err != nil || id == "" {
		fmt.Fprintf(stderr, "mesolite cleanup: no agent has run in %s (%v)\n", cfg.WorkDir, err)
		return 1
	}
	rt, err := docker.New(docker.Config{Host: cfg.DockerHost, Layout: sandbox.Layout{WorkDir: st.WorkDir(), AgentID: id}})
	if err != nil {
		fmt.Fprintf(stderr, "mesolite cleanup: %v\n", err)
		return 1
	}
	defer func() { _ = rt.Close() }() // only idle connections to close
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := rt.RemoveChecksHelper(ctx, id)
	if err != nil {
		fmt.Fprintf(stderr, "mesolite cleanup: %v\n", err)
		return 1
	}
	if name == "" {
		fmt.Fprintln(stdout, "no check helper container to remove")
	} else {
		fmt.Fprintf(stdout, "removed check helper container %s\n", name)
	}
	return 0
}
