package docker

// A command task (a Marathon app without an
// image) needs to run in a Docker container whose root is the host's file
// system, as Mesos's containerizer runs a task without an image:
//
//   - an image with nothing in it (Docker wants one; it is made locally
//     with docker import of an empty tar, no registry involved);
//   - the host's system directories bound read-only at their own paths,
//     so the task runs the machine's sh, python3 or java;
//   - a private tmpfs at /tmp;
//   - the sandbox bound read-write at its own host path, which is the
//     working directory and $MESOS_SANDBOX;
//   - the task's user resolved here, against the host's accounts (Docker
//     would look in the empty image), and the sandbox given to it.
//
// Host networking, Docker's cgroup limits (cpus, mem, OOM reporting) and
// Docker's lifecycle (events, adoption after a restart of mesolite) come
// with the container; package taskinit is its first process.
//
// Why a container rather than host processes under a supervisor (the
// other road Mesos's posix launcher takes):
//
//   - One runtime, one recovery path. A command task is a labelled
//     container like any other: adopted after mesolite stops or is killed
//     (Docker holds the process, not mesolite), relaunched when it dies,
//     seen through the same event stream. A supervisor would have to
//     outlive mesolite, be found again by pid (which the kernel reuses),
//     and pass its children's exit status across a restart.
//   - Limits and OOM reports for free. Docker sets the memory limit and
//     CPU shares in a cgroup of its own and reports an OOM kill; doing it
//     for host processes means managing cgroups (v1 and v2, under systemd
//     or not) in mesolite.
//   - The process tree is bounded. Every process of the task lives in the
//     container's PID namespace, whatever it forks or setsid()s; taskinit
//     sends SIGTERM to all of them and the SIGKILL at the end of the grace
//     period ends the namespace, so nothing can stray. Process groups, a
//     supervisor's only handle, do not hold a daemon that double-forks.
//   - Safer by default: the host's system directories are read-only and
//     home directories are not there at all, where a host process could
//     write wherever its user may.
//
// The costs: Docker needs an image (HostRootImage, imported once from an empty
// tar, no registry), the sandbox keeps its host path (the daemon runs on
// this machine, as it must for any task's sandbox), a user is resolved on
// the host and given to Docker as uid:gid, and what a task needs beyond
// the system directories comes through volumes (host_path_roots).

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/taskinit"
)

// HostRootImage is the empty image every command task's container is
// made from.
const HostRootImage = "mesolite/hostroot:1"

// emptyTar is a tar archive with no entries (its two zero end blocks):
// what docker import makes HostRootImage from.
func emptyTar() []byte { return make([]byte, 1024) }

// systemDirs are bound read-only into a command task's container when
// the host has them. Home directories, /root, /var, /srv and /mnt are
// left out: a task gets what it needs through volumes and its sandbox.
var systemDirs = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc", "/opt"}

// systemBinds returns the read-only binds of the system directories this
// host has. A merged-/usr host's /bin (a link to usr/bin) is bound too:
// the kernel follows the link, and /bin/sh works as on the host.
func systemBinds() []mount.Mount {
	var out []mount.Mount
	for _, d := range systemDirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, bind(d, d, true))
		}
	}
	return out
}

// hostRootConfig turns the generic config of a command task into one
// whose root is the host's: the empty image, taskinit as the first
// process (working in the sandbox), the system directories and the init
// binary bound read-only, a private /tmp, and the user as uid:gid. The
// sandbox and the volumes are bound at their own paths by bindMounts.
func hostRootConfig(cfg *container.Config, hc *container.HostConfig, s *sandbox.TaskSpec, u *sandbox.User, initBinary string) {
	cfg.Image = HostRootImage
	cfg.Entrypoint = []string{"/" + taskinit.Name, "-w", s.SandboxDir, "--"}
	cfg.Cmd = s.Cmd
	cfg.WorkingDir = ""
	hc.Tmpfs = map[string]string{"/tmp": "rw,exec,nosuid,nodev,mode=1777"}
	mounts := systemBinds()
	mounts = append(mounts, bind(initBinary, "/"+taskinit.Name, true))
	hc.Mounts = append(mounts, hc.Mounts...)
	if u != nil {
		cfg.User = u.Spec()
		for _, g := range u.Groups {
			hc.GroupAdd = append(hc.GroupAdd, strconv.Itoa(g))
		}
	}
}

// ensureHostRootImage imports the empty image when the daemon lacks it
// (never pulled: no registry has it).
func (d *Runtime) ensureHostRootImage(ctx context.Context) error {
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := d.api.ImageInspect(ictx, HostRootImage)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return classify(err, "inspect image "+HostRootImage)
	}
	rc, err := d.api.ImageImport(ictx, image.ImportSource{Source: bytes.NewReader(emptyTar()), SourceName: "-"}, HostRootImage,
		image.ImportOptions{Changes: []string{"LABEL mesolite.hostroot=1"}})
	if err != nil {
		return classify(err, "import image "+HostRootImage)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return classify(err, "import image "+HostRootImage)
	}
	d.log.Info().Str("image", HostRootImage).Msg("imported the empty image of command tasks")
	return nil
}
