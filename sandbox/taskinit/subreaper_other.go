//go:build !linux

package taskinit

// becomeSubreaper does nothing: taskinit runs as the first process of a
// Linux container; elsewhere it only builds (command apps need Linux).
func becomeSubreaper() {}
