package agent

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
)

// Groups. Marathon keeps a tree of groups; an app is in the group its id
// names (/shop/db is app db of group /shop). mesolite keeps the apps, and
// a record for each group that was created through /v2/groups or has
// dependencies (groupRecord); the tree is made from both. A group without
// a record exists while an app is under it, as in Marathon, where putting
// an app creates its groups.

// groupRecord is a group as stored.
type groupRecord struct {
	ID           string    `json:"id"`
	Dependencies []string  `json:"dependencies,omitempty"`
	Version      time.Time `json:"version"`
}

// groupSnapshot is a version of a group: its subtree as it was, for GET
// /v2/groups/{id}/versions/{version} and the rollback to it (PUT with
// "version").
type groupSnapshot struct {
	ID           string           `json:"id"`
	Dependencies []string         `json:"dependencies,omitempty"`
	Version      time.Time        `json:"version"`
	Apps         []*appRecord     `json:"apps"`
	Groups       []*groupSnapshot `json:"groups"`
}

// Store kinds of groups: the records, and the versions of groups as
// snapshots (key <safe group id>@<version>).
const (
	kindGroups        = "groups"
	kindGroupVersions = "groupversions"
)

// groupKey is a group's store key: its safe id, "_" for the root (no id
// can contain "_").
func groupKey(id string) string {
	if id == "/" {
		return "_"
	}
	return marathon.SafeID(id)
}

func parentGroup(id string) string { return marathon.ParentID(id) }

// under reports whether id is the group g or inside it.
func under(id, g string) bool {
	return g == "/" || id == g || strings.HasPrefix(id, g+"/")
}

// GroupView is a group record as the snapshot shows it.
type GroupView struct {
	ID           string
	Dependencies []string
	Version      time.Time
}

// GroupNode is one group of the tree: its apps and subgroups, sorted by
// id. A group's version is its record's, or, without one, the newest of
// the apps beneath it (Marathon moves a group's version with every change
// beneath it).
type GroupNode struct {
	ID           string
	Dependencies []string
	Version      time.Time
	Apps         []*AppView
	Groups       []*GroupNode
}

// BuildGroupTree makes the tree of groups of apps and group records. Apps
// being removed are not in it (they are gone from the API at once).
func BuildGroupTree(apps []*AppView, groups []GroupView) *GroupNode {
	nodes := map[string]*GroupNode{"/": {ID: "/"}}
	var node func(id string) *GroupNode
	node = func(id string) *GroupNode {
		if n := nodes[id]; n != nil {
			return n
		}
		n := &GroupNode{ID: id}
		nodes[id] = n
		p := node(parentGroup(id))
		p.Groups = append(p.Groups, n)
		return n
	}
	for _, g := range groups {
		n := node(g.ID)
		n.Dependencies, n.Version = g.Dependencies, g.Version
	}
	for _, v := range apps {
		if v.Deleting {
			continue
		}
		n := node(parentGroup(v.ID))
		n.Apps = append(n.Apps, v)
	}
	root := nodes["/"]
	root.settle()
	return root
}

// settle sorts the node's members and dates groups without a record.
func (n *GroupNode) settle() time.Time {
	sort.Slice(n.Apps, func(i, j int) bool { return n.Apps[i].ID < n.Apps[j].ID })
	sort.Slice(n.Groups, func(i, j int) bool { return n.Groups[i].ID < n.Groups[j].ID })
	newest := n.Version
	for _, a := range n.Apps {
		if a.Version.After(newest) {
			newest = a.Version
		}
	}
	for _, g := range n.Groups {
		if v := g.settle(); v.After(newest) {
			newest = v
		}
	}
	if n.Version.IsZero() {
		n.Version = newest
	}
	return newest
}

// Find returns the group with the canonical id, or nil.
func (n *GroupNode) Find(id string) *GroupNode {
	if n.ID == id {
		return n
	}
	for _, g := range n.Groups {
		if under(id, g.ID) {
			return g.Find(id)
		}
	}
	return nil
}

// TransitiveApps returns the apps of the group and its subgroups.
func (n *GroupNode) TransitiveApps() []*AppView {
	out := append([]*AppView(nil), n.Apps...)
	for _, g := range n.Groups {
		out = append(out, g.TransitiveApps()...)
	}
	return out
}

// Marathon renders the tree as a plan's original and target carry it.
func (n *GroupNode) Marathon() *marathon.Group {
	g := &marathon.Group{ID: n.ID, Apps: []map[string]any{}, Groups: []*marathon.Group{}, Pods: []any{},
		Dependencies: []string{}, Version: formatTime(n.Version)}
	if n.Dependencies != nil {
		g.Dependencies = n.Dependencies
	}
	for _, a := range n.Apps {
		g.Apps = append(g.Apps, marathon.PlainApp(a.Definition, a.Version, a.LastScalingAt, a.LastConfigChangeAt, true))
	}
	for _, sub := range n.Groups {
		g.Groups = append(g.Groups, sub.Marathon())
	}
	return g
}

