package api

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/marathon"
)

// groups serves GET /v2/groups[/{id}]: the tree of groups Marathon derives
// from app ids (/shop/db is app db in group /shop), read only. mesolite
// keeps apps, not groups, so a group exists while an app lives under it;
// changing groups (POST, PUT, DELETE) is refused with what to do instead.
func (s *Server) groups(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, msg(fmt.Sprintf(
			"mesolite serves groups read-only; %s each app under /v2/apps instead (e.g. POST /v2/apps with \"id\": \"/group/app\", DELETE /v2/apps/group/app)", r.Method)))
		return
	}
	canon := marathon.CanonicalID(id)
	emb := embeds(r.URL.Query())
	snap := s.a.Snapshot()
	root := buildGroups(snap.Apps, func(v *agent.AppView) map[string]any {
		return renderApp(v, embed{
			counts: true, deployments: true, tasks: emb["tasks"], lastTaskFailure: emb["lastTaskFailure"], mesolite: emb["mesolite"],
		})
	})
	g := root.find(canon)
	if g == nil {
		writeJSON(w, http.StatusNotFound, msg(fmt.Sprintf("Group '%s' does not exist", canon)))
		return
	}
	writeJSON(w, http.StatusOK, g.json())
}

// group is one node of the tree.
type group struct {
	id      string
	apps    []map[string]any
	groups  map[string]*group
	version time.Time
}

func newGroup(id string) *group { return &group{id: id, groups: map[string]*group{}} }

// buildGroups places every app under the groups of its id's path. A
// group's version is the newest of its apps' versions, as Marathon moves a
// group's version with every change beneath it.
func buildGroups(apps []*agent.AppView, render func(*agent.AppView) map[string]any) *group {
	root := newGroup("/")
	for _, v := range apps {
		parts := strings.Split(strings.TrimPrefix(v.ID, "/"), "/")
		g := root
		g.touch(v.Version)
		for i := range parts[:len(parts)-1] {
			gid := "/" + strings.Join(parts[:i+1], "/")
			sub := g.groups[gid]
			if sub == nil {
				sub = newGroup(gid)
				g.groups[gid] = sub
			}
			g = sub
			g.touch(v.Version)
		}
		g.apps = append(g.apps, render(v))
	}
	return root
}

func (g *group) touch(t time.Time) {
	if t.After(g.version) {
		g.version = t
	}
}

// find returns the group with the canonical id, or nil.
func (g *group) find(id string) *group {
	if g.id == id {
		return g
	}
	for gid, sub := range g.groups {
		if id == gid || strings.HasPrefix(id, gid+"/") {
			return sub.find(id)
		}
	}
	return nil
}

// json renders the group as Marathon does, subgroups sorted by id.
func (g *group) json() map[string]any {
	ids := make([]string, 0, len(g.groups))
	for id := range g.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	subs := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		subs = append(subs, g.groups[id].json())
	}
	apps := g.apps
	if apps == nil {
		apps = []map[string]any{}
	}
	out := map[string]any{
		"id": g.id, "apps": apps, "groups": subs, "pods": []any{}, "dependencies": []string{},
	}
	if !g.version.IsZero() {
		out["version"] = marathon.FormatTime(g.version)
	}
	return out
}
