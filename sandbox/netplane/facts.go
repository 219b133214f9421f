package netplane

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// NetworkLister is what ReadHostFacts needs of Docker.
type NetworkLister interface {
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
}

// ReadHostFacts gathers the host's addresses, its routes other than the
// default ones (IPv4, main table, from /proc/net/route) and Docker's
// bridge networks. Reading needs no privilege. docker may be nil (no
// bridges then).
func ReadHostFacts(ctx context.Context, docker NetworkLister) (HostFacts, error) {
	var h HostFacts
	ifaces, err := net.Interfaces()
	if err != nil {
		return h, fmt.Errorf("list network interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			return h, fmt.Errorf("list addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			addr, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			bits, _ := ipn.Mask.Size()
			h.Addrs = append(h.Addrs, IfaceAddr{Iface: ifc.Name, Prefix: netip.PrefixFrom(addr.Unmap(), bits)})
		}
	}
	if h.Routes, err = readRoutes("/proc/net/route"); err != nil {
		return h, err
	}
	if docker != nil {
		if h.Bridges, err = readBridges(ctx, docker); err != nil {
			return h, err
		}
	}
	// Docker does not always list the default bridge's gateway; it is the
	// bridge interface's address in the subnet.
	for i, b := range h.Bridges {
		if b.Gateway.IsValid() {
			continue
		}
		for _, a := range h.Addrs {
			if a.Iface == b.Iface && b.Subnet.Contains(a.Prefix.Addr()) {
				h.Bridges[i].Gateway = a.Prefix.Addr()
			}
		}
	}
	return h, nil
}

// readRoutes parses /proc/net/route: Iface, Destination, Gateway, Flags,
// RefCnt, Use, Metric, Mask, … with addresses in the host's byte order.
// Default routes (mask 0) are left out. A missing file (not Linux) is no
// routes.
func readRoutes(path string) ([]Route, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read routes: %w", err)
	}
	defer f.Close()
	var out []Route
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		dst, ok1 := hexAddr(fields[1])
		mask, ok2 := hexAddr(fields[7])
		if !ok1 || !ok2 {
			continue
		}
		m := mask.As4()
		bits := 0
		for v := binary.BigEndian.Uint32(m[:]); v != 0; v <<= 1 {
			bits++
		}
		if bits == 0 {
			continue
		}
		out = append(out, Route{Dst: netip.PrefixFrom(dst, bits).Masked(), Iface: fields[0]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	return out, nil
}

// hexAddr reads an address of /proc/net/route (little-endian hex).
func hexAddr(s string) (netip.Addr, bool) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), true
}

func readBridges(ctx context.Context, docker NetworkLister) ([]Bridge, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nets, err := docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("driver", "bridge"))})
	if err != nil {
		return nil, fmt.Errorf("list docker networks: %w", err)
	}
	var out []Bridge
	for _, n := range nets {
		iface := n.Options["com.docker.network.bridge.name"]
		if iface == "" && len(n.ID) >= 12 {
			iface = "br-" + n.ID[:12]
		}
		for _, c := range n.IPAM.Config {
			sub, err := netip.ParsePrefix(c.Subnet)
			if err != nil || !sub.Addr().Is4() {
				continue
			}
			gw, _ := netip.ParseAddr(c.Gateway)
			out = append(out, Bridge{Network: n.Name, Iface: iface, Subnet: sub.Masked(), Gateway: gw})
		}
	}
	return out, nil
}
