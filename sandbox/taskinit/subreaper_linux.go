package taskinit

import "syscall"

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, from <linux/prctl.h>

// becomeSubreaper makes this process adopt its descendants' orphans, as
// PID 1 does, so it waits for them too. Failing, it still waits for its
// child.
func becomeSubreaper() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}
