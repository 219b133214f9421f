package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/mesolite/mesolite/sandbox/helper"
)

// helperContainers lists the helper containers (check and network
// helpers of any agent) by id, with their owners; nil without Docker.
func helperContainers() map[string]string {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", helper.LabelHelper))})
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, ct := range list {
		out[ct.ID] = ct.Labels[helper.LabelOwner]
	}
	return out
}

// removeLeftHelpers removes the helper containers that this run's agents
// made and left behind (a test that kills its agent without cleaning up
// after it), so that `make test` leaves none on a developer's machine.
// Helpers of owners that had one before the run (a developer's own agent)
// are left alone. What it removes it names, so the test that left it can
// be found.
func removeLeftHelpers(before map[string]string) {
	if before == nil {
		return
	}
	owners := map[string]bool{}
	for _, o := range before {
		owners[o] = true
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer c.Close()
	for id, owner := range helperContainers() {
		if _, ok := before[id]; ok || owners[owner] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		cancel()
		fmt.Fprintf(os.Stderr, "cmd/mesolite: a test left the helper container %.12s of %s behind; removed (%v)\n", id, owner, err)
	}
}