// rootTree makes the root group as it is (the target of a deployment in
// progress) or, with original, as it was before d.
func (a *Agent) rootTree(d *deployment, original bool) *GroupNode {
	apps := make(map[string]*AppView, len(a.apps))
	for id, ap := range a.apps {
		if !ap.rec.Deleting && !ap.rec.Removing {
			apps[id] = recordView(&ap.rec, ap.doc)
		}
	}
	groups := make(map[string]GroupView, len(a.groups))
	for id, g := range a.groups {
		groups[id] = GroupView{ID: g.ID, Dependencies: g.Dependencies, Version: g.Version}
	}
	if original && d != nil {
		for id, prev := range d.Previous {
			delete(apps, id)
			if prev != nil {
				apps[id] = recordView(prev, nil)
			}
		}
		for id, prev := range d.PreviousGroups {
			delete(groups, id)
			if prev != nil {
				groups[id] = GroupView{ID: prev.ID, Dependencies: prev.Dependencies, Version: prev.Version}
			}
		}
	}
	av := make([]*AppView, 0, len(apps))
	for _, v := range apps {
		av = append(av, v)
	}
	gv := make([]GroupView, 0, len(groups))
	for _, g := range groups {
		gv = append(gv, g)
	}
	return BuildGroupTree(av, gv)
}

// recordView is the view of an app record, enough for a group tree: doc
// is the rendered definition when known, else the record's is decoded.
func recordView(rec *appRecord, doc map[string]any) *AppView {
	if doc == nil {
		doc = map[string]any{}
		if err := json.Unmarshal(rec.Definition, &doc); err != nil {
			doc = map[string]any{"id": rec.ID}
		}
	}
	return &AppView{ID: rec.ID, Definition: doc, Version: rec.Version, LastScalingAt: rec.LastScalingAt,
		LastConfigChangeAt: rec.LastConfigChangeAt}
}

// groupViews lists the group records for the snapshot, by id.
func (a *Agent) groupViews() []GroupView {
	out := make([]GroupView, 0, len(a.groups))
	for _, g := range a.groups {
		out = append(out, GroupView{ID: g.ID, Dependencies: g.Dependencies, Version: g.Version})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// snapshotGroup makes the version snapshot of a group as it is now.
func (a *Agent) snapshotGroup(id string, version time.Time) *groupSnapshot {
	tree := a.rootTree(nil, false).Find(id)
	if tree == nil {
		return nil
	}
	var snap func(n *GroupNode) *groupSnapshot
	snap = func(n *GroupNode) *groupSnapshot {
		s := &groupSnapshot{ID: n.ID, Dependencies: n.Dependencies, Version: n.Version, Apps: []*appRecord{}, Groups: []*groupSnapshot{}}
		for _, v := range n.Apps {
			if ap := a.apps[v.ID]; ap != nil {
				rec := ap.rec
				rec.LastTaskFailure, rec.Deleting, rec.Removing = nil, false, false
				s.Apps = append(s.Apps, &rec)
			}
		}
		for _, g := range n.Groups {
			s.Groups = append(s.Groups, snap(g))
		}
		return s
	}
	s := snap(tree)
	s.Version = version
	return s
}

func groupVersionKey(id string, v time.Time) string { return groupKey(id) + "@" + formatTime(v) }

// dropGroupVersions deletes the versions of the groups a finished
// deployment removed.
func (a *Agent) dropGroupVersions(d *deployment) {
	var gone []string
	for id, prev := range d.PreviousGroups {
		if _, kept := d.TargetGroups[id]; prev != nil && !kept && a.groups[id] == nil {
			gone = append(gone, groupKey(id)+"@")
		}
	}
	if d.Group != "" && a.rootTree(nil, false).Find(d.Group) == nil {
		gone = append(gone, groupKey(d.Group)+"@")
	}
	if len(gone) == 0 {
		return
	}
	keys, err := a.store.Keys(kindGroupVersions)
	if err != nil {
		a.log.Error().Err(err).Msg("list group versions")
		return
	}
	for _, k := range keys {
		for _, prefix := range gone {
			if strings.HasPrefix(k, prefix) {
				if err := a.store.Delete(kindGroupVersions, k); err != nil {
					// Going on is safe: a version left behind is listed only
					// if a group of that id is made again.
					a.log.Error().Err(err).Str("version", k).Msg("delete group version")
				}
			}
		}
	}
}
