package conformance

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// route is a request's endpoint: its pattern, as the report names it.
type route struct {
	name   string // e.g. "GET /v2/apps/{id}"
	method string
	path   string // the pattern without the method
}

// matchRoute maps a request to its route the way agent/api routes it.
// App ids cannot end in restart, tasks or versions, so the suffixes are
// unambiguous.
func matchRoute(method, p string) route {
	if rest, ok := strings.CutPrefix(p, "/service/marathon"); ok && (rest == "" || rest[0] == '/') {
		p = rest
		if p == "" {
			p = "/"
		}
	}
	pat := "unknown"
	switch {
	case p == "/ping", p == "/v2/info", p == "/v2/leader", p == "/v2/tasks", p == "/v2/tasks/delete",
		p == "/v2/deployments", p == "/v2/queue", p == "/v2/events", p == "/mesolite/v1/volumes", p == "/mesolite/v1/status",
		p == "/mesolite/v1/vips":
		pat = p
	case p == "/metrics", p == "/", strings.HasPrefix(p, "/ui/"), p == "/ui":
		// Not JSON: Prometheus's metrics, the dashboard's files.
		pat = "other"
	case p == "/v2/apps" || p == "/v2/apps/":
		pat = "/v2/apps"
	case strings.HasPrefix(p, "/v2/apps/"):
		rest := strings.TrimPrefix(p, "/v2/apps")
		switch {
		case strings.HasSuffix(rest, "/restart"):
			pat = "/v2/apps/{id}/restart"
		case strings.HasSuffix(rest, "/tasks"):
			pat = "/v2/apps/{id}/tasks"
		case strings.Contains(rest, "/tasks/"):
			pat = "/v2/apps/{id}/tasks/{taskId}"
		case strings.HasSuffix(rest, "/versions"):
			pat = "/v2/apps/{id}/versions"
		case strings.Contains(rest, "/versions/"):
			pat = "/v2/apps/{id}/versions/{version}"
		default:
			pat = "/v2/apps/{id}"
		}
	case strings.HasPrefix(p, "/v2/deployments/"):
		pat = "/v2/deployments/{id}"
	case strings.HasPrefix(p, "/v2/queue/") && strings.HasSuffix(p, "/delay"):
		pat = "/v2/queue/{id}/delay"
	case p == "/v2/groups" || strings.HasPrefix(p, "/v2/groups/"):
		rest := strings.TrimPrefix(p, "/v2/groups")
		switch {
		case strings.HasSuffix(rest, "/versions"):
			pat = "/v2/groups/{id}/versions"
		case strings.Contains(rest, "/versions/"):
			pat = "/v2/groups/{id}/versions/{version}"
		default:
			pat = "/v2/groups/{id}"
		}
	case p == "/files/read" || p == "/files/read.json":
		pat = "/files/read"
	case strings.HasPrefix(p, "/mesolite/v1/volumes/"):
		pat = "/mesolite/v1/volumes/{id}"
	}
	if method == http.MethodHead {
		method = http.MethodGet
	}
	return route{name: method + " " + pat, method: method, path: pat}
}

// expect returns what an answer of the route must look like.
func (c *Checker) expect(rt route, r Response) (expectation, error) {
	if r.Status >= 400 {
		return c.errorExpectation(r.Status)
	}
	if r.Status == http.StatusNoContent {
		return expectation{empty: true}, nil
	}
	q := r.Query
	if q == nil {
		q = url.Values{}
	}
	if rt.path == "/ping" {
		return expectation{text: "pong\n", contentType: "text/plain"}, nil
	}
	if rt.path == "/v2/events" {
		return expectation{stream: true}, nil
	}
	key, gen, err := c.okSchema(rt, r.Status, q)
	if err != nil {
		return expectation{}, err
	}
	if key == "" {
		return expectation{empty: true}, nil
	}
	s, err := c.schema(key, gen)
	if err != nil {
		return expectation{}, err
	}
	return expectation{schema: s}, nil
}

