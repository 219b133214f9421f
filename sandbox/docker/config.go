package docker

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/mesolite/mesolite/sandbox"
)

// dockerConfig translates a task spec into Docker's create request: the
// spec's fields, then its parameters, then mesolite's labels, which win.
// It does no I/O and is table-tested.
func dockerConfig(s *sandbox.TaskSpec, agentID string) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	cfg := &container.Config{
		Image:  s.Image,
		Env:    append([]string(nil), s.Env...),
		Labels: map[string]string{},
	}
	if s.Entrypoint != nil {
		cfg.Entrypoint = s.Entrypoint
	}
	if s.Cmd != nil {
		cfg.Cmd = s.Cmd
	}
	if s.StopTimeout > 0 {
		t := s.StopTimeout
		cfg.StopTimeout = &t
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(s.NetworkMode),
		Privileged:  s.Privileged,
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "10m", "max-file": "3"},
		},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		DNS:           s.DNS,
		Resources: container.Resources{
			CPUShares:  s.CPUShares,
			Memory:     s.MemoryBytes,
			MemorySwap: s.MemorySwap,
		},
	}
	if s.CPUQuota > 0 {
		hc.CPUPeriod = 100000
		hc.CPUQuota = s.CPUQuota
	}
	if s.SandboxDir == "" {
		return nil, nil, nil, fmt.Errorf("task %s has no sandbox directory", s.TaskID)
	}
	if err := bindMounts(hc, s); err != nil {
		return nil, nil, nil, err
	}
	if err := portBindings(cfg, hc, s); err != nil {
		return nil, nil, nil, err
	}
	for _, p := range s.Parameters {
		if err := applyParameter(cfg, hc, p); err != nil {
			return nil, nil, nil, err
		}
	}
	cfg.Labels[sandbox.LabelAgentID] = agentID
	cfg.Labels[sandbox.LabelAppID] = s.AppID
	cfg.Labels[sandbox.LabelInstanceID] = s.InstanceID
	cfg.Labels[sandbox.LabelTaskID] = s.TaskID
	cfg.Labels[sandbox.LabelMesosTask] = s.TaskID
	return cfg, hc, &network.NetworkingConfig{}, nil
}

// bindMounts mounts the sandbox and the spec's resolved binds. Mounts, not
// Binds: a missing source is an error instead of a new empty directory, so
// a vanished volume is never silently replaced.
func bindMounts(hc *container.HostConfig, s *sandbox.TaskSpec) error {
	hc.Mounts = append(hc.Mounts, bind(s.SandboxDir, s.SandboxPath(), false))
	binds := append([]sandbox.Bind(nil), s.Binds...)
	// Parents before children, so a volume inside the sandbox mount lands
	// on top of it.
	sort.SliceStable(binds, func(i, j int) bool {
		return strings.Count(filepath.Clean(binds[i].Target), "/") < strings.Count(filepath.Clean(binds[j].Target), "/")
	})
	for _, m := range binds {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return fmt.Errorf("%w: mount %s:%s must be absolute", sandbox.ErrUnsafePath, m.Source, m.Target)
		}
		if strings.ContainsAny(m.Source+m.Target, "\x00") {
			return fmt.Errorf("%w: mount %q", sandbox.ErrUnsafePath, m.Source+":"+m.Target)
		}
		hc.Mounts = append(hc.Mounts, bind(m.Source, m.Target, m.ReadOnly))
	}
	return nil
}

// portBindings exposes every container port and publishes those with a
// host port (none with host networking).
func portBindings(cfg *container.Config, hc *container.HostConfig, s *sandbox.TaskSpec) error {
	if len(s.Ports) == 0 {
		return nil
	}
	cfg.ExposedPorts = nat.PortSet{}
	hc.PortBindings = nat.PortMap{}
	for _, p := range s.Ports {
		for _, proto := range strings.Split(p.Protocol, ",") {
			proto = strings.ToLower(strings.TrimSpace(proto))
			switch proto {
			case "":
				proto = "tcp"
			case "tcp", "udp", "sctp":
			default:
				return fmt.Errorf("port %d: unknown protocol %q (want tcp, udp or \"udp,tcp\")", p.ContainerPort, proto)
			}
			port, err := nat.NewPort(proto, strconv.Itoa(p.ContainerPort))
			if err != nil {
				return fmt.Errorf("port %d/%s: %w", p.ContainerPort, proto, err)
			}
			cfg.ExposedPorts[port] = struct{}{}
			if s.NetworkMode != "host" && p.HostPort > 0 {
				hc.PortBindings[port] = append(hc.PortBindings[port], nat.PortBinding{HostIP: p.HostIP, HostPort: strconv.Itoa(p.HostPort)})
			}
		}
	}
	return nil
}

func bind(src, dst string, ro bool) mount.Mount {
	return mount.Mount{Type: mount.TypeBind, Source: src, Target: dst, ReadOnly: ro}
}
