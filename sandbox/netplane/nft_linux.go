//go:build linux

package netplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The table Kernel writes (nft list table ip mesolite):
//
//	table ip mesolite {
//	  map b7_5.4.3.2_5432_tcp { type integer : ipv4_addr . inet_service;  # one per VIP with backends,
//	    elements = { 0 : 172.17.0.2 . 5432, 1 : 172.17.0.3 . 5432 } }       # of this generation (7) and the one before
//	  chain services {                      # regular chain, one rule per VIP and forward
//	    ip daddr 5.4.3.2 tcp dport 5432 dnat ip to numgen inc mod 2 map @b7_5.4.3.2_5432_tcp comment "vip …"
//	    ip daddr 198.18.0.9 tcp dport 80 counter comment "vip …"           # no backend: on to refuse
//	    ip daddr 172.17.0.1 tcp dport 31000 dnat to 172.17.0.2:5432 comment "forward …"
//	  }
//	  chain prerouting  { type nat hook prerouting priority -110; jump services }   # bridge and other containers
//	  chain output      { type nat hook output priority -110; jump services }       # the host and host-network containers
//	  chain postrouting { type nat hook postrouting priority 90;                     # hairpin: a backend reaching itself
//	    ip saddr 172.17.0.2 ip daddr 172.17.0.2 masquerade … }
//	  chain refuse      { ip daddr 5.4.3.2 meta l4proto tcp reject with tcp reset; ip daddr 5.4.3.2 reject … }
//	  chain refuse_out  { type filter hook output priority -10; jump refuse }
//	  chain refuse_fwd  { type filter hook forward priority -10; jump refuse }
//	}
//
// A VIP with backends is translated (DNAT) in prerouting or output, before
// Docker's own chains (priority -100), round robin over its backends. The
// translation lives in conntrack, so an established connection keeps its
// backend whatever happens to the rules or the agent. A VIP without
// backends has no rule in services; its packets reach the refuse chain in
// forward or output and are answered at once (TCP reset, ICMP port
// unreachable), as is every other port of a VIP address and the named-VIP
// range: nothing addressed to a VIP leaves the machine. A backend that
// reaches itself through a VIP is masqueraded (it must see another source
// than its own address), and answers through conntrack. A client on the
// backend's own bridge needs nothing more where bridged packets go through
// conntrack (br_netfilter, which Docker loads); elsewhere every translated
// connection is masqueraded. The host's own connections are not.
const (
	chainServices    = "services"
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainRefuse      = "refuse"
	chainRefuseOut   = "refuse_out"
	chainRefuseFwd   = "refuse_fwd"

	natPriority        = -110 // before Docker's dstnat (-100)
	masqPriority       = 90   // before Docker's srcnat (100)
	filterPriority     = -10  // before Docker's filter (0)
	commentVIP         = "vip "
	commentForward     = "forward "
	commentRefuse      = "refuse "
	commentMasquerade  = "masquerade "
	regAddr, regPort   = 1, 2
	regConcatProtoData = 9 // the second 32-bit register of register 1, where a map's port lands
)

// Kernel applies states to one nftables table through netlink. It needs
// CAP_NET_ADMIN, and no nft command.
type Kernel struct {
	table string
}

// NewKernel returns a Kernel for the table name (ip family).
func NewKernel(table string) *Kernel { return &Kernel{table: table} }

// Table is the name of the table.
func (k *Kernel) Table() string { return k.table }

func classifyNetlink(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EPERM) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%s: %w: %v", what, ErrPermission, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Probe reports whether this process may change the kernel's rules: nil,
// or an error wrapping ErrPermission.
func (k *Kernel) Probe() error {
	c, err := nftables.New()
	if err != nil {
		return classifyNetlink(err, "open netlink")
	}
	_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	return classifyNetlink(err, "list nftables tables")
}