// errorExpectation is the body of a failed request: Marathon's error
// shapes by status.
func (c *Checker) errorExpectation(status int) (expectation, error) {
	var def string
	switch status {
	case http.StatusBadRequest:
		def = "badRequest"
	case http.StatusUnsupportedMediaType:
		// Jersey's 415 reaches MarathonExceptionMapper as a
		// WebApplicationException: {"message": "Unsupported Media Type"}.
		// mesolite adds what to send in details (a string), as a 400's.
		def = "badRequest"
	case http.StatusConflict:
		def = "conflict"
	case http.StatusUnprocessableEntity:
		def = "invalid"
	default:
		def = "error"
	}
	s, err := c.schema("common.json#/$defs/"+def, nil)
	return expectation{schema: s}, err
}

// okSchema returns the key of a successful answer's schema and, when the
// schema depends on the request, the document to generate it from. An
// empty key means the answer has no body.
func (c *Checker) okSchema(rt route, status int, q url.Values) (string, map[string]any, error) {
	deploymentResult := "common.json#/$defs/deploymentResult"
	scale := boolParam(q, "scale")
	switch rt.method + " " + rt.path {
	case "GET /v2/info":
		return "misc.json#/$defs/info", nil, nil
	case "GET /v2/leader":
		return "misc.json#/$defs/leader", nil, nil
	case "GET /v2/apps":
		e := appEmbeds(q, "apps.", "app.")
		e.counts, e.deployments = true, true
		k, doc := appsList(e, viRequired)
		return wrap("apps", k, doc)
	case "POST /v2/apps":
		// AppsResource.create: the app with zero counts and its deployment;
		// a new app's versionInfo is OnlyVersion, which is not written.
		return appDoc(embeds{counts: true, deployments: true}, viForbidden)
	case "PUT /v2/apps", "PATCH /v2/apps", "PUT /v2/apps/{id}", "PATCH /v2/apps/{id}", "DELETE /v2/apps/{id}",
		"POST /v2/apps/{id}/restart", "POST /v2/groups/{id}", "DELETE /v2/groups/{id}":
		return deploymentResult, nil, nil
	case "PATCH /v2/groups/{id}":
		// Marathon 1.9's patchGroup answers ok() with no body.
		return "", nil, nil
	case "PUT /v2/groups/{id}":
		if boolParam(q, "dryRun") {
			return "deployment.json#/$defs/dryRun", nil, nil
		}
		return deploymentResult, nil, nil
	case "GET /v2/apps/{id}":
		// AppsResource.show always embeds counts, tasks, lastTaskFailure
		// and deployments ("deprecated. For compatibility.").
		e := appEmbeds(q, "app.", "apps.")
		e.counts, e.tasks, e.lastTaskFailure, e.deployments = true, true, true, true
		k, doc := appRef(e, viRequired)
		return wrap("app", k, doc)
	case "GET /v2/apps/{id}/tasks", "GET /v2/tasks":
		return taskList(q)
	case "DELETE /v2/apps/{id}/tasks", "POST /v2/tasks/delete":
		if scale {
			return deploymentResult, nil, nil
		}
		return taskList(q)
	case "DELETE /v2/apps/{id}/tasks/{taskId}":
		if scale {
			return deploymentResult, nil, nil
		}
		return singleTask(q)
	case "GET /v2/apps/{id}/versions":
		return "misc.json#/$defs/appVersions", nil, nil
	case "GET /v2/apps/{id}/versions/{version}":
		return appDoc(embeds{}, viOptional)
	case "GET /v2/deployments":
		return "deployment.json#/$defs/stepInfoList", nil, nil
	case "DELETE /v2/deployments/{id}":
		if status == http.StatusAccepted {
			// Forced: the deployment is stopped, no rollback is started.
			return "", nil, nil
		}
		return deploymentResult, nil, nil
	case "GET /v2/queue":
		return queue(q)
	case "GET /v2/groups/{id}":
		return groupDoc(q)
	case "GET /v2/groups/{id}/versions":
		return "group.json#/$defs/versions", nil, nil
	case "GET /v2/groups/{id}/versions/{version}":
		return "deployment.json#/$defs/planGroup", nil, nil
	case "GET /files/read":
		return "misc.json#/$defs/filesRead", nil, nil
	case "GET /mesolite/v1/volumes":
		return "misc.json#/$defs/volumes", nil, nil
	case "DELETE /mesolite/v1/volumes/{id}":
		return "misc.json#/$defs/volumeRemoved", nil, nil
	case "POST /mesolite/v1/volumes/{id}": // .../release
		return "misc.json#/$defs/volumeReleased", nil, nil
	case "GET /mesolite/v1/status":
		return "misc.json#/$defs/status", nil, nil
	case "GET /mesolite/v1/vips":
		return "misc.json#/$defs/vips", nil, nil
	}
	return "", nil, fmt.Errorf("no answer with status %d is known for %s", status, rt.name)
}

