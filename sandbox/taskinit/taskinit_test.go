package taskinit

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain makes this test binary taskinit when it runs under Name.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == Name {
		os.Exit(Main(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

// initCmd runs this test binary as taskinit (not PID 1: it signals the
// task's process group).
func initCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), Name)
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	return exec.Command(link, args...)
}

func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return ee.ExitCode()
}

// TestExitCodes: the task's status comes out as the init's.
func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		want int
		says string
	}{
		{[]string{"--", "/bin/sh", "-c", "exit 3"}, 3, ""},
		{[]string{"/bin/sh", "-c", "kill -KILL $$"}, 137, ""},
		{[]string{"-w", "/", "--", "/bin/sh", "-c", `[ "$(pwd)" = / ]`}, 0, ""},
		{[]string{"--", "/no/such/program"}, 127, "start /no/such/program"},
		{[]string{"-w", "/no/such/dir", "--", "/bin/true"}, 126, "working directory"},
		{nil, 127, "no command"},
	}
	for _, c := range cases {
		cmd := initCmd(t, c.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if got := exitCodeOf(t, cmd.Run()); got != c.want || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("%q: exit %d, stderr %q; want %d saying %q", c.args, got, stderr.String(), c.want, c.says)
		}
	}
}

// TestStopReachesTheTree: SIGTERM reaches the task's children, and the
// init waits for all of them to finish their shutdown.
func TestStopReachesTheTree(t *testing.T) {
	dir := t.TempDir()
	cmd := initCmd(t, "-w", dir, "--", "/bin/sh", "-c", `
		trap 'echo top >> terms; exit 0' TERM
		sh -c 'trap "sleep 0.3; echo child >> terms; exit 0" TERM; echo started > child-ready; sleep 100 & wait' &
		echo started > ready
		wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Both shells' traps are set before the signal: each says so itself
	// (the child starts in the background, after the top one goes on).
	deadline := time.Now().Add(10 * time.Second)
	for {
		top, _ := os.ReadFile(filepath.Join(dir, "ready"))
		child, _ := os.ReadFile(filepath.Join(dir, "child-ready"))
		if len(top) > 0 && len(child) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the task did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := exitCodeOf(t, err); code != 0 {
			t.Fatalf("exit %d, want the task's 0", code)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the init did not end after SIGTERM")
	}
	// The child's slower trap finished before the init ended.
	terms, _ := os.ReadFile(filepath.Join(dir, "terms"))
	if !strings.Contains(string(terms), "top\n") || !strings.Contains(string(terms), "child\n") {
		t.Fatalf("terms = %q, want top and child", terms)
	}
}
