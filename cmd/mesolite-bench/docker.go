package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// benchLabel marks the baseline containers of one run of the benchmark.
const benchLabel = "mesolite.bench_run"

const testImage = "mesolite/testapp:latest"

// baseline runs the Docker side of a comparison with the Docker Go client:
// the same image, mounts, port and limits the agent gives the task.
type baseline struct {
	dc  *client.Client
	run string // this run's label value
	dir string // where sandboxes and volumes of baseline containers go
}

// runSpec is one baseline container.
type runSpec struct {
	name     string
	hostPort int
}

// create and start a container as `docker run -d` does, making its sandbox
// and volume directories first (the agent makes them too). It returns when
// the container runs.
func (b *baseline) runContainer(ctx context.Context, s runSpec) (string, error) {
	sandboxDir := filepath.Join(b.dir, s.name, "sandbox")
	volumeDir := filepath.Join(b.dir, s.name, "volume")
	for _, d := range []string{sandboxDir, filepath.Join(sandboxDir, "data"), volumeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	port := nat.Port("8080/tcp")
	stop := 10
	cfg := &container.Config{
		Image:        testImage,
		Env:          []string{"MESOS_SANDBOX=/mnt/mesos/sandbox", "DATA_DIR=/mnt/mesos/sandbox/data", "PORT0=" + strconv.Itoa(s.hostPort)},
		Labels:       map[string]string{benchLabel: b.run},
		ExposedPorts: nat.PortSet{port: struct{}{}},
		StopTimeout:  &stop,
	}
	hc := &container.HostConfig{
		NetworkMode: "bridge",
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "10m", "max-file": "3"},
		},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources:     container.Resources{CPUShares: 102, Memory: 64 << 20, MemorySwap: 64 << 20},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: sandboxDir, Target: "/mnt/mesos/sandbox"},
			{Type: mount.TypeBind, Source: volumeDir, Target: "/mnt/mesos/sandbox/data"},
		},
		PortBindings: nat.PortMap{port: []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: strconv.Itoa(s.hostPort)}}},
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r, err := b.dc.ContainerCreate(cctx, cfg, hc, &network.NetworkingConfig{}, nil, "mesolite-bench-"+b.run+"-"+s.name)
	if err != nil {
		return "", fmt.Errorf("docker create: %w", err)
	}
	if err := b.dc.ContainerStart(cctx, r.ID, container.StartOptions{}); err != nil {
		return r.ID, fmt.Errorf("docker start: %w", err)
	}
	return r.ID, nil
}

func (b *baseline) stop(ctx context.Context, id string) error {
	t := 10
	return b.dc.ContainerStop(ctx, id, container.StopOptions{Timeout: &t})
}

func (b *baseline) start(ctx context.Context, id string) error {
	return b.dc.ContainerStart(ctx, id, container.StartOptions{})
}

func (b *baseline) remove(ctx context.Context, id string) error {
	return b.dc.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
}

// containerState is what a restart check compares.
type containerState struct {
	ID        string
	StartedAt string
	Running   bool
}

// agentContainers lists the containers of one agent, with their start times.
func agentContainers(ctx context.Context, dc *client.Client, agentID string) (map[string]containerState, error) {
	list, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "mesolite.agent_id="+agentID))})
	if err != nil {
		return nil, err
	}
	out := map[string]containerState{}
	for _, c := range list {
		in, err := dc.ContainerInspect(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		out[c.ID] = containerState{ID: c.ID, StartedAt: in.State.StartedAt, Running: in.State.Running}
	}
	return out, nil
}

// removeLabelled force-removes every container with the label key=value.
func removeLabelled(ctx context.Context, dc *client.Client, key, value string) (int, error) {
	list, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", key+"="+value))})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range list {
		if err := dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err == nil {
			n++
		}
	}
	return n, nil
}
