//go:build !linux

package netplanetest

import (
	"errors"
	"net/netip"
)

// errNoNftables: the guard is an nftables table, which only Linux has.
var errNoNftables = errors.New("guard: nftables is Linux-only")

// InstallGuard fails outside Linux.
func InstallGuard(name string, prefixes ...netip.Prefix) (func() error, error) {
	return nil, errNoNftables
}

// ReadGuardDrops fails outside Linux.
func ReadGuardDrops(name string) (uint64, error) { return 0, errNoNftables }
