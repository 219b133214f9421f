package main

import (
	"context"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/metrics"
	"github.com/mesolite/mesolite/sandbox"
)

// timedRuntime times the runtime's container calls for
// mesolite_runtime_call_duration_seconds{call}. The streams (Events,
// CopyLogs) last as long as a container, so they are not timed; the host
// half (sandboxes and volumes as directories) is not a runtime call.
type timedRuntime struct {
	agent.Runtime
	m *metrics.Metrics
}

func (r timedRuntime) Run(ctx context.Context, spec *sandbox.TaskSpec, progress func(string)) (sandbox.Container, error) {
	start := time.Now()
	c, err := r.Runtime.Run(ctx, spec, progress)
	r.m.RuntimeCall("run", time.Since(start), err)
	return c, err
}

func (r timedRuntime) Stop(ctx context.Context, id string, grace time.Duration) error {
	start := time.Now()
	err := r.Runtime.Stop(ctx, id, grace)
	r.m.RuntimeCall("stop", time.Since(start), err)
	return err
}

func (r timedRuntime) Remove(ctx context.Context, id string) error {
	start := time.Now()
	err := r.Runtime.Remove(ctx, id)
	r.m.RuntimeCall("remove", time.Since(start), err)
	return err
}

func (r timedRuntime) Inspect(ctx context.Context, id string) (sandbox.Container, error) {
	start := time.Now()
	c, err := r.Runtime.Inspect(ctx, id)
	r.m.RuntimeCall("inspect", time.Since(start), err)
	return c, err
}

func (r timedRuntime) List(ctx context.Context) ([]sandbox.Container, error) {
	start := time.Now()
	l, err := r.Runtime.List(ctx)
	r.m.RuntimeCall("list", time.Since(start), err)
	return l, err
}

func (r timedRuntime) Exec(ctx context.Context, id string, cmd []string) (int, string, error) {
	start := time.Now()
	code, out, err := r.Runtime.Exec(ctx, id, cmd)
	r.m.RuntimeCall("exec", time.Since(start), err)
	return code, out, err
}