// Apply replaces the table's content with s in one netlink batch, which
// the kernel commits atomically: a packet sees the old rules or the new
// ones, never none. Applying the same state again changes nothing a
// connection can see. Connections established before keep their
// translation (conntrack), even to a backend that is no longer listed.
//
// Where the table exists with this version's chains, the chains stay, the
// rules are replaced, and the backend maps are new ones of the next
// generation ("b<gen>_…"), while the maps the old rules use are left in
// place until the next Apply. A packet that starts through the old rules
// just before the commit may look its backend up just after it, and the
// kernel then sees the map as of the new generation: a map deleted in the
// same batch has no element left there, the packet is not translated and
// is refused. Replacing maps in the batch that replaces their rules (or
// the whole table) refused about one new connection in 3,000
// replacements in TestKernelVIPs/no_gap_while_replaced; maps one
// generation behind refused none. A table of another shape (none yet, or
// an older version's) is made again whole.
func (k *Kernel) Apply(s State) error {
	s.Normalize()
	if err := s.Validate(); err != nil {
		return fmt.Errorf("apply nftables table %s: %w", k.table, err)
	}
	c, err := nftables.New()
	if err != nil {
		return classifyNetlink(err, "open netlink")
	}
	t := &nftables.Table{Name: k.table, Family: nftables.TableFamilyIPv4}
	keep, sets, err := k.sameShape(c, t)
	if err != nil {
		return err
	}
	gen := 1
	if keep {
		live := 0
		for _, set := range sets {
			live = max(live, mapGen(set.Name))
		}
		c.FlushTable(t)
		for _, set := range sets {
			if mapGen(set.Name) < live {
				c.DelSet(set) // two generations old: no rule uses it
			}
		}
		gen = live + 1
	} else {
		// Add (so that the delete finds it), delete, add: the idiom for
		// an atomic replacement of a whole table.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
	}
	if err := k.fill(c, t, s, gen); err != nil {
		return fmt.Errorf("apply nftables table %s: %w", k.table, err)
	}
	if err := c.Flush(); err != nil {
		return classifyNetlink(err, "apply nftables table "+k.table)
	}
	return setHairpin(s.Hairpin)
}

// chainShape is a chain as fill makes it: its name, and for a base chain
// its type, hook and priority.
type chainShape struct {
	name string
	typ  nftables.ChainType
	hook nftables.ChainHook
	prio int32
	base bool
}

// wantChains are the chains fill makes.
var wantChains = []chainShape{
	{name: chainServices},
	{name: chainRefuse},
	{chainPrerouting, nftables.ChainTypeNAT, *nftables.ChainHookPrerouting, natPriority, true},
	{chainOutput, nftables.ChainTypeNAT, *nftables.ChainHookOutput, natPriority, true},
	{chainPostrouting, nftables.ChainTypeNAT, *nftables.ChainHookPostrouting, masqPriority, true},
	{chainRefuseOut, nftables.ChainTypeFilter, *nftables.ChainHookOutput, filterPriority, true},
	{chainRefuseFwd, nftables.ChainTypeFilter, *nftables.ChainHookForward, filterPriority, true},
}

// sameShape reports whether the table exists with exactly the chains fill
// makes (so they can stay), and lists its sets.
func (k *Kernel) sameShape(c *nftables.Conn, t *nftables.Table) (bool, []*nftables.Set, error) {
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return false, nil, classifyNetlink(err, "list chains of "+k.table)
	}
	have := map[string]chainShape{}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != t.Name {
			continue
		}
		cs := chainShape{name: ch.Name, typ: ch.Type}
		if ch.Hooknum != nil && ch.Priority != nil {
			cs.hook, cs.prio, cs.base = *ch.Hooknum, int32(*ch.Priority), true
		}
		have[ch.Name] = cs
	}
	if len(have) != len(wantChains) {
		return false, nil, nil
	}
	for _, w := range wantChains {
		h, ok := have[w.name]
		if !ok || h.base != w.base || (w.base && (h.typ != w.typ || h.hook != w.hook || h.prio != w.prio)) {
			return false, nil, nil
		}
	}
	sets, err := c.GetSets(t)
	if err != nil {
		return false, nil, classifyNetlink(err, "list sets of "+k.table)
	}
	return true, sets, nil
}

// setHairpin puts every port of the bridges in hairpin mode (see
// State.Hairpin). Ports added later get it with the next Apply, which a
// new backend always brings.
func setHairpin(bridges []string) error {
	if len(bridges) == 0 {
		return nil
	}
	idx := map[int]bool{}
	for _, name := range bridges {
		l, err := netlink.LinkByName(name)
		if err != nil {
			continue // the bridge is gone: no port to set
		}
		idx[l.Attrs().Index] = true
	}
	links, err := listLinks()
	if err != nil {
		return classifyNetlink(err, "list links")
	}
	for _, l := range links {
		if !idx[l.Attrs().MasterIndex] {
			continue
		}
		if err := netlink.LinkSetHairpin(l, true); err != nil && !errors.Is(err, syscall.ENODEV) {
			return classifyNetlink(err, "set hairpin mode on "+l.Attrs().Name)
		}
	}
	return nil
}

