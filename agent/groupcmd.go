package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/agent/plan"
)

// GroupOptions say how ChangeGroup treats its body.
type GroupOptions struct {
	// Create: POST, the group must not exist yet.
	Create bool
	// Force: replace the deployments that hold the group's apps.
	Force bool
	// DryRun: compute the plan and change nothing.
	DryRun bool
}

// GroupResult is what a group change started (or, dry run, would start).
type GroupResult struct {
	DeploymentResult
	// Group is the group the change is about.
	Group string
	// Steps are the deployment's steps.
	Steps []plan.Step
}

// ChangeGroup creates or changes the group id from a group body, as
// Marathon's GroupsResource and GroupApiService do: a body with version
// rolls the group back to that version, one with scaleBy scales every app
// beneath it, any other replaces the apps, subgroups and dependencies it
// gives (an app or subgroup not in a given list is removed) and keeps what
// it does not give. Relative ids are resolved against the group they are
// in. The change is one deployment, its steps in dependency order.
//
// Errors: marathon's *SyntaxError and *ValidationError (422 with paths:
// bad apps, ids outside their group, missing dependencies, cycles),
// ErrConflict (the group exists on create, an app has the group's id, an
// app and a group share an id), ErrNotFound (an unknown version),
// ErrLocked.
func (a *Agent) ChangeGroup(ctx context.Context, id string, body []byte, opts GroupOptions) (GroupResult, error) {
	base, err := marathon.ValidateGroupID("/id", id)
	if err != nil {
		return GroupResult{}, err
	}
	gu, err := marathon.DecodeGroupUpdate(body)
	if err != nil {
		return GroupResult{}, err
	}
	gid := base
	if gu.ID != nil {
		gid = marathon.ResolveID(*gu.ID, base)
		if gid, err = marathon.ValidateGroupID("/id", gid); err != nil {
			return GroupResult{}, err
		}
	}
	return call(a, ctx, func() (GroupResult, error) {
		ch, err := a.groupChange(gid, gu, opts.Create)
		if err != nil {
			return GroupResult{}, err
		}
		d, err := a.deployChange(ch, opts.Force, opts.DryRun)
		if err != nil {
			return GroupResult{}, err
		}
		return GroupResult{DeploymentResult{DeploymentID: d.ID, Version: d.Version}, gid, d.Plan}, nil
	})
}

// groupChange builds the change a group body makes of group gid.
func (a *Agent) groupChange(gid string, gu *marathon.GroupUpdate, create bool) (*change, error) {
	tree := a.rootTree(nil, false)
	if _, isApp := a.visibleApps()[gid]; isApp {
		return nil, errorf(ErrConflict, "An app with the path %s already exists.", gid)
	}
	if create && (tree.Find(gid) != nil || a.groups[gid] != nil) {
		return nil, errorf(ErrConflict, "Group %s is already created. Use PUT to change this group.", gid)
	}
	ch := newChange(gid)
	ch.snapshot = true
	switch {
	case gu.Version != nil:
		if err := a.rollbackChange(ch, gid, *gu.Version); err != nil {
			return nil, err
		}
	case gu.ScaleBy != nil:
		if err := a.scaleChange(ch, tree.Find(gid), *gu.ScaleBy); err != nil {
			return nil, err
		}
	default:
		if err := a.updateChange(ch, tree, gid, gu); err != nil {
			return nil, err
		}
	}
	return ch, a.clashes(ch)
}

// updateChange applies a group body to group gid and its subgroups.
func (a *Agent) updateChange(ch *change, tree *GroupNode, gid string, gu *marathon.GroupUpdate) error {
	node := tree.Find(gid)
	rec := &groupRecord{ID: gid}
	if g := a.groups[gid]; g != nil {
		rec.Dependencies = g.Dependencies
	}
	if gu.DependenciesGiven {
		rec.Dependencies = nil
		for _, d := range gu.Dependencies {
			// A group's dependencies are relative to the group itself, as
			// Marathon's group update resolves them: on group /p/s,
			// "../db" is /p/db.
			rec.Dependencies = append(rec.Dependencies, marathon.ResolveID(d, gid))
		}
	}
	ch.groups[gid] = rec
	if gu.AppsGiven {
		if err := a.groupApps(ch, node, gid, gu); err != nil {
			return err
		}
	}
	if !gu.GroupsGiven {
		return nil
	}
	given := map[string]bool{}
	for i, sub := range gu.Groups {
		p := fmt.Sprintf("%s/groups(%d)", gu.Path, i)
		if sub.ID == nil {
			return &marathon.ValidationError{Details: []marathon.Detail{{Path: p + "/id", Errors: []string{"a group needs an id"}}}}
		}
		sid := marathon.ResolveID(*sub.ID, gid)
		if _, err := marathon.ValidateGroupID(p+"/id", sid); err != nil {
			return err
		}
		if parentGroup(sid) != gid || given[sid] {
			return &marathon.ValidationError{Details: []marathon.Detail{{Path: p + "/id", Errors: []string{
				fmt.Sprintf("identifier %s is not a child of %s, or given twice. Hint: use relative paths.", sid, gid)}}}}
		}
		given[sid] = true
		if err := a.updateChange(ch, tree, sid, sub); err != nil {
			return err
		}
	}
	if node != nil {
		for _, sub := range node.Groups {
			if !given[sub.ID] {
				a.removeSubtree(ch, sub)
			}
		}
	}
	return nil
}