// embeds are the AppInfo parts a request asks for (InfoEmbedResolver),
// and mesolite's own fields.
type embeds struct {
	counts, deployments, readiness, tasks, lastTaskFailure, taskStats bool
	mesolite                                                          bool
}

func (e embeds) key() string {
	var b strings.Builder
	for _, f := range []struct {
		on   bool
		name string
	}{{e.counts, "c"}, {e.deployments, "d"}, {e.readiness, "r"}, {e.tasks, "t"}, {e.lastTaskFailure, "l"}, {e.taskStats, "s"}, {e.mesolite, "m"}} {
		if f.on {
			b.WriteString(f.name)
		}
	}
	return b.String()
}

// mesoliteAsked reports whether the request asked for mesolite's fields:
// ?embed=mesolite, with or without an app prefix.
func mesoliteAsked(q url.Values) bool {
	for _, v := range q["embed"] {
		if v == "mesolite" || strings.HasSuffix(v, ".mesolite") {
			return true
		}
	}
	return false
}

// appEmbeds resolves the embed parameters with one of the prefixes, as
// Marathon's InfoEmbedResolver does: unknown ones are ignored, failures
// means tasks and lastTaskFailure.
func appEmbeds(q url.Values, prefixes ...string) embeds {
	e := embeds{mesolite: mesoliteAsked(q)}
	for _, v := range q["embed"] {
		for _, p := range prefixes {
			name, ok := strings.CutPrefix(v, p)
			if !ok {
				continue
			}
			switch name {
			case "counts":
				e.counts = true
			case "deployments":
				e.deployments = true
			case "readiness":
				e.readiness = true
			case "tasks":
				e.tasks = true
			case "lastTaskFailure":
				e.lastTaskFailure = true
			case "failures":
				e.lastTaskFailure, e.tasks = true, true
			case "taskStats":
				e.taskStats = true
			}
		}
	}
	return e
}

// versionInfo says whether an app carries versionInfo.
type versionInfo string

const (
	viRequired  versionInfo = "vi"
	viForbidden versionInfo = "novi"
	viOptional  versionInfo = "anyvi"
)

// appSchema is an app with the AppInfo fields of e, closed.
func appSchema(e embeds, vi versionInfo) map[string]any {
	props := map[string]any{}
	required := []string{}
	add := func(on, req bool, fields map[string]any) {
		if !on {
			return
		}
		for k, v := range fields {
			props[k] = v
			if req {
				required = append(required, k)
			}
		}
	}
	count := ref("common.json#/$defs/count")
	add(e.counts, true, map[string]any{"tasksStaged": count, "tasksRunning": count, "tasksHealthy": count, "tasksUnhealthy": count})
	add(e.deployments, true, map[string]any{"deployments": map[string]any{"type": "array", "items": ref("common.json#/$defs/identifiable")}})
	add(e.readiness, true, map[string]any{"readinessCheckResults": map[string]any{"type": "array", "items": ref("deployment.json#/$defs/readinessCheckResult")}})
	task := ref("task.json#/$defs/task")
	if e.mesolite {
		task = ref("task.json#/$defs/mesoliteTask")
	}
	add(e.tasks, true, map[string]any{"tasks": map[string]any{"type": "array", "items": task}})
	// AppInfo has lastTaskFailure only when the app has one.
	add(e.lastTaskFailure, false, map[string]any{"lastTaskFailure": ref("app.json#/$defs/taskFailure")})
	add(e.taskStats, true, map[string]any{"taskStats": ref("app.json#/$defs/taskStats")})
	// mesolite's own: why an instance of the app cannot be placed.
	add(e.mesolite, false, map[string]any{
		"waitingReason": map[string]any{"type": "string", "minLength": 1},
		"vips":          map[string]any{"type": "array", "items": ref("misc.json#/$defs/vip")},
	})
	switch vi {
	case viRequired:
		required = append(required, "versionInfo")
	case viForbidden:
		props["versionInfo"] = false
	}
	sort.Strings(required)
	return map[string]any{
		"$ref":                  base + "app.json#/$defs/appFields",
		"properties":            props,
		"required":              required,
		"unevaluatedProperties": false,
	}
}

