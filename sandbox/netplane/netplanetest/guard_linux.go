package netplanetest

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// InstallGuard is Guard outside a test (the benchmark): it returns the
// function that removes the table.
func InstallGuard(name string, prefixes ...netip.Prefix) (func() error, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("guard: open netlink: %w", err)
	}
	table := &nftables.Table{Name: GuardTable(name), Family: nftables.TableFamilyIPv4}
	c.AddTable(table)
	c.DelTable(table)
	c.AddTable(table)
	for _, hook := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"out", nftables.ChainHookOutput}, {"fwd", nftables.ChainHookForward}} {
		ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: table, Type: nftables.ChainTypeFilter, Hooknum: hook.hook, Priority: nftables.ChainPriorityRef(100)})
		for _, p := range prefixes {
			p = p.Masked()
			exprs := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}}
			if p.Bits() < 32 {
				m := ^uint32(0) << (32 - p.Bits())
				exprs = append(exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}, Xor: []byte{0, 0, 0, 0}})
			}
			exprs = append(exprs,
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
				&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname("lo")},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname("docker0")},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte("br-")}, // a prefix: every br-*
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			)
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: exprs})
		}
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("guard: install table %s: %w", table.Name, err)
	}
	remove := func() error {
		c, err := nftables.New()
		if err == nil {
			c.DelTable(table)
			err = c.Flush()
		}
		if err != nil {
			return fmt.Errorf("guard: remove table %s: %w", table.Name, err)
		}
		return nil
	}
	rules, err := c.GetRules(table, &nftables.Chain{Name: "out", Table: table})
	if err != nil || len(rules) != len(prefixes) {
		_ = remove() // the error that matters is that it is not in place
		return nil, fmt.Errorf("guard: table %s is not in place: %d rules, %v", table.Name, len(rules), err)
	}
	return remove, nil
}

// ReadGuardDrops is GuardDrops outside a test.
func ReadGuardDrops(name string) (uint64, error) {
	c, err := nftables.New()
	if err != nil {
		return 0, fmt.Errorf("guard: open netlink: %w", err)
	}
	table := &nftables.Table{Name: GuardTable(name), Family: nftables.TableFamilyIPv4}
	var n uint64
	for _, ch := range []string{"out", "fwd"} {
		rules, err := c.GetRules(table, &nftables.Chain{Name: ch, Table: table})
		if err != nil {
			return 0, fmt.Errorf("guard: read table %s: %w", table.Name, err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if cnt, ok := e.(*expr.Counter); ok {
					n += cnt.Packets
				}
			}
		}
	}
	return n, nil
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}
