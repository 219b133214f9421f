package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// ErrNoUser: a command task's user does not exist on this machine.
var ErrNoUser = errors.New("no such user")

// User is an account of the host, as a command task runs under it.
type User struct {
	Name   string
	UID    int
	GID    int
	Groups []int // supplementary group ids
}

// Spec is the user as a runtime takes it: "uid:gid", numeric, because a
// runtime would look names up in the container's (empty) /etc/passwd.
func (u User) Spec() string { return strconv.Itoa(u.UID) + ":" + strconv.Itoa(u.GID) }

// LookupUser resolves a user name (or a numeric uid) against the host's
// accounts. Errors: ErrNoUser, saying what to do.
func LookupUser(name string) (User, error) {
	u, err := user.Lookup(name)
	if _, numeric := strconv.Atoi(name); err != nil && numeric == nil {
		u, err = user.LookupId(name)
	}
	if err != nil {
		return User{}, &noUserError{name: name}
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

// noUserError is ErrNoUser for one name, saying what to do.
type noUserError struct{ name string }

func (e *noUserError) Error() string {
	return fmt.Sprintf("user %q does not exist on this machine: create it (useradd %s) or change the app's \"user\"", e.name, e.name)
}

func (e *noUserError) Is(target error) bool { return target == ErrNoUser }

// CheckUser is the check validation runs on a command app's user.
func CheckUser(name string) error {
	_, err := LookupUser(name)
	return err
}

// ChownTree gives dir and everything below it to uid:gid, as Mesos gives
// a task's sandbox to its user once the fetcher is done. Links are
// changed themselves, never followed.
func ChownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}
