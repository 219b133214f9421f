package docker

import (
	"errors"
	"github.com/mesolite/mesolite/sandbox"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
)

const testAgentID = "agent-1-S0"

func baseSpec() *sandbox.TaskSpec {
	return &sandbox.TaskSpec{
		ContainerID: "c0545002-91cf-4beb-a141-367d29d516eb",
		TaskID:      "pg.instance-1._app.1",
		AppID:       "/pg",
		InstanceID:  "pg.instance-1",
		Image:       "mesolite/testapp:latest",
		SandboxDir:  "/work/slaves/a/frameworks/f/executors/pg.instance-1._app.1/runs/c05",
		NetworkMode: "bridge",
	}
}

func TestDockerConfig(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(s *sandbox.TaskSpec)
		check   func(t *testing.T, cfg *container.Config, hc *container.HostConfig)
		wantErr error  // error class, when the translation must fail
		errText string // or a part of the message, for errors without a class
	}{
		{
			name: "the user's labels beside ours",
			edit: func(s *sandbox.TaskSpec) {
				s.Parameters = []sandbox.Parameter{{Key: "label", Value: "team=db"}}
			},
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				want := map[string]string{
					"team":                 "db",
					"mesolite.agent_id":    testAgentID,
					"mesolite.app_id":      "/pg",
					"mesolite.instance_id": "pg.instance-1",
					"mesolite.task_id":     "pg.instance-1._app.1",
					"MESOS_TASK_ID":        "pg.instance-1._app.1",
				}
				if !reflect.DeepEqual(cfg.Labels, want) {
					t.Errorf("labels = %v, want %v", cfg.Labels, want)
				}
			},
		},
		{
			name: "a reserved label is refused, not overwritten",
			edit: func(s *sandbox.TaskSpec) {
				s.Parameters = []sandbox.Parameter{{Key: "label", Value: sandbox.LabelAgentID + "=evil"}}
			},
			errText: "reserved",
		},
		{
			name:    "an unknown parameter is refused",
			edit:    func(s *sandbox.TaskSpec) { s.Parameters = []sandbox.Parameter{{Key: "cap-add", Value: "ALL"}} },
			errText: "not supported",
		},
		{
			name: "labels without user labels",
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				if len(cfg.Labels) != 5 || cfg.Labels[sandbox.LabelAgentID] != testAgentID || cfg.Labels[sandbox.LabelMesosTask] != "pg.instance-1._app.1" {
					t.Errorf("labels = %v", cfg.Labels)
				}
			},
		},
		{
			name: "nil entrypoint and cmd keep the image's",
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				if cfg.Entrypoint != nil || cfg.Cmd != nil {
					t.Errorf("entrypoint %q cmd %q, want both nil", cfg.Entrypoint, cfg.Cmd)
				}
				if cfg.Image != "mesolite/testapp:latest" {
					t.Errorf("image = %q", cfg.Image)
				}
			},
		},
		{
			name: "entrypoint and cmd set",
			edit: func(s *sandbox.TaskSpec) {
				s.Entrypoint = []string{"/bin/sh", "-c"}
				s.Cmd = []string{"exec /testapp"}
			},
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				if !reflect.DeepEqual([]string(cfg.Entrypoint), []string{"/bin/sh", "-c"}) || !reflect.DeepEqual([]string(cfg.Cmd), []string{"exec /testapp"}) {
					t.Errorf("entrypoint %q cmd %q", cfg.Entrypoint, cfg.Cmd)
				}
			},
		},
		{
			name: "args only: cmd set, entrypoint kept",
			edit: func(s *sandbox.TaskSpec) { s.Cmd = []string{"--port", "8080"} },
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				if cfg.Entrypoint != nil || !reflect.DeepEqual([]string(cfg.Cmd), []string{"--port", "8080"}) {
					t.Errorf("entrypoint %q cmd %q", cfg.Entrypoint, cfg.Cmd)
				}
			},
		},
		{
			name: "env order kept, user values last",
			edit: func(s *sandbox.TaskSpec) {
				s.Env = []string{"MESOS_SANDBOX=/mnt/mesos/sandbox", "PORT0=31000", "B=2", "A=1", "PORT0=1"}
			},
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				want := []string{"MESOS_SANDBOX=/mnt/mesos/sandbox", "PORT0=31000", "B=2", "A=1", "PORT0=1"}
				if !reflect.DeepEqual(cfg.Env, want) {
					t.Errorf("env = %q, want %q", cfg.Env, want)
				}
			},
		},
		{
			name: "sandbox mounted alone",
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				want := []mount.Mount{{Type: mount.TypeBind, Source: baseSpec().SandboxDir, Target: "/mnt/mesos/sandbox"}}
				if !reflect.DeepEqual(hc.Mounts, want) {
					t.Errorf("mounts = %+v, want %+v", hc.Mounts, want)
				}
				if len(hc.Binds) != 0 {
					t.Errorf("binds = %q, want none (a missing source must fail, not be created)", hc.Binds)
				}
			},
		},
		{
			name: "volumes bind-mounted, parents before children",
			edit: func(s *sandbox.TaskSpec) {
				s.Binds = []sandbox.Bind{
					{Source: "/vol/pg#data#1/sub", Target: "/mnt/mesos/sandbox/data/sub"},
					{Source: "/srv/conf", Target: "/etc/app", ReadOnly: true},
					{Source: "/vol/pg#data#1", Target: "/mnt/mesos/sandbox/data"},
					{Source: "/vol/pg#logs#2", Target: "/var/log/app/"},
				}
			},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				want := []mount.Mount{
					{Type: mount.TypeBind, Source: baseSpec().SandboxDir, Target: "/mnt/mesos/sandbox"},
					{Type: mount.TypeBind, Source: "/srv/conf", Target: "/etc/app", ReadOnly: true},
					{Type: mount.TypeBind, Source: "/vol/pg#logs#2", Target: "/var/log/app/"},
					{Type: mount.TypeBind, Source: "/vol/pg#data#1", Target: "/mnt/mesos/sandbox/data"},
					{Type: mount.TypeBind, Source: "/vol/pg#data#1/sub", Target: "/mnt/mesos/sandbox/data/sub"},
				}
				if !reflect.DeepEqual(hc.Mounts, want) {
					t.Errorf("mounts:\n got %+v\nwant %+v", hc.Mounts, want)
				}
			},
		},
		{
			name:    "relative mount source refused",
			edit:    func(s *sandbox.TaskSpec) { s.Binds = []sandbox.Bind{{Source: "data", Target: "/data"}} },
			wantErr: sandbox.ErrUnsafePath,
		},
		{
			name:    "relative mount target refused",
			edit:    func(s *sandbox.TaskSpec) { s.Binds = []sandbox.Bind{{Source: "/vol/x", Target: "data"}} },
			wantErr: sandbox.ErrUnsafePath,
		},
		{
			name:    "NUL in mount refused",
			edit:    func(s *sandbox.TaskSpec) { s.Binds = []sandbox.Bind{{Source: "/vol/x\x00y", Target: "/data"}} },
			wantErr: sandbox.ErrUnsafePath,
		},
		{
			name:    "no sandbox directory",
			edit:    func(s *sandbox.TaskSpec) { s.SandboxDir = "" },
			errText: "has no sandbox directory",
		},
		{
			name: "ports per protocol with host ip",
			edit: func(s *sandbox.TaskSpec) {
				s.Ports = []sandbox.PortBinding{
					{ContainerPort: 8080, HostPort: 31000, Protocol: "tcp", HostIP: "127.0.0.1"},
					{ContainerPort: 53, HostPort: 31001, Protocol: "udp,tcp"},
					{ContainerPort: 9000, HostPort: 31002, Protocol: "udp"},
					{ContainerPort: 7000, HostPort: 31003}, // no protocol: tcp
				}
			},
			check: func(t *testing.T, cfg *container.Config, hc *container.HostConfig) {
				wantExposed := nat.PortSet{"8080/tcp": {}, "53/udp": {}, "53/tcp": {}, "9000/udp": {}, "7000/tcp": {}}
				if !reflect.DeepEqual(cfg.ExposedPorts, wantExposed) {
					t.Errorf("exposed = %v, want %v", cfg.ExposedPorts, wantExposed)
				}
				wantBind := nat.PortMap{
					"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "31000"}},
					"53/udp":   {{HostPort: "31001"}},
					"53/tcp":   {{HostPort: "31001"}},
					"9000/udp": {{HostPort: "31002"}},
					"7000/tcp": {{HostPort: "31003"}},
				}
				if !reflect.DeepEqual(hc.PortBindings, wantBind) {
					t.Errorf("bindings = %v, want %v", hc.PortBindings, wantBind)
				}
			},
		},
		{
			name: "one container port on two host ports",
			edit: func(s *sandbox.TaskSpec) {
				s.Ports = []sandbox.PortBinding{
					{ContainerPort: 8080, HostPort: 31000, Protocol: "tcp", HostIP: "127.0.0.1"},
					{ContainerPort: 8080, HostPort: 31001, Protocol: "tcp", HostIP: "127.0.0.1"},
				}
			},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				want := []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: "31000"}, {HostIP: "127.0.0.1", HostPort: "31001"}}
				if !reflect.DeepEqual(hc.PortBindings["8080/tcp"], want) {
					t.Errorf("bindings = %v, want %v", hc.PortBindings["8080/tcp"], want)
				}
			},
		},
		{
			name: "host network: exposed, never bound",
			edit: func(s *sandbox.TaskSpec) {
				s.NetworkMode = "host"
				s.Ports = []sandbox.PortBinding{{ContainerPort: 8080, HostPort: 8080, Protocol: "tcp"}}
			},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				if hc.NetworkMode != "host" {
					t.Errorf("network mode = %q", hc.NetworkMode)
				}
				if len(hc.PortBindings) != 0 {
					t.Errorf("bindings = %v, want none in host mode", hc.PortBindings)
				}
			},
		},
		{
			name: "host port 0 is not bound",
			edit: func(s *sandbox.TaskSpec) { s.Ports = []sandbox.PortBinding{{ContainerPort: 8080, Protocol: "tcp"}} },
			check: func(t *testing.T, cfg *container.Config, hc *container.HostConfig) {
				if len(hc.PortBindings) != 0 || len(cfg.ExposedPorts) != 1 {
					t.Errorf("exposed %v bindings %v, want 8080/tcp exposed and unbound", cfg.ExposedPorts, hc.PortBindings)
				}
			},
		},
		{
			name: "no ports",
			check: func(t *testing.T, cfg *container.Config, hc *container.HostConfig) {
				if cfg.ExposedPorts != nil || hc.PortBindings != nil {
					t.Errorf("exposed %v bindings %v, want none", cfg.ExposedPorts, hc.PortBindings)
				}
			},
		},
		{
			name: "unknown protocol",
			edit: func(s *sandbox.TaskSpec) {
				s.Ports = []sandbox.PortBinding{{ContainerPort: 80, HostPort: 31000, Protocol: "http"}}
			},
			errText: `unknown protocol "http"`,
		},
		{
			name: "cpu shares, memory, swap, quota",
			edit: func(s *sandbox.TaskSpec) {
				s.CPUShares = 512
				s.CPUQuota = 50000
				s.MemoryBytes = 128 << 20
				s.MemorySwap = 256 << 20
			},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				r := hc.Resources
				if r.CPUShares != 512 || r.CPUQuota != 50000 || r.CPUPeriod != 100000 || r.Memory != 128<<20 || r.MemorySwap != 256<<20 {
					t.Errorf("resources = shares %d quota %d period %d mem %d swap %d", r.CPUShares, r.CPUQuota, r.CPUPeriod, r.Memory, r.MemorySwap)
				}
			},
		},
		{
			name: "no quota, default swap",
			edit: func(s *sandbox.TaskSpec) { s.CPUShares = 1024; s.MemoryBytes = 32 << 20 },
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				r := hc.Resources
				if r.CPUQuota != 0 || r.CPUPeriod != 0 || r.MemorySwap != 0 || r.CPUShares != 1024 || r.Memory != 32<<20 {
					t.Errorf("resources = shares %d quota %d period %d mem %d swap %d", r.CPUShares, r.CPUQuota, r.CPUPeriod, r.Memory, r.MemorySwap)
				}
			},
		},
		{
			name: "ulimits",
			edit: func(s *sandbox.TaskSpec) {
				s.Parameters = []sandbox.Parameter{{Key: "ulimit", Value: "nofile=1024:2048"}, {Key: "ulimit", Value: "nproc=64"}}
			},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				want := []*container.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}, {Name: "nproc", Soft: 64, Hard: 64}}
				if !reflect.DeepEqual(hc.Ulimits, want) {
					t.Errorf("ulimits = %+v, want %+v", hc.Ulimits, want)
				}
			},
		},
		{name: "ulimit without value", edit: func(s *sandbox.TaskSpec) { s.Parameters = []sandbox.Parameter{{Key: "ulimit", Value: "nofile"}} }, errText: `ulimit "nofile"`},
		{name: "ulimit without name", edit: func(s *sandbox.TaskSpec) { s.Parameters = []sandbox.Parameter{{Key: "ulimit", Value: "=5"}} }, errText: `ulimit "=5"`},
		{name: "ulimit soft not a number", edit: func(s *sandbox.TaskSpec) { s.Parameters = []sandbox.Parameter{{Key: "ulimit", Value: "nofile=many"}} }, errText: `ulimit "nofile=many"`},
		{name: "ulimit hard not a number", edit: func(s *sandbox.TaskSpec) { s.Parameters = []sandbox.Parameter{{Key: "ulimit", Value: "nofile=1:x"}} }, errText: `ulimit "nofile=1:x"`},
		{
			name: "stop signal and timeout",
			edit: func(s *sandbox.TaskSpec) {
				s.StopTimeout = 30
				s.Parameters = []sandbox.Parameter{{Key: "stop-signal", Value: "SIGINT"}}
			},
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				if cfg.StopSignal != "SIGINT" || cfg.StopTimeout == nil || *cfg.StopTimeout != 30 {
					t.Errorf("stop signal %q timeout %v", cfg.StopSignal, cfg.StopTimeout)
				}
			},
		},
		{
			name: "no stop timeout: Docker's default",
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				if cfg.StopTimeout != nil || cfg.StopSignal != "" {
					t.Errorf("stop signal %q timeout %v, want unset", cfg.StopSignal, cfg.StopTimeout)
				}
			},
		},
		{
			name: "docker never restarts, json-file logs",
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				if hc.RestartPolicy.Name != "no" {
					t.Errorf("restart policy = %q, want no (the agent relaunches)", hc.RestartPolicy.Name)
				}
				if hc.LogConfig.Type != "json-file" || hc.LogConfig.Config["max-size"] == "" || hc.LogConfig.Config["max-file"] == "" {
					t.Errorf("log config = %+v, want bounded json-file", hc.LogConfig)
				}
			},
		},
		{
			name: "docker parameters",
			edit: func(s *sandbox.TaskSpec) {
				s.Privileged = true
				s.Parameters = []sandbox.Parameter{
					{Key: "user", Value: "postgres"}, {Key: "hostname", Value: "pg"}, {Key: "workdir", Value: "/srv"},
					{Key: "init", Value: "true"}, {Key: "shm-size", Value: "64m"}, {Key: "read-only", Value: ""},
					{Key: "add-host", Value: "db:10.0.0.1"}, {Key: "tmpfs", Value: "/run:size=1m"},
				}
			},
			check: func(t *testing.T, cfg *container.Config, hc *container.HostConfig) {
				if cfg.User != "postgres" || cfg.Hostname != "pg" || cfg.WorkingDir != "/srv" {
					t.Errorf("user %q hostname %q workdir %q", cfg.User, cfg.Hostname, cfg.WorkingDir)
				}
				if !hc.Privileged || hc.Init == nil || !*hc.Init || hc.ShmSize != 64<<20 || !hc.ReadonlyRootfs ||
					!reflect.DeepEqual(hc.ExtraHosts, []string{"db:10.0.0.1"}) || hc.Tmpfs["/run"] != "size=1m" {
					t.Errorf("host config = %+v", hc)
				}
			},
		},
		{
			name: "no working directory forced",
			check: func(t *testing.T, cfg *container.Config, _ *container.HostConfig) {
				if cfg.WorkingDir != "" {
					t.Errorf("working dir = %q, want the image's", cfg.WorkingDir)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSpec()
			if tc.edit != nil {
				tc.edit(s)
			}
			cfg, hc, nc, err := dockerConfig(s, testAgentID)
			if tc.wantErr != nil || tc.errText != "" {
				if err == nil {
					t.Fatalf("want an error, got none")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want class %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q does not contain %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("dockerConfig: %v", err)
			}
			if cfg == nil || hc == nil || nc == nil {
				t.Fatalf("nil config: %v %v %v", cfg, hc, nc)
			}
			tc.check(t, cfg, hc)
		})
	}
}

// The spec's slices are copied: editing the spec later does not change a
// config already built.
func TestDockerConfigCopiesEnv(t *testing.T) {
	s := baseSpec()
	s.Env = []string{"A=1", "B=2"}
	cfg, _, _, err := dockerConfig(s, testAgentID)
	if err != nil {
		t.Fatal(err)
	}
	s.Env[0] = "A=changed"
	if cfg.Env[0] != "A=1" {
		t.Errorf("env shares the spec's array: %q", cfg.Env)
	}
	s.Binds = []sandbox.Bind{{Source: "/b", Target: "/x/y"}, {Source: "/a", Target: "/x"}}
	if _, _, _, err := dockerConfig(s, testAgentID); err != nil {
		t.Fatal(err)
	}
	if s.Binds[0].Source != "/b" {
		t.Errorf("dockerConfig sorted the spec's own mounts: %+v", s.Binds)
	}
}
