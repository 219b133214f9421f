package main

import "golang.org/x/sys/unix"

// totalMemory is the machine's memory in bytes. Containers run in Docker
// Desktop's virtual machine, whose memory is set in Docker Desktop's
// settings and is usually less: set [resources] mem to match it.
func totalMemory() (uint64, error) { return unix.SysctlUint64("hw.memsize") }
