package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

// Labels every container of mesolite carries. LabelAgentID tells the
// containers of one agent (one work directory) from all others.
const (
	LabelAgentID    = "mesolite.agent_id"
	LabelAppID      = "mesolite.app_id"
	LabelInstanceID = "mesolite.instance_id"
	LabelTaskID     = "mesolite.task_id"
	LabelMesosTask  = "MESOS_TASK_ID"
)

// TaskSpec is everything needed to run one task as a container. The agent
// builds it from the app definition and the reservation.
type TaskSpec struct {
	ContainerID string // Mesos container id; the container is named mesos-<ContainerID>
	TaskID      string
	AppID       string
	InstanceID  string

	Image      string
	ForcePull  bool
	Entrypoint []string // nil keeps the image's entrypoint
	Cmd        []string // nil keeps the image's command
	Env        []string // KEY=VALUE, in order; later ones win
	Labels     map[string]string
	User       string
	Hostname   string
	WorkingDir string

	SandboxDir string  // host directory mounted at MountPoint
	Mounts     []Mount // volumes, targets absolute inside the container

	NetworkMode string // "bridge", "host" or the name of a Docker network
	Ports       []PortBinding

	CPUShares   int64
	CPUQuota    int64 // microseconds per 100ms period; 0 = no quota
	MemoryBytes int64
	MemorySwap  int64 // 0 = Docker's default
	Privileged  bool
	StopSignal  string
	StopTimeout int // seconds before SIGKILL
	Init        *bool
	ShmSize     int64
	ExtraHosts  []string
	Ulimits     []string
	Tmpfs       map[string]string
	ReadOnly    bool
}

// Mount is a bind mount of a host directory.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
	// Within is the directory Source must stay in after symlinks are
	// resolved; Create makes Source when it is missing.
	Within string
	Create bool
}

// Resolve checks that the mount's source exists (creating it if asked)
// and, with symlinks resolved, still lies within its directory, so a
// container cannot plant a link in its sandbox or volume that makes a
// later launch mount some other host directory. Source becomes the
// resolved path.
func (m *Mount) Resolve() error {
	if m.Within == "" {
		return fmt.Errorf("%w: mount %s has no containing directory", ErrUnsafePath, m.Source)
	}
	root, err := filepath.EvalSymlinks(m.Within)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", m.Within, err)
	}
	if m.Create {
		// Check the part that exists before creating the rest, so a link
		// planted in the directory (or a "..") never makes MkdirAll create
		// directories outside it.
		existing := filepath.Clean(m.Source)
		for {
			if _, err := os.Lstat(existing); err == nil {
				break
			}
			parent := filepath.Dir(existing)
			if parent == existing {
				break
			}
			existing = parent
		}
		resolved, err := filepath.EvalSymlinks(existing)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", existing, err)
		}
		if !within(resolved, root) {
			return fmt.Errorf("%w: %s resolves to %s, outside %s", ErrUnsafePath, m.Source, resolved, m.Within)
		}
		if err := os.MkdirAll(m.Source, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", m.Source, err)
		}
	}
	resolved, err := filepath.EvalSymlinks(m.Source)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("volume source %s does not exist: create it, or fix the volume's hostPath", m.Source)
	}
	if err != nil {
		return fmt.Errorf("resolve %s: %w", m.Source, err)
	}
	if !within(resolved, root) {
		return fmt.Errorf("%w: %s resolves to %s, outside %s", ErrUnsafePath, m.Source, resolved, m.Within)
	}
	m.Source = resolved
	return nil
}

// within reports whether path is root or lies below it; both are clean
// and absolute.
func within(path, root string) bool {
	return path == root || root == "/" || strings.HasPrefix(path, root+string(filepath.Separator))
}

// PortBinding publishes a container port on a host address.
type PortBinding struct {
	ContainerPort int
	HostPort      int
	Protocol      string // tcp or udp
	HostIP        string
}

// Name is the Docker container name of the task: mesos-<container id>.
func (s *TaskSpec) Name() string { return ContainerName(s.ContainerID) }

// ContainerName is the Docker name for a Mesos container id.
func ContainerName(containerID string) string { return "mesos-" + containerID }

