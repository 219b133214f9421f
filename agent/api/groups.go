package api

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/marathon"
)

// groups serves /v2/groups[/{id}] as Marathon's GroupsResource does:
//
//	GET    /v2/groups[/{id}]                    the group, as its embeds ask
//	GET    /v2/groups/{id}/versions[/{v}]       its versions, one version
//	POST   /v2/groups[/{id}]                    create (409 if it exists)
//	PUT    /v2/groups[/{id}][?force][&dryRun]   change, roll back (version), scale (scaleBy)
//	PATCH  /v2/groups/{id}                      enforceRole (nothing else: Marathon 1.9)
//	DELETE /v2/groups[/{id}][?force]            remove with its apps and subgroups
func (s *Server) groups(w http.ResponseWriter, r *http.Request, rest string) {
	if strings.ContainsRune(rest, 0) {
		writeJSON(w, http.StatusBadRequest, msg("path may not contain a NUL byte"))
		return
	}
	switch {
	case strings.HasSuffix(rest, "/versions") || rest == "/versions":
		only(w, r, "GET", func(w http.ResponseWriter, r *http.Request) {
			s.groupVersions(w, strings.TrimSuffix(rest, "/versions"))
		})
		return
	case strings.Contains(rest, "/versions/"):
		i := strings.LastIndex(rest, "/versions/")
		only(w, r, "GET", func(w http.ResponseWriter, r *http.Request) {
			s.groupVersion(w, rest[:i], rest[i+len("/versions/"):])
		})
		return
	}
	id := marathon.CanonicalID(rest)
	q := r.URL.Query()
	switch r.Method {
	case "GET":
		s.showGroup(w, r, id)
	case "POST", "PUT":
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		opts := agent.GroupOptions{Create: r.Method == "POST", Force: boolParam(q, "force", false),
			DryRun: r.Method == "PUT" && boolParam(q, "dryRun", false)}
		res, err := s.a.ChangeGroup(r.Context(), id, body, opts)
		if err != nil {
			writeError(w, err)
			return
		}
		if opts.DryRun {
			writeJSON(w, http.StatusOK, map[string]any{"steps": renderPlanSteps(res.Steps)})
			return
		}
		w.Header().Set("Marathon-Deployment-Id", res.DeploymentID)
		status := http.StatusOK
		if opts.Create {
			w.Header().Set("Location", "/v2/groups"+strings.TrimSuffix(res.Group, "/"))
			status = http.StatusCreated
		}
		writeJSON(w, status, renderDeploymentResult(res.DeploymentResult))
	case "PATCH":
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		if err := s.a.PatchGroup(r.Context(), id, body); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	case "DELETE":
		res, err := s.a.DeleteGroup(r.Context(), id, boolParam(q, "force", false))
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Marathon-Deployment-Id", res.DeploymentID)
		writeJSON(w, http.StatusOK, renderDeploymentResult(res))
	default:
		methodNotAllowed(w)
	}
}

// groupEmbed is what a group's JSON holds (InfoEmbedResolver.resolveAppGroup):
// apps, subgroups and pods as "group.apps", "group.groups" and
// "group.pods" ask, all three when no embed is given (GroupsResource's
// defaultEmbeds); each app with what the "group.apps.*" embeds ask.
type groupEmbed struct {
	apps, groups, pods bool
	app                embed
}

func groupEmbeds(q url.Values) groupEmbed {
	e := groupEmbed{app: appEmbed(q, "group.apps.")}
	given := false
	for _, v := range q["embed"] {
		switch {
		case v == "group.groups":
			e.groups, given = true, true
		case v == "group.pods":
			e.pods, given = true, true
		case v == "group.apps", strings.HasPrefix(v, "group.apps."):
			e.apps, given = true, true
		}
	}
	if !given {
		e.apps, e.groups, e.pods = true, true, true
	}
	return e
}

func (s *Server) showGroup(w http.ResponseWriter, r *http.Request, id string) {
	snap := s.a.Snapshot()
	node := agent.BuildGroupTree(snap.Apps, snap.Groups).Find(id)
	if node == nil {
		writeJSON(w, http.StatusNotFound, msg("Group '"+id+"' does not exist"))
		return
	}
	writeJSON(w, http.StatusOK, renderGroup(node, groupEmbeds(r.URL.Query())))
}

// renderGroup renders a group as GroupInfo: id, dependencies and version
// always (the root of an empty Marathon has version 1970-01-01), apps,
// groups and pods as embedded.
func renderGroup(n *agent.GroupNode, e groupEmbed) map[string]any {
	deps := n.Dependencies
	if deps == nil {
		deps = []string{}
	}
	version := n.Version
	if version.IsZero() {
		version = time.Unix(0, 0)
	}
	out := map[string]any{"id": n.ID, "dependencies": deps, "version": marathon.FormatTime(version)}
	if e.apps {
		apps := make([]map[string]any, 0, len(n.Apps))
		for _, v := range n.Apps {
			apps = append(apps, renderApp(v, e.app))
		}
		out["apps"] = apps
	}
	if e.groups {
		groups := make([]map[string]any, 0, len(n.Groups))
		for _, g := range n.Groups {
			groups = append(groups, renderGroup(g, e))
		}
		out["groups"] = groups
	}
	if e.pods {
		out["pods"] = []any{}
	}
	return out
}

func (s *Server) groupVersions(w http.ResponseWriter, id string) {
	vs, err := s.a.GroupVersions(id)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = marathon.FormatTime(v)
	}
	// A bare array, as groups.raml gives it (apps' versions are an object).
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) groupVersion(w http.ResponseWriter, id, version string) {
	node, err := s.a.GroupVersion(id, version)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, node.Marathon())
}
