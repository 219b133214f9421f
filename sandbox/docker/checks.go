package docker

import (
	"context"

	"github.com/mesolite/mesolite/sandbox/probe"
)

// Probe makes a TCP or HTTP check of a task's address along the path this
// host has to the containers.
func (d *Runtime) Probe(ctx context.Context, req probe.Request) probe.Result {
	return d.checks.Probe(ctx, req)
}

// ProbePath says which path checks take.
func (d *Runtime) ProbePath() probe.Info { return d.checks.Info() }