// groupApps makes the apps of a body the apps of group gid: each parsed
// with its id (and dependencies) resolved against the group, the group's
// other apps removed.
func (a *Agent) groupApps(ch *change, node *GroupNode, gid string, gu *marathon.GroupUpdate) error {
	given := map[string]bool{}
	for i, doc := range gu.Apps {
		p := fmt.Sprintf("%s/apps(%d)", gu.Path, i)
		raw, _ := doc["id"].(string)
		if raw == "" {
			return &marathon.ValidationError{Details: []marathon.Detail{{Path: p + "/id", Errors: []string{"An app id is required: set \"id\", relative to its group (\"db\") or absolute"}}}}
		}
		id := marathon.ResolveID(raw, gid)
		if parentGroup(id) != gid || given[id] {
			return &marathon.ValidationError{Details: []marathon.Detail{{Path: p + "/id", Errors: []string{
				fmt.Sprintf("identifier %s is not a child of %s, or given twice. Hint: use relative paths.", id, gid)}}}}
		}
		given[id] = true
		doc = maps.Clone(doc)
		doc["id"] = id
		if deps, ok := doc["dependencies"].([]any); ok {
			resolved := make([]any, len(deps))
			for j, d := range deps {
				if s, ok := d.(string); ok {
					resolved[j] = marathon.ResolveID(s, gid)
				} else {
					resolved[j] = d
				}
			}
			doc["dependencies"] = resolved
		}
		spec, err := marathon.ParseObject(doc, a.opts)
		if err != nil {
			return marathon.PrefixDetails(err, p)
		}
		ch.apps[id] = &appTarget{spec: spec, doc: doc, path: p}
	}
	if node != nil {
		for _, v := range node.Apps {
			if !given[v.ID] {
				ch.removed[v.ID] = true
			}
		}
	}
	return nil
}

// removeSubtree removes a group, its apps and its subgroups.
func (a *Agent) removeSubtree(ch *change, n *GroupNode) {
	for _, v := range n.TransitiveApps() {
		ch.removed[v.ID] = true
		delete(ch.apps, v.ID)
	}
	for id := range a.groups {
		if under(id, n.ID) {
			ch.dropped[id] = true
			delete(ch.groups, id)
		}
	}
}

// scaleChange scales every app beneath a group by a factor, rounding up as
// Marathon does (ceil(instances × scaleBy)). Apps with persistent volumes
// keep their reservations when scaled down, and take the stopped ones back
// first when scaled up, as app start does.
func (a *Agent) scaleChange(ch *change, node *GroupNode, factor float64) error {
	if node == nil {
		return errorf(ErrNotFound, "Group '%s' does not exist", ch.group)
	}
	ch.snapshot = true
	for _, v := range node.TransitiveApps() {
		ap := a.apps[v.ID]
		doc := maps.Clone(ap.doc)
		n := int(math.Ceil(float64(ap.spec.Instances) * factor))
		doc["instances"] = n
		spec := ap.spec.Clone()
		spec.Instances = n
		ch.apps[v.ID] = &appTarget{spec: spec, doc: doc, path: "/scaleBy"}
	}
	return nil
}