// labels returns the labels of the container, ours last so they win.
func (s *TaskSpec) labels(agentID string) map[string]string {
	out := make(map[string]string, len(s.Labels)+5)
	for k, v := range s.Labels {
		out[k] = v
	}
	out[LabelAgentID] = agentID
	out[LabelAppID] = s.AppID
	out[LabelInstanceID] = s.InstanceID
	out[LabelTaskID] = s.TaskID
	out[LabelMesosTask] = s.TaskID
	return out
}

// dockerConfig translates the spec into Docker's create request. It does
// no I/O and is table-tested.
func (s *TaskSpec) dockerConfig(agentID string) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	cfg := &container.Config{
		Image:      s.Image,
		Env:        append([]string(nil), s.Env...),
		Labels:     s.labels(agentID),
		User:       s.User,
		Hostname:   s.Hostname,
		WorkingDir: s.WorkingDir,
		StopSignal: s.StopSignal,
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
		NetworkMode:    container.NetworkMode(s.NetworkMode),
		Privileged:     s.Privileged,
		Init:           s.Init,
		ShmSize:        s.ShmSize,
		ExtraHosts:     s.ExtraHosts,
		Tmpfs:          s.Tmpfs,
		ReadonlyRootfs: s.ReadOnly,
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "10m", "max-file": "3"},
		},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
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
	for _, u := range s.Ulimits {
		ul, err := parseUlimit(u)
		if err != nil {
			return nil, nil, nil, err
		}
		hc.Ulimits = append(hc.Ulimits, ul)
	}
	if s.SandboxDir == "" {
		return nil, nil, nil, fmt.Errorf("task %s has no sandbox directory", s.TaskID)
	}
	// Mounts, not Binds: a missing source is an error instead of a new
	// empty directory, so a vanished volume is never silently replaced.
	hc.Mounts = append(hc.Mounts, bind(s.SandboxDir, MountPoint, false))
	mounts := append([]Mount(nil), s.Mounts...)
	// Parents before children, so a volume inside the sandbox mount lands
	// on top of it.
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(filepath.Clean(mounts[i].Target), "/") < strings.Count(filepath.Clean(mounts[j].Target), "/")
	})
	for _, m := range mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return nil, nil, nil, fmt.Errorf("%w: mount %s:%s must be absolute", ErrUnsafePath, m.Source, m.Target)
		}
		if strings.ContainsAny(m.Source+m.Target, "\x00") {
			return nil, nil, nil, fmt.Errorf("%w: mount %q", ErrUnsafePath, m.Source+":"+m.Target)
		}
		hc.Mounts = append(hc.Mounts, bind(m.Source, m.Target, m.ReadOnly))
	}
	if len(s.Ports) > 0 {
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
					return nil, nil, nil, fmt.Errorf("port %d: unknown protocol %q (want tcp, udp or \"udp,tcp\")", p.ContainerPort, proto)
				}
				port, err := nat.NewPort(proto, strconv.Itoa(p.ContainerPort))
				if err != nil {
					return nil, nil, nil, fmt.Errorf("port %d/%s: %w", p.ContainerPort, proto, err)
				}
				cfg.ExposedPorts[port] = struct{}{}
				if s.NetworkMode != "host" && p.HostPort > 0 {
					hc.PortBindings[port] = append(hc.PortBindings[port], nat.PortBinding{HostIP: p.HostIP, HostPort: strconv.Itoa(p.HostPort)})
				}
			}
		}
	}
	return cfg, hc, &network.NetworkingConfig{}, nil
}

func bind(src, dst string, ro bool) mount.Mount {
	return mount.Mount{Type: mount.TypeBind, Source: src, Target: dst, ReadOnly: ro}
}

// parseUlimit reads "nofile=1024:2048" or "nofile=1024".
func parseUlimit(s string) (*container.Ulimit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return nil, fmt.Errorf("ulimit %q: want name=soft[:hard]", s)
	}
	softS, hardS, hasHard := strings.Cut(val, ":")
	soft, err := strconv.ParseInt(softS, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("ulimit %q: %w", s, err)
	}
	hard := soft
	if hasHard {
		if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil {
			return nil, fmt.Errorf("ulimit %q: %w", s, err)
		}
	}
	return &container.Ulimit{Name: name, Soft: soft, Hard: hard}, nil
}