func appDoc(e embeds, vi versionInfo) (string, map[string]any, error) {
	return "app-" + e.key() + "-" + string(vi), appSchema(e, vi), nil
}

func appRef(e embeds, vi versionInfo) (string, map[string]any) {
	k, doc, _ := appDoc(e, vi)
	return k, doc
}

func appsList(e embeds, vi versionInfo) (string, map[string]any) {
	k, doc := appRef(e, vi)
	return "list-" + k, map[string]any{"type": "array", "items": doc}
}

// wrap closes a value in an object with one field: {"app": …}, {"apps": […]}.
func wrap(field, key string, doc map[string]any) (string, map[string]any, error) {
	return field + "-" + key, map[string]any{
		"type":                 "object",
		"properties":           map[string]any{field: doc},
		"required":             []string{field},
		"additionalProperties": false,
	}, nil
}

func taskItem(q url.Values) (string, map[string]any) {
	if mesoliteAsked(q) {
		return "mtask", ref("task.json#/$defs/mesoliteTask")
	}
	return "task", ref("task.json#/$defs/task")
}

func taskList(q url.Values) (string, map[string]any, error) {
	k, item := taskItem(q)
	return wrap("tasks", "list-"+k, map[string]any{"type": "array", "items": item})
}

func singleTask(q url.Values) (string, map[string]any, error) {
	k, item := taskItem(q)
	return wrap("task", k, item)
}

// queue is GET /v2/queue: QueueApp items; lastUnusedOffers only when
// asked for (?embed=lastUnusedOffers), mesolite's waitingReason only with
// ?embed=mesolite.
func queue(q url.Values) (string, map[string]any, error) {
	props := map[string]any{}
	key := "queue"
	for _, v := range q["embed"] {
		if v == "lastUnusedOffers" {
			props["lastUnusedOffers"] = map[string]any{"type": "array"}
			key += "-offers"
		}
	}
	if mesoliteAsked(q) {
		props["waitingReason"] = map[string]any{"type": "string", "minLength": 1}
		key += "-m"
	}
	item := map[string]any{
		"$ref":                  base + "misc.json#/$defs/queueFields",
		"properties":            props,
		"unevaluatedProperties": false,
	}
	return wrap("queue", key, map[string]any{"type": "array", "items": item})
}

// groupDoc is GET /v2/groups[/{id}] with its embeds: group.groups,
// group.apps, group.pods and group.apps.<app embed>; without any, all
// three (GroupsResource's defaultEmbeds).
func groupDoc(q url.Values) (string, map[string]any, error) {
	var apps, groups, pods, given bool
	for _, v := range q["embed"] {
		switch {
		case v == "group.groups":
			groups, given = true, true
		case v == "group.pods":
			pods, given = true, true
		case v == "group.apps", strings.HasPrefix(v, "group.apps."):
			apps, given = true, true
		}
	}
	if !given {
		apps, groups, pods = true, true, true
	}
	e := appEmbeds(q, "group.apps.")
	props := map[string]any{}
	var required []string
	key := "group-" + e.key()
	if apps {
		_, app := appRef(e, viRequired)
		props["apps"] = map[string]any{"type": "array", "items": app}
		required = append(required, "apps")
		key += "-a"
	} else {
		props["apps"] = false
	}
	if groups {
		props["groups"] = map[string]any{"type": "array", "items": map[string]any{"$ref": "#"}}
		required = append(required, "groups")
		key += "-g"
	} else {
		props["groups"] = false
	}
	if pods {
		required = append(required, "pods")
		key += "-p"
	} else {
		props["pods"] = false
	}
	return key, map[string]any{
		"$ref":                  base + "group.json#/$defs/groupFields",
		"properties":            props,
		"required":              required,
		"unevaluatedProperties": false,
	}, nil
}

// boolParam reads a boolean query parameter as agent/api does.
func boolParam(q url.Values, name string) bool {
	return strings.EqualFold(q.Get(name), "true") || q.Get(name) == "1"
}