// rollbackChange puts a group back to one of its versions: its apps,
// subgroups and dependencies as they were then; apps and groups made since
// are removed.
func (a *Agent) rollbackChange(ch *change, gid, version string) error {
	t, err := time.Parse(time.RFC3339Nano, version)
	var snap groupSnapshot
	ok := false
	if err == nil {
		ok, err = a.store.Get(kindGroupVersions, groupVersionKey(gid, t), &snap)
		if err != nil {
			return err
		}
	}
	if !ok {
		// GroupApiService's IllegalArgumentException: 422 with a message.
		if err == nil {
			version = marathon.FormatTime(t)
		}
		return errorf(ErrUnprocessable, "Group %s not available in version %s", gid, version)
	}
	if node := a.rootTree(nil, false).Find(gid); node != nil {
		a.removeSubtree(ch, node)
	}
	var put func(s *groupSnapshot) error
	put = func(s *groupSnapshot) error {
		delete(ch.dropped, s.ID)
		ch.groups[s.ID] = &groupRecord{ID: s.ID, Dependencies: s.Dependencies}
		for _, rec := range s.Apps {
			doc, err := marathon.DecodeObject(rec.Definition)
			if err != nil {
				return err
			}
			spec, err := marathon.ParseObject(doc, a.opts)
			if err != nil {
				return marathon.PrefixDetails(err, "/version")
			}
			delete(ch.removed, rec.ID)
			ch.apps[rec.ID] = &appTarget{spec: spec, doc: doc, path: "/version"}
		}
		for _, g := range s.Groups {
			if err := put(g); err != nil {
				return err
			}
		}
		return nil
	}
	return put(&snap)
}

// clashes refuses a change that would give an app and a group the same id:
// after the change, no app of the change may be a group (given, or implied
// as the ancestor of an app or a group), and no group the change gives or
// implies may be an app. A clash that was there before is left alone.
func (a *Agent) clashes(ch *change) error {
	apps := map[string]bool{}
	for id := range a.visibleApps() {
		if !ch.removed[id] {
			apps[id] = true
		}
	}
	for id := range ch.apps {
		apps[id] = true
	}
	// Every group of the result, with something it holds for the message;
	// mine: the groups the change gives or implies.
	groups, mine := map[string]string{}, map[string]bool{}
	imply := func(id string, byChange bool) {
		for g := parentGroup(id); g != "/"; g = parentGroup(g) {
			if _, ok := groups[g]; !ok {
				groups[g] = id
			}
			mine[g] = mine[g] || byChange
		}
	}
	for g := range a.groups {
		if !ch.dropped[g] {
			groups[g] = ""
			imply(g, false)
		}
	}
	for g := range ch.groups {
		groups[g], mine[g] = "", true
		imply(g, true)
	}
	for id := range apps {
		imply(id, ch.apps[id] != nil)
	}
	for _, id := range sortedKeys(apps) {
		holds, isGroup := groups[id]
		switch {
		case !isGroup:
		case ch.apps[id] == nil && mine[id]:
			return errorf(ErrConflict, "An app with the path %s already exists.", id)
		case ch.apps[id] == nil:
			// a clash from before the change
		case holds != "":
			return errorf(ErrConflict, "A group with the path %s already exists (it holds %s): an app may not have a group's id.", id, holds)
		default:
			return errorf(ErrConflict, "A group with the path %s already exists: an app may not have a group's id.", id)
		}
	}
	return nil
}

// DeleteGroup removes a group with its apps and subgroups ("/" removes
// everything), in one deployment: the apps stop in reverse dependency
// order; their volumes are destroyed once the deployment succeeds, so a
// rollback keeps them.
func (a *Agent) DeleteGroup(ctx context.Context, id string, force bool) (DeploymentResult, error) {
	gid, err := marathon.ValidateGroupID("/id", id)
	if err != nil {
		return DeploymentResult{}, err
	}
	return call(a, ctx, func() (DeploymentResult, error) {
		node := a.rootTree(nil, false).Find(gid)
		if node == nil && a.groups[gid] == nil {
			return DeploymentResult{}, errorf(ErrNotFound, "Group '%s' does not exist", gid)
		}
		ch := newChange(gid)
		if node != nil {
			a.removeSubtree(ch, node)
		}
		for g := range a.groups {
			if under(g, gid) {
				ch.dropped[g] = true
			}
		}
		d, err := a.deployChange(ch, force, false)
		if err != nil {
			return DeploymentResult{}, err
		}
		return DeploymentResult{DeploymentID: d.ID, Version: d.Version}, nil
	})
}

// PatchGroup is PATCH /v2/groups/{id}: Marathon 1.9's partial update of a
// top-level group, whose only field is enforceRole. mesolite has no roles
// to enforce: false (or nothing) is accepted and changes nothing, true is
// refused with what to do.
func (a *Agent) PatchGroup(ctx context.Context, id string, body []byte) error {
	gid, err := marathon.ValidateGroupID("/id", id)
	if err != nil {
		return err
	}
	gu, err := marathon.DecodeGroupUpdate(body)
	if err != nil {
		return err
	}
	if gu.EnforceRole != nil && *gu.EnforceRole {
		return &marathon.ValidationError{Details: []marathon.Detail{{Path: "/enforceRole", Errors: []string{
			"mesolite has no Mesos roles to enforce: leave enforceRole out or false"}}}}
	}
	_, err = call(a, ctx, func() (struct{}, error) {
		if a.rootTree(nil, false).Find(gid) == nil && a.groups[gid] == nil {
			return struct{}{}, errorf(ErrNotFound, "Group '%s' does not exist", gid)
		}
		return struct{}{}, nil
	})
	return err
}