// listLinks lists the machine's links. The kernel interrupts a dump when
// the set of links changes under it (a container's veth coming or going,
// common while tasks start), and netlink then answers ErrDumpInterrupted
// with a list that may be incomplete: the dump is taken again. If it keeps
// changing, the last list is used; a port it misses gets hairpin mode with
// the next Apply, which the new backend behind that port brings.
func listLinks() ([]netlink.Link, error) {
	var links []netlink.Link
	var err error
	for range 5 {
		links, err = netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, err
		}
	}
	return links, nil
}

// Remove deletes the table: every VIP stops, established connections
// included once their translation is gone from conntrack. Only an explicit
// clean-up calls it. A missing table is not an error.
func (k *Kernel) Remove() error {
	c, err := nftables.New()
	if err != nil {
		return classifyNetlink(err, "open netlink")
	}
	t := &nftables.Table{Name: k.table, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	return classifyNetlink(c.Flush(), "delete nftables table "+k.table)
}

func (k *Kernel) fill(c *nftables.Conn, t *nftables.Table, s State, gen int) error {
	regular := func(name string) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t})
	}
	base := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio int32) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio))})
	}
	services := regular(chainServices)
	refuse := regular(chainRefuse)
	jump := func(from *nftables.Chain, to string) {
		c.AddRule(&nftables.Rule{Table: t, Chain: from, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: to}}})
	}
	jump(base(chainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, natPriority), chainServices)
	jump(base(chainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, natPriority), chainServices)
	post := base(chainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, masqPriority)
	jump(base(chainRefuseOut, nftables.ChainTypeFilter, nftables.ChainHookOutput, filterPriority), chainRefuse)
	jump(base(chainRefuseFwd, nftables.ChainTypeFilter, nftables.ChainHookForward, filterPriority), chainRefuse)

	masq := map[netip.Addr]bool{}
	for _, v := range s.VIPs {
		masq[v.Addr] = true
		if len(v.Backends) == 0 {
			// Matched and counted, not translated: the packet goes on to
			// the refuse chain, and Read still finds the VIP.
			c.AddRule(&nftables.Rule{Table: t, Chain: services, Exprs: append(matchKey(v.Key()), &expr.Counter{}), UserData: comment(vipComment(v))})
			continue
		}
		m := &nftables.Set{Table: t, Name: backendMap(gen, v.Key()), IsMap: true, KeyByteOrder: binaryutil.NativeEndian,
			KeyType: nftables.TypeInteger, DataType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)}
		elems := make([]nftables.SetElement, len(v.Backends))
		for i, b := range v.Backends {
			elems[i] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)), Val: concatAddrPort(b)}
		}
		if err := c.AddSet(m, elems); err != nil {
			return fmt.Errorf("add backend map of vip %s: %w", v.Key(), err)
		}
		exprs := append(matchKey(v.Key()),
			&expr.Numgen{Register: regAddr, Modulus: uint32(len(v.Backends)), Type: unix.NFT_NG_INCREMENTAL},
			&expr.Lookup{SourceRegister: regAddr, DestRegister: regAddr, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regAddr, RegProtoMin: regConcatProtoData},
		)
		c.AddRule(&nftables.Rule{Table: t, Chain: services, Exprs: exprs, UserData: comment(vipComment(v))})
	}
	for _, f := range s.Forwards {
		if f.To.Addr != f.Addr {
			// A forward to its own address (the DNS server's port) is
			// delivered locally; the others may hairpin.
			masq[f.Addr] = true
		}
		exprs := append(matchKey(f.Key()),
			&expr.Immediate{Register: regAddr, Data: f.To.Addr.AsSlice()},
			&expr.Immediate{Register: regPort, Data: binaryutil.BigEndian.PutUint16(f.To.Port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regAddr, RegProtoMin: regPort},
		)
		c.AddRule(&nftables.Rule{Table: t, Chain: services, Exprs: exprs, UserData: comment(commentForward + f.Key().String() + " -> " + f.To.String())})
	}
	// A backend reaching itself through a VIP (or a forward) must see
	// another source than its own address.
	self := map[netip.Addr]bool{}
	for _, v := range s.VIPs {
		for _, b := range v.Backends {
			self[b.Addr] = true
		}
	}
	for _, f := range s.Forwards {
		if f.To.Addr != f.Addr {
			self[f.To.Addr] = true
		}
	}
	for _, a := range sortedAddrs(self) {
		c.AddRule(&nftables.Rule{Table: t, Chain: post, UserData: comment(commentMasquerade + "hairpin " + a.String()), Exprs: []expr.Any{
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: a.AsSlice()},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: a.AsSlice()},
			&expr.Masq{},
		}})
	}
	// Without br_netfilter's conntrack on bridged packets, a backend would
	// answer a client on its own bridge straight, past the translation:
	// then every translated connection leaving through an interface is
	// masqueraded, so the answer comes back through the host.
	if !bridgeConntrack() {
		for _, a := range sortedAddrs(masq) {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, UserData: comment(commentMasquerade + a.String()), Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: regAddr},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: regAddr, Data: ifname("lo")},
				&expr.Ct{Key: expr.CtKeyDST, Register: regAddr, Direction: 0},
				&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: a.AsSlice()},
				&expr.Masq{},
			}})
		}
	}
	for _, p := range s.Refuse {
		c.AddRule(&nftables.Rule{Table: t, Chain: refuse, UserData: comment(commentRefuse + p.String() + " tcp"), Exprs: append(matchPrefix(p),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regAddr},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
		)})
		c.AddRule(&nftables.Rule{Table: t, Chain: refuse, UserData: comment(commentRefuse + p.String()), Exprs: append(matchPrefix(p),
			&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3}, // port unreachable
		)})
	}
	return nil
}

