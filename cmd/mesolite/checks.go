package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/helper"
	"github.com/mesolite/mesolite/sandbox/probe"
)

// runCheckHelper is "mesolite check-helper --listen :7070", the main
// process of the check helper container: it serves the checks the agent
// sends (sandbox/probe's protocol), with the token in its environment.
// Checks of tasks on the host's network go to the container's gateway,
// where the host's ports are.
func runCheckHelper(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(docker.ChecksHelperCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":7070", "address to serve checks on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	token := os.Getenv(docker.ChecksTokenEnv)
	if token == "" {
		fmt.Fprintf(stderr, "%s: $%s is empty: the agent sets it\n", docker.ChecksHelperCommand, docker.ChecksTokenEnv)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", docker.ChecksHelperCommand, err)
		return 1
	}
	gw, err := defaultGateway("/proc/net/route")
	if err != nil {
		fmt.Fprintf(stderr, "%s: checks of host-network tasks will fail: %v\n", docker.ChecksHelperCommand, err)
	}
	fmt.Fprintf(stderr, "%s: serving checks on %s (host network at %s)\n", docker.ChecksHelperCommand, ln.Addr(), gw)
	srv := &probe.Server{Token: token, HostAddr: gw}
	if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", docker.ChecksHelperCommand, err)
		return 1
	}
	return 0
}

// defaultGateway reads the IPv4 default route's gateway from a Linux
// route table (/proc/net/route).
func defaultGateway(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read routes: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[1] != "00000000" {
			continue
		}
		b, err := hex.DecodeString(fields[2])
		if err != nil || len(b) != 4 {
			continue
		}
		ip := make(net.IP, 4)
		binary.LittleEndian.PutUint32(ip, binary.BigEndian.Uint32(b))
		return ip.String(), nil
	}
	return "", errors.New("no default route")
}

// helperBinary finds a static Linux build of mesolite for the Docker
// daemon's architecture, to run as a helper container: $MESOLITE_HELPER_BINARY;
// this binary when it is one (make build, a release archive, CGO_ENABLED=0
// go install on Linux); mesolite-linux-<arch> beside it (the macOS release
// archives carry it); linux_<arch>/mesolite beside it (where `GOOS=linux
// go install` puts it).
func helperBinary(goarch string) (string, error) {
	if p := os.Getenv("MESOLITE_HELPER_BINARY"); p != "" {
		return p, helper.CheckStatic(p)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", fmt.Errorf("find this binary: %w", err)
	}
	var why error
	if runtime.GOOS == "linux" && runtime.GOARCH == goarch {
		if why = helper.CheckStatic(exe); why == nil {
			return exe, nil
		}
	} else {
		why = fmt.Errorf("this binary is for %s/%s, the Docker daemon runs linux/%s", runtime.GOOS, runtime.GOARCH, goarch)
	}
	dir := filepath.Dir(exe)
	for _, p := range []string{filepath.Join(dir, "mesolite-linux-"+goarch), filepath.Join(dir, "linux_"+goarch, "mesolite")} {
		if _, err := os.Stat(p); err == nil {
			return p, helper.CheckStatic(p)
		}
	}
	return "", fmt.Errorf("%w; the helper container needs a static linux/%s build of mesolite: put one at %s (a macOS release archive has it, or: CGO_ENABLED=0 GOOS=linux GOARCH=%s go build -o %s ./cmd/mesolite), or set $MESOLITE_HELPER_BINARY",
		why, goarch, filepath.Join(dir, "mesolite-linux-"+goarch), goarch, filepath.Join(dir, "mesolite-linux-"+goarch))
}