// GroupVersions lists a group's versions, newest first.
func (a *Agent) GroupVersions(id string) ([]time.Time, error) {
	gid := marathon.CanonicalID(id)
	if BuildGroupTree(a.Snapshot().Apps, a.Snapshot().Groups).Find(gid) == nil {
		return nil, errorf(ErrNotFound, "Group '%s' does not exist", gid)
	}
	keys, err := a.store.Keys(kindGroupVersions)
	if err != nil {
		return nil, err
	}
	out := []time.Time{}
	for _, k := range keys {
		if v, ok := strings.CutPrefix(k, groupKey(gid)+"@"); ok {
			if t, err := time.Parse(timeFormat, v); err == nil {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].After(out[j]) })
	return out, nil
}

// GroupVersion returns a group as it was at a version.
func (a *Agent) GroupVersion(id, version string) (*GroupNode, error) {
	gid := marathon.CanonicalID(id)
	t, err := time.Parse(time.RFC3339Nano, version)
	var snap groupSnapshot
	ok := false
	if err == nil {
		if ok, err = a.store.Get(kindGroupVersions, groupVersionKey(gid, t), &snap); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, errorf(ErrNotFound, "Group '%s' does not exist in version %s", gid, version)
	}
	var node func(s *groupSnapshot) *GroupNode
	node = func(s *groupSnapshot) *GroupNode {
		n := &GroupNode{ID: s.ID, Dependencies: s.Dependencies, Version: s.Version}
		for _, rec := range s.Apps {
			n.Apps = append(n.Apps, recordView(rec, nil))
		}
		for _, g := range s.Groups {
			n.Groups = append(n.Groups, node(g))
		}
		return n
	}
	return node(&snap), nil
}

// UpdateApps changes a list of apps at once (PUT and PATCH /v2/apps), in
// one deployment, as Marathon's AppsResource.replaceMultiple does. Each
// item needs its id; with partial, an item changes only the fields it
// gives of an existing app. With create, an unknown app is created.
func (a *Agent) UpdateApps(ctx context.Context, body []byte, partial, create, force bool) (DeploymentResult, error) {
	items, err := decodeAppList(body)
	if err != nil {
		return DeploymentResult{}, err
	}
	return call(a, ctx, func() (DeploymentResult, error) {
		ch := newChange("")
		for i, upd := range items {
			p := fmt.Sprintf("/(%d)", i)
			id := marathon.CanonicalID(upd["id"].(string))
			doc := upd
			ap := a.visibleApps()[id]
			switch {
			case ap != nil && partial:
				doc = mergeUpdate(ap.doc, upd)
			case ap == nil && !create:
				return DeploymentResult{}, appNotFound(id)
			}
			doc["id"] = id
			spec, err := marathon.ParseObject(doc, a.opts)
			if err != nil {
				return DeploymentResult{}, marathon.PrefixDetails(err, p)
			}
			if ch.apps[id] != nil {
				return DeploymentResult{}, &marathon.ValidationError{Details: []marathon.Detail{{Path: p + "/id", Errors: []string{id + " is given twice"}}}}
			}
			ch.apps[id] = &appTarget{spec: spec, doc: doc, path: p}
		}
		d, err := a.deployChange(ch, force, false)
		if err != nil {
			return DeploymentResult{}, err
		}
		return DeploymentResult{DeploymentID: d.ID, Version: d.Version}, nil
	})
}

// decodeAppList reads the body of PUT /v2/apps: an array of app objects,
// each with an id.
func decodeAppList(body []byte) ([]map[string]any, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, &marathon.SyntaxError{Msg: "expected an array of apps: " + err.Error()}
	}
	out := make([]map[string]any, 0, len(raw))
	for i, r := range raw {
		doc, err := marathon.DecodeObject(r)
		if err != nil {
			return nil, err
		}
		for k, v := range doc {
			if v == nil {
				delete(doc, k) // a null field is a field not given
			}
		}
		if id, _ := doc["id"].(string); id == "" {
			return nil, &marathon.ValidationError{Details: []marathon.Detail{{Path: fmt.Sprintf("/(%d)/id", i), Errors: []string{"each app of the list needs its id"}}}}
		}
		out = append(out, doc)
	}
	return out, nil
}
