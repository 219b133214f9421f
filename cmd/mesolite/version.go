package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/docker/docker/api"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/docker"
)

// buildVersion is the version and commit of this binary: the version set
// with -ldflags (make build, make release), else the module's version (go
// install …@v1.2.3); the commit set with -ldflags, else the build's VCS
// stamp (go build or go install in a clone), "+dirty" when it had
// uncommitted changes, else "unknown".
func buildVersion() (ver, rev string) {
	ver, rev = version, "unknown"
	if commit != "" {
		rev = commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ver, rev
	}
	if version == devVersion && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	if commit != "" {
		return ver, rev
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "unknown" && dirty {
		rev += "+dirty"
	}
	return ver, rev
}

// runVersion is "mesolite version": this binary, and the Docker daemon
// the agent would use with the API version the client negotiates with it.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: mesolite version")
		return 2
	}
	ver, rev := buildVersion()
	fmt.Fprintf(stdout, "mesolite %s\ncommit:   %s\ngo:       %s %s/%s\n", ver, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	host, source := docker.ResolveHost(os.Getenv)
	rt, err := docker.New(docker.Config{Host: host, Layout: sandbox.Layout{}})
	if err != nil {
		fmt.Fprintf(stdout, "docker:   %s (%s): %v\n", host, source, err)
		return 0
	}
	defer func() { _ = rt.Close() }() // the version is printed; nothing to lose
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dv, apiv, err := rt.Version(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "docker:   %s (%s) does not answer: %v\n", host, source, err)
		return 0
	}
	fmt.Fprintf(stdout, "docker:   %s (%s), Engine %s, API %s (negotiated; this client speaks up to %s)\n", host, source, dv, apiv, api.DefaultVersion)
	return 0
}
