package docker

import (
	"context"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/system"
)

// Facts are what the daemon says of itself that changes how mesolite
// runs tasks on it.
type Facts struct {
	OS, Arch string // the daemon's (linux; amd64, arm64): what a helper binary must be
	// Rootless: the daemon runs as a user (rootless Docker); the host
	// cannot reach its containers' addresses.
	Rootless bool
	// Desktop: Docker Desktop; its containers run in a virtual machine.
	Desktop bool
	// MemoryLimit and CPUShares: the daemon enforces mem and cpus. Without
	// cgroup controllers (rootless Docker on cgroup v1) it accepts both
	// and enforces neither.
	MemoryLimit, CPUShares, CPUQuota bool
	CgroupDriver, CgroupVersion      string
	OperatingSystem                  string
}

// Facts asks the daemon.
func (d *Runtime) Facts(ctx context.Context) (Facts, error) {
	if err := d.ready(ctx); err != nil {
		return Facts{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	info, err := d.api.Info(ctx)
	if err != nil {
		return Facts{}, classify(err, "docker info")
	}
	return factsOf(info), nil
}

func factsOf(info system.Info) Facts {
	f := Facts{
		OS: info.OSType, Arch: goArch(info.Architecture),
		MemoryLimit: info.MemoryLimit, CPUShares: info.CPUShares, CPUQuota: info.CPUCfsQuota,
		CgroupDriver: info.CgroupDriver, CgroupVersion: info.CgroupVersion, OperatingSystem: info.OperatingSystem,
		Desktop: strings.Contains(info.OperatingSystem, "Docker Desktop"),
	}
	f.Rootless = slices.ContainsFunc(info.SecurityOptions, func(o string) bool { return o == "name=rootless" || strings.HasPrefix(o, "name=rootless,") })
	return f
}

// goArch turns the daemon's architecture (uname's, as docker info gives
// it) into Go's name.
func goArch(a string) string {
	switch a {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	}
	return a
}

// LimitsWarning is the line to log when the daemon does not enforce the
// tasks' mem and cpus, or "" when it does.
func (f Facts) LimitsWarning() string {
	if f.MemoryLimit && f.CPUShares {
		return ""
	}
	why := "the daemon has no cgroup controllers (cgroup driver " + f.CgroupDriver + ", cgroup v" + f.CgroupVersion + ")"
	if f.Rootless && f.CgroupVersion == "1" {
		why = "rootless Docker on cgroup v1 cannot use cgroups: they are not delegated to users (cgroup v2 with systemd's delegation is needed)"
	} else if f.Rootless {
		why = "rootless Docker without delegated cgroup controllers (enable memory and cpu delegation for the user's systemd slice)"
	}
	return "memory and CPU limits are not enforced: " + why + "; tasks run without the mem and cpus of their apps"
}
