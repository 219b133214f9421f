// Package hostroot is what a command task (a Marathon app without an
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
// The costs: Docker needs an image (Image, imported once from an empty
// tar, no registry), the sandbox keeps its host path (the daemon runs on
// this machine, as it must for any task's sandbox), a user is resolved on
// the host and given to Docker as uid:gid, and what a task needs beyond
// the system directories comes through volumes (host_path_roots).
package hostroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// Image is the empty image every command task's container is made from.
const Image = "mesolite/hostroot:1"

// EmptyTar is a tar archive with no entries (its two zero end blocks):
// what docker import makes Image from.
func EmptyTar() []byte { return make([]byte, 1024) }

// systemDirs are bound read-only into a command task's container when
// the host has them. Home directories, /root, /var, /srv and /mnt are
// left out: a task gets what it needs through volumes and its sandbox.
var systemDirs = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc", "/opt"}

// Bind is a bind mount of a host path at the same path in the container.
type Bind struct {
	Path     string
	ReadOnly bool
}

// SystemBinds returns the read-only binds of the system directories this
// host has. A merged-/usr host's /bin (a link to usr/bin) is bound too:
// the kernel follows the link, and /bin/sh works as on the host.
func SystemBinds() []Bind {
	var out []Bind
	for _, d := range systemDirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, Bind{Path: d, ReadOnly: true})
		}
	}
	return out
}

// ErrNoUser: the app's user does not exist on this machine.
var ErrNoUser = errors.New("no such user")

// User is an account of the host, as a command task runs under it.
type User struct {
	Name   string
	UID    int
	GID    int
	Groups []int // supplementary group ids
}

// Spec is the user as Docker takes it: "uid:gid", numeric, because
// Docker would look names up in the (empty) image's /etc/passwd.
func (u User) Spec() string { return strconv.Itoa(u.UID) + ":" + strconv.Itoa(u.GID) }

// LookupUser resolves a user name (or a numeric uid) against the host's
// accounts.
func LookupUser(name string) (User, error) {
	u, err := user.Lookup(name)
	if _, numeric := strconv.Atoi(name); err != nil && numeric == nil {
		u, err = user.LookupId(name)
	}
	if err != nil {
		return User{}, fmt.Errorf("%w: user %q does not exist on this machine: create it (useradd %s) or change the app's \"user\"", ErrNoUser, name, name)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return User{}, fmt.Errorf("user %q has a non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
	}
	out := User{Name: u.Username, UID: uid, GID: gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil && n != gid {
				out.Groups = append(out.Groups, n)
			}
		}
	}
	return out, nil
}

// ChownTree gives dir and everything below it to uid:gid, as Mesos gives
// a task's sandbox to its user once the fetcher is done. Links are
// changed themselves, never followed.
func ChownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}
