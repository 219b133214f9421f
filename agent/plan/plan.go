// Package plan computes deployment plans as Marathon does: the steps that
// take a set of apps from what they are (original) to what they should be
// (target), each step a set of actions that may run together, the steps in
// the order the apps' dependencies give.
//
// Marathon's DeploymentPlan (core/deployment/DeploymentPlan.scala) makes
//
//  1. one step that stops every app the target no longer has,
//  2. one step that starts every new app with 0 instances,
//  3. then, for the apps that are new or changed, one step per dependency
//     layer: the apps whose longest dependency chain in the target has the
//     same length, shortest first, so an app comes after everything it
//     depends on. A new app or a change of instances only is a
//     ScaleApplication, any other change a RestartApplication.
//
// mesolite keeps that shape with one deliberate difference: what goes down
// goes down in reverse dependency order, before anything goes up. Stops and
// scale-downs come first, layer by layer with the dependents first (Marathon
// stops everything in one step and scales down in dependency order, which
// stops a database before the service that uses it). A group scaled to 0
// therefore stops web, then api, then db; scaled back it starts db, api,
// web.
//
// The package is pure: apps are ids, instance counts, a fingerprint of the
// configuration and resolved dependencies.
package plan

import (
	"fmt"
	"sort"
	"strings"
)

// Action names, as Marathon writes them in plans.
const (
	Start   = "StartApplication"
	Scale   = "ScaleApplication"
	Restart = "RestartApplication"
	Stop    = "StopApplication"
)

// App is what a plan needs of an app.
type App struct {
	ID        string
	Instances int
	// Config identifies the configuration apart from instances: apps whose
	// Config differs need a restart.
	Config string
	// Dependencies are the absolute ids of the apps this app depends on,
	// group dependencies already expanded to the groups' apps. Ids that are
	// not apps of the same set are ignored (the caller validates them).
	Dependencies []string
}

// Action is one thing a step does to one app.
type Action struct {
	Kind string `json:"action"`
	App  string `json:"app"`
}

// Step is a set of actions that may run together.
type Step []Action

// CycleError is a dependency cycle: Path starts and ends with the same app.
type CycleError struct {
	Path []string
}

func (e *CycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.Path, " -> ")
}

// Compute returns the steps that take original to target. Steps without
// actions are left out; a change that changes nothing has no steps. It
// fails only on a dependency cycle in the target or, for the apps being
// stopped, in the original.
func Compute(original, target map[string]App) ([]Step, error) {
	tdepth, err := depths(target)
	if err != nil {
		return nil, err
	}
	odepth, err := depths(original)
	if err != nil {
		return nil, err
	}
	var stops, downs, starts, ups []string
	for id, t := range target {
		o, existed := original[id]
		switch {
		case !existed:
			starts = append(starts, id)
			ups = append(ups, id)
		case o.Config != t.Config:
			ups = append(ups, id)
		case t.Instances < o.Instances:
			downs = append(downs, id)
		case t.Instances > o.Instances:
			ups = append(ups, id)
		}
	}
	for id := range original {
		if _, ok := target[id]; !ok {
			stops = append(stops, id)
		}
	}
	var steps []Step
	steps = append(steps, layers(stops, odepth, true, func(string) string { return Stop })...)
	steps = append(steps, layers(downs, tdepth, true, func(string) string { return Scale })...)
	if len(starts) > 0 {
		sort.Strings(starts)
		step := make(Step, len(starts))
		for i, id := range starts {
			step[i] = Action{Kind: Start, App: id}
		}
		steps = append(steps, step)
	}
	steps = append(steps, layers(ups, tdepth, false, func(id string) string {
		if o, ok := original[id]; ok && o.Config != target[id].Config {
			return Restart
		}
		return Scale
	})...)
	return steps, nil
}

// layers groups ids by dependency depth, one step per depth, shallowest
// first (or deepest first when reverse), actions sorted by app id.
func layers(ids []string, depth map[string]int, reverse bool, kind func(string) string) []Step {
	by := map[int][]string{}
	for _, id := range ids {
		by[depth[id]] = append(by[depth[id]], id)
	}
	ds := make([]int, 0, len(by))
	for d := range by {
		ds = append(ds, d)
	}
	sort.Ints(ds)
	if reverse {
		sort.Sort(sort.Reverse(sort.IntSlice(ds)))
	}
	steps := make([]Step, 0, len(ds))
	for _, d := range ds {
		group := by[d]
		sort.Strings(group)
		step := make(Step, len(group))
		for i, id := range group {
			step[i] = Action{Kind: kind(id), App: id}
		}
		steps = append(steps, step)
	}
	return steps
}

// depths returns, for every app, the length of its longest dependency
// chain (1 for an app that depends on nothing), as Marathon's
// runSpecsGroupedByLongestPath counts it.
func depths(apps map[string]App) (map[string]int, error) {
	const (
		unseen = iota
		visiting
		done
	)
	state := make(map[string]int, len(apps))
	depth := make(map[string]int, len(apps))
	var stack []string
	var visit func(id string) error
	visit = func(id string) error {
		switch state[id] {
		case done:
			return nil
		case visiting:
			i := len(stack) - 1
			for i > 0 && stack[i] != id {
				i--
			}
			path := append(append([]string{}, stack[i:]...), id)
			return &CycleError{Path: path}
		}
		state[id] = visiting
		stack = append(stack, id)
		d := 1
		deps := append([]string(nil), apps[id].Dependencies...)
		sort.Strings(deps)
		for _, dep := range deps {
			if _, ok := apps[dep]; !ok {
				continue
			}
			if err := visit(dep); err != nil {
				return err
			}
			d = max(d, depth[dep]+1)
		}
		stack = stack[:len(stack)-1]
		state[id] = done
		depth[id] = d
		return nil
	}
	ids := make([]string, 0, len(apps))
	for id := range apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := visit(id); err != nil {
			return nil, err
		}
	}
	return depth, nil
}

// Affected returns the apps a plan's actions name, sorted.
func Affected(steps []Step) []string {
	seen := map[string]bool{}
	for _, s := range steps {
		for _, a := range s {
			seen[a.App] = true
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// String renders steps for logs and test failures: "[Stop /a] [Scale /b /c]".
func String(steps []Step) string {
	var b strings.Builder
	for i, s := range steps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('[')
		for j, a := range s {
			if j > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s %s", strings.TrimSuffix(a.Kind, "Application"), a.App)
		}
		b.WriteByte(']')
	}
	return b.String()
}