// bridgeConntrack reports whether bridged packets go through conntrack
// (br_netfilter loaded and net.bridge.bridge-nf-call-iptables = 1, as
// Docker sets it up): then a backend's answer to a client on its own
// bridge is translated back on the bridge itself.
func bridgeConntrack() bool {
	b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// backendMap names the map of a VIP's backends in a generation of the
// table's maps (see Apply).
func backendMap(gen int, k Key) string {
	return fmt.Sprintf("b%d_%s_%d_%s", gen, k.Addr, k.Port, k.Protocol)
}

// mapGen is the generation of a backend map's name; 0 for any other name
// (an older version's maps, deleted with the next generation).
func mapGen(name string) int {
	rest, ok := strings.CutPrefix(name, "b")
	if !ok {
		return 0
	}
	digits, _, ok := strings.Cut(rest, "_")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func vipComment(v VIP) string {
	c := commentVIP + v.Key().String()
	if v.Label != "" {
		c += " label=" + v.Label
	}
	if v.Name != "" {
		c += " name=" + v.Name
	}
	return c
}

func comment(s string) []byte {
	if len(s) > 250 {
		s = s[:250]
	}
	return userdata.AppendString(nil, userdata.TypeComment, s)
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// matchKey matches a destination address, protocol and port.
func matchKey(k Key) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if k.Protocol == UDP {
		proto = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: k.Addr.AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regAddr},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{proto}},
		&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: binaryutil.BigEndian.PutUint16(k.Port)},
	}
}

// matchPrefix matches a destination address in a prefix.
func matchPrefix(p netip.Prefix) []expr.Any {
	exprs := []expr.Any{&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}}
	if p.Bits() < 32 {
		mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
		exprs = append(exprs, &expr.Bitwise{SourceRegister: regAddr, DestRegister: regAddr, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}})
	}
	return append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: p.Masked().Addr().AsSlice()})
}

func concatAddrPort(b Backend) []byte {
	v := b.Addr.AsSlice()
	return append(v, byte(b.Port>>8), byte(b.Port), 0, 0)
}

func sortedAddrs(m map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Read reads the table back: the VIPs with their backends, the forwards
// and the refused prefixes the kernel has, decoded from the rules' own
// expressions (labels and names from their comments). DNS is not in the
// kernel and is left nil. A missing table is ErrNoTable.
func (k *Kernel) Read() (State, error) {
	c, err := nftables.New()
	if err != nil {
		return State{}, classifyNetlink(err, "open netlink")
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return State{}, classifyNetlink(err, "list nftables tables")
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == k.table }) {
		return State{}, fmt.Errorf("read nftables table %s: %w", k.table, ErrNoTable)
	}
	t := &nftables.Table{Name: k.table, Family: nftables.TableFamilyIPv4}
	var s State
	rules, err := c.GetRules(t, &nftables.Chain{Name: chainServices, Table: t})
	if err != nil {
		return State{}, classifyNetlink(err, "read chain "+chainServices)
	}
	for _, r := range rules {
		if err := k.readService(c, t, r, &s); err != nil {
			return State{}, fmt.Errorf("read nftables table %s: %w", k.table, err)
		}
	}
	rules, err = c.GetRules(t, &nftables.Chain{Name: chainRefuse, Table: t})
	if err != nil {
		return State{}, classifyNetlink(err, "read chain "+chainRefuse)
	}
	for _, r := range rules {
		if p, ok := readRefuse(r); ok {
			s.Refuse = append(s.Refuse, p)
		}
	}
	s.Normalize()
	return s, nil
}

