//go:build !linux && !darwin

package main

import "errors"

// totalMemory is not known on this system: set [resources] mem.
func totalMemory() (uint64, error) {
	return 0, errors.New("the machine's memory is not known on this system: set [resources] mem")
}
