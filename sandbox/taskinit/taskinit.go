// Package taskinit is the first process of a command task's container:
// it starts the task's command, forwards stop signals to every process of
// the task, and reaps orphans.
//
// Docker's stop sends SIGTERM to a container's first process only; a
// shell that runs "cmd" would pass it on to nobody, and its children
// would only see the SIGKILL at the end of the grace period. Mesos's
// command executor signals the whole process tree instead. As PID 1 of
// the container's PID namespace, taskinit does the same with kill(-1):
// every process of the task, however deep and whatever session it made,
// gets the signal; the SIGKILL Docker sends after the grace period then
// ends the namespace and everything left in it.
//
// Outside a PID namespace (PID other than 1, as in tests), kill(-1) would
// reach every process of the user, so taskinit puts the task in its own
// process group and signals that group instead.
//
// The mesolite binary becomes taskinit when it is run under the name
// Name (the container's entrypoint is a bind mount of it at /<Name>).
package taskinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// Name is the file name the init runs under inside the container.
const Name = "mesolite-task-init"

// forwarded are the signals passed on to the task. SIGTERM and SIGINT
// also mean "the task is being stopped".
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// Main runs the task and returns the code to exit with: the task's exit
// status, or 128 + the signal that ended it. Once a stop signal came, it
// waits for every process of the task, not just the first, so each can
// finish its own shutdown within the grace period.
//
// args are [-w DIR] [--] COMMAND [ARG...]: -w is the working directory.
// (Docker's own working directory would be made in the image's root
// before the mounts, under a tmpfs /tmp, and spoil that tmpfs's mode.)
func Main(args []string, stderr io.Writer) int {
	argv := args
	if len(argv) >= 2 && argv[0] == "-w" {
		if err := os.Chdir(argv[1]); err != nil {
			fmt.Fprintf(stderr, "mesolite-task-init: working directory: %v\n", err)
			return 126
		}
		argv = argv[2:]
	}
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "mesolite-task-init: no command to run")
		return 127
	}
	pid1 := os.Getpid() == 1
	if !pid1 {
		// Adopt the task's orphans, as PID 1 does, to wait for them too.
		becomeSubreaper()
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	children := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !pid1}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "mesolite-task-init: start %s: %v\n", argv[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	task := cmd.Process.Pid
	var status syscall.WaitStatus
	taskDone, stopping := false, false
	for {
		select {
		case s := <-sigs:
			sig := s.(syscall.Signal)
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				stopping = true
			}
			if pid1 {
				_ = syscall.Kill(-1, sig) // every process of the namespace but this one
			} else {
				_ = syscall.Kill(-task, sig)
			}
		case <-children:
		}
		// Reap every child that ended, the task's orphans included.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if errors.Is(err, syscall.ECHILD) && taskDone {
				return exitCode(status)
			}
			if pid <= 0 {
				break
			}
			if pid == task {
				status, taskDone = ws, true
			}
		}
		if taskDone && !stopping {
			// The task ended on its own: end the container, as Docker ends
			// it when its first process exits (the kernel kills the rest).
			return exitCode(status)
		}
	}
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