func (k *Kernel) readService(c *nftables.Conn, t *nftables.Table, r *nftables.Rule, s *State) error {
	note, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	key, rest, ok := readKey(r.Exprs)
	if !ok {
		return fmt.Errorf("rule %d of chain %s is not one of mesolite's (%q)", r.Handle, chainServices, note)
	}
	switch {
	case strings.HasPrefix(note, commentVIP):
		v := VIP{Addr: key.Addr, Port: key.Port, Protocol: key.Protocol}
		for _, f := range strings.Fields(note) {
			if l, ok := strings.CutPrefix(f, "label="); ok {
				v.Label = l
			}
			if n, ok := strings.CutPrefix(f, "name="); ok {
				v.Name = n
			}
		}
		for _, e := range rest {
			if l, ok := e.(*expr.Lookup); ok {
				elems, err := c.GetSetElements(&nftables.Set{Table: t, Name: l.SetName, IsMap: true,
					KeyType: nftables.TypeInteger, DataType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)})
				if err != nil {
					return classifyNetlink(err, "read backends of vip "+key.String())
				}
				for _, el := range elems {
					if len(el.Val) < 6 {
						return fmt.Errorf("vip %s: a backend of %d bytes", key, len(el.Val))
					}
					addr, _ := netip.AddrFromSlice(el.Val[:4])
					v.Backends = append(v.Backends, Backend{addr, binary.BigEndian.Uint16(el.Val[4:6])})
				}
			}
		}
		s.VIPs = append(s.VIPs, v)
	case strings.HasPrefix(note, commentForward):
		f := Forward{Addr: key.Addr, Port: key.Port, Protocol: key.Protocol}
		for _, e := range rest {
			if im, ok := e.(*expr.Immediate); ok {
				switch {
				case im.Register == regAddr && len(im.Data) == 4:
					f.To.Addr, _ = netip.AddrFromSlice(im.Data)
				case im.Register == regPort && len(im.Data) == 2:
					f.To.Port = binary.BigEndian.Uint16(im.Data)
				}
			}
		}
		s.Forwards = append(s.Forwards, f)
	default:
		return fmt.Errorf("rule %d of chain %s is not one of mesolite's (%q)", r.Handle, chainServices, note)
	}
	return nil
}

// readKey decodes the match matchKey writes.
func readKey(exprs []expr.Any) (Key, []expr.Any, bool) {
	if len(exprs) < 6 {
		return Key{}, nil, false
	}
	var k Key
	a, ok1 := exprs[1].(*expr.Cmp)
	p, ok2 := exprs[3].(*expr.Cmp)
	port, ok3 := exprs[5].(*expr.Cmp)
	if !ok1 || !ok2 || !ok3 || len(a.Data) != 4 || len(p.Data) != 1 || len(port.Data) != 2 {
		return Key{}, nil, false
	}
	k.Addr, _ = netip.AddrFromSlice(a.Data)
	switch p.Data[0] {
	case unix.IPPROTO_TCP:
		k.Protocol = TCP
	case unix.IPPROTO_UDP:
		k.Protocol = UDP
	default:
		return Key{}, nil, false
	}
	k.Port = binary.BigEndian.Uint16(port.Data)
	return k, exprs[6:], true
}

// readRefuse decodes the prefix of a refuse rule (the TCP one of each pair).
func readRefuse(r *nftables.Rule) (netip.Prefix, bool) {
	var addr netip.Addr
	bits := 32
	tcp := false
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Bitwise:
			if len(e.Mask) == 4 {
				bits = 0
				for m := binary.BigEndian.Uint32(e.Mask); m != 0; m <<= 1 {
					bits++
				}
			}
		case *expr.Cmp:
			if len(e.Data) == 4 && !addr.IsValid() {
				addr, _ = netip.AddrFromSlice(e.Data)
			}
		case *expr.Reject:
			tcp = e.Type == unix.NFT_REJECT_TCP_RST
		}
	}
	if !tcp || !addr.IsValid() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, bits), true
}
