package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestGroups: GET /v2/groups derives Marathon's group tree from app ids;
// a group id shows its part; an unknown one is 404 in Marathon's words;
// DELETE removes a group with everything in it.
func TestGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	root := e.do("GET", "/v2/groups", nil)
	expect(t, root, http.StatusOK, "GET /v2/groups (no apps)")
	g := root.obj(t)
	if g["id"] != "/" || len(g["apps"].([]any)) != 0 || len(g["groups"].([]any)) != 0 {
		t.Fatalf("empty root group: %s", root)
	}

	e.createApp(webApp("/top"))
	e.createApp(webApp("/shop/db"))
	e.createApp(webApp("/shop/web/frontend"))

	g = e.do("GET", "/v2/groups", nil).obj(t)
	if g["id"] != "/" || appIDs(g) != "/top" {
		t.Fatalf("root group: id %v apps %s", g["id"], appIDs(g))
	}
	subs := g["groups"].([]any)
	if len(subs) != 1 {
		t.Fatalf("root subgroups: %v", subs)
	}
	shop := subs[0].(map[string]any)
	if shop["id"] != "/shop" || appIDs(shop) != "/shop/db" {
		t.Fatalf("group /shop: id %v apps %s", shop["id"], appIDs(shop))
	}
	web := shop["groups"].([]any)[0].(map[string]any)
	if web["id"] != "/shop/web" || appIDs(web) != "/shop/web/frontend" {
		t.Fatalf("group /shop/web: id %v apps %s", web["id"], appIDs(web))
	}
	for _, k := range []string{"pods", "dependencies", "version"} {
		if _, ok := shop[k]; !ok {
			t.Fatalf("group /shop lacks %q: %v", k, shop)
		}
	}
	if shop["version"].(string) < web["version"].(string) {
		t.Fatalf("group /shop version %v is older than its subgroup's %v", shop["version"], web["version"])
	}

	for _, path := range []string{"/v2/groups/shop/web", "/v2/groups/shop/web/", "/service/marathon/v2/groups//shop/web"} {
		r := e.do("GET", path, nil)
		expect(t, r, http.StatusOK, "GET "+path)
		if g := r.obj(t); g["id"] != "/shop/web" || appIDs(g) != "/shop/web/frontend" {
			t.Fatalf("GET %s: %s", path, r)
		}
	}

	r := e.do("GET", "/v2/groups/shop/nope", nil)
	expect(t, r, http.StatusNotFound, "GET an unknown group")
	if m := r.obj(t)["message"]; m != "Group '/shop/nope' does not exist" {
		t.Fatalf("unknown group message: %v", m)
	}
	// An app is not a group.
	expect(t, e.do("GET", "/v2/groups/shop/db", nil), http.StatusNotFound, "GET an app as a group")

	// A group with deployments in progress is locked, as its apps are.
	r = e.do("DELETE", "/v2/groups/shop", nil)
	if r.Status != http.StatusOK {
		expect(t, r, http.StatusConflict, "DELETE a group while its apps deploy")
		e.settled("/shop/db", 1)
		e.settled("/shop/web/frontend", 1)
		r = e.do("DELETE", "/v2/groups/shop", nil)
	}
	deploymentResult(t, r, http.StatusOK, "DELETE a group")
	waitUntil(t, "/shop gone", func() bool {
		return e.a.Snapshot().App("/shop/db") == nil && e.a.Snapshot().App("/shop/web/frontend") == nil
	})
	expect(t, e.do("GET", "/v2/groups/shop", nil), http.StatusNotFound, "GET the removed group")
	if g := e.do("GET", "/v2/groups", nil).obj(t); appIDs(g) != "/top" {
		t.Fatalf("root group after removing /shop: %v", g)
	}

	// A removed app leaves the groups its id alone made at once, as it
	// leaves /v2/apps.
	e.createApp(webApp("/other/web/frontend"))
	expect(t, e.do("DELETE", "/v2/apps/other/web/frontend?force=true", nil), http.StatusOK, "DELETE app")
	expect(t, e.do("GET", "/v2/groups/other/web", nil), http.StatusNotFound, "GET the emptied group")
}

// appIDs lists a group's app ids, comma-separated.
func appIDs(g map[string]any) string {
	s := ""
	for i, a := range g["apps"].([]any) {
		if i > 0 {
			s += ","
		}
		s += a.(map[string]any)["id"].(string)
	}
	return s
}

// stackBody is a three-tier group with relative ids: web depends on api,
// api on db.
func stackBody(id string) map[string]any {
	return map[string]any{"id": id, "apps": []any{
		webApp("db"),
		with(webApp("api"), "dependencies", []any{"db"}),
		with(webApp("./web"), "dependencies", []any{"api"}),
	}}
}

// stepsOf renders a plan's steps as "Action app, ... | ...".
func stepsOf(t *testing.T, steps any) string {
	t.Helper()
	var out []string
	for _, s := range steps.([]any) {
		var acts []string
		for _, a := range s.(map[string]any)["actions"].([]any) {
			acts = append(acts, get(a, "action").(string)+" "+get(a, "app").(string))
		}
		out = append(out, strings.Join(acts, ", "))
	}
	return strings.Join(out, " | ")
}

// TestGroupWrites: POST creates a group (201, Location, the deployment),
// its relative ids resolved against it, in dependency order; dryRun shows
// the plan and changes nothing; scaleBy, versions, rollback by version,
// PATCH and a second POST (409) as Marathon answers them.
func TestGroupWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.subscribe("?event_type=group_change_success&event_type=deployment_info&event_type=deployment_success")

	dry := e.do("PUT", "/v2/groups/shop?dryRun=true", stackBody("/shop"))
	expect(t, dry, http.StatusOK, "dry run")
	if got, want := stepsOf(t, dry.obj(t)["steps"]), "StartApplication /shop/api, StartApplication /shop/db, StartApplication /shop/web | ScaleApplication /shop/db | ScaleApplication /shop/api | ScaleApplication /shop/web"; got != want {
		t.Fatalf("dry run steps %s\nwant %s", got, want)
	}
	expect(t, e.do("GET", "/v2/groups/shop", nil), http.StatusNotFound, "the group after a dry run")

	r := e.do("POST", "/v2/groups", stackBody("shop"))
	dep, version := deploymentResult(t, r, http.StatusCreated, "POST /v2/groups")
	if l := r.Header.Get("Location"); l != "/v2/groups/shop" {
		t.Fatalf("Location %q", l)
	}
	if d := e.do("GET", "/v2/deployments", nil).arr(t); len(d) == 1 {
		if get(d[0], "id") != dep || len(get(d[0], "affectedApps").([]any)) != 3 || num(get(d[0], "totalSteps")) != 4 {
			t.Fatalf("GET /v2/deployments: %v", d)
		}
	}
	change := s.waitFor("group_change_success", nil)
	if change["groupId"] != "/shop" || change["version"] != version {
		t.Fatalf("group_change_success %v", change)
	}
	s.waitFor("deployment_success", func(m map[string]any) bool { return m["id"] == dep })
	for _, id := range []string{"/shop/db", "/shop/api", "/shop/web"} {
		e.settled(id, 1)
	}
	if deps := e.app("/shop/web")["dependencies"].([]any); len(deps) != 1 || deps[0] != "/shop/api" {
		t.Fatalf("web's dependencies %v: relative ids are resolved against the group", deps)
	}
	expectMessage(t, e.do("POST", "/v2/groups", stackBody("/shop")), http.StatusConflict, "Group /shop is already created. Use PUT to change this group.")

	// scaleBy: every app of the group, ceil(instances × factor).
	deploymentResult(t, e.do("PUT", "/v2/groups/shop", map[string]any{"scaleBy": 1.5}), http.StatusOK, "scaleBy")
	for _, id := range []string{"/shop/db", "/shop/api", "/shop/web"} {
		e.settled(id, 2)
	}

	vs := e.do("GET", "/v2/groups/shop/versions", nil).arr(t)
	if len(vs) != 2 || vs[1] != version {
		t.Fatalf("versions %v, the first %s", vs, version)
	}
	old := e.do("GET", "/v2/groups/shop/versions/"+version, nil).obj(t)
	if get(old, "apps", 0, "instances") != 1.0 {
		t.Fatalf("the first version: %v", old)
	}
	deploymentResult(t, e.do("PUT", "/v2/groups/shop", map[string]any{"version": version}), http.StatusOK, "rollback")
	for _, id := range []string{"/shop/db", "/shop/api", "/shop/web"} {
		e.settled(id, 1)
	}
	expectMessage(t, e.do("PUT", "/v2/groups/shop", map[string]any{"version": "2001-01-01T00:00:00.000Z"}), http.StatusUnprocessableEntity,
		"Group /shop not available in version 2001-01-01T00:00:00.000Z")

	expect(t, e.do("PATCH", "/v2/groups/shop", map[string]any{"enforceRole": false}), http.StatusOK, "PATCH")
	expect(t, e.do("PATCH", "/v2/groups/nope", map[string]any{"enforceRole": false}), http.StatusNotFound, "PATCH an unknown group")
}

// TestGroupChangeRestartsOnlyWhatChanged: a PUT changing one app of a group
// restarts that app and leaves the others' tasks alone; an app missing
// from a given list is removed.
func TestGroupChangeRestartsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	deploymentResult(t, e.do("POST", "/v2/groups", stackBody("/s")), http.StatusCreated, "POST")
	before := map[string]string{}
	for _, id := range []string{"/s/db", "/s/api", "/s/web"} {
		before[id] = e.settled(id, 1)[0].ID
	}
	body := stackBody("/s")
	body["apps"].([]any)[1] = with(body["apps"].([]any)[1].(map[string]any), "env", map[string]any{"V": "2"})
	r := e.do("PUT", "/v2/groups/s?dryRun=true", body)
	if got := stepsOf(t, r.obj(t)["steps"]); got != "RestartApplication /s/api" {
		t.Fatalf("plan of changing api: %s", got)
	}
	deploymentResult(t, e.do("PUT", "/v2/groups/s", body), http.StatusOK, "PUT")
	for _, id := range []string{"/s/db", "/s/api", "/s/web"} {
		task := e.settled(id, 1)[0].ID
		if (task != before[id]) != (id == "/s/api") {
			t.Fatalf("%s: task %s, before %s", id, task, before[id])
		}
	}
	// Without web: web is removed, the others stay.
	body["apps"] = body["apps"].([]any)[:2]
	r = e.do("PUT", "/v2/groups/s?dryRun=true", body)
	if got := stepsOf(t, r.obj(t)["steps"]); got != "StopApplication /s/web" {
		t.Fatalf("plan of dropping web: %s", got)
	}
	deploymentResult(t, e.do("PUT", "/v2/groups/s", body), http.StatusOK, "PUT without web")
	e.gone("/s/web")
	e.settled("/s/api", 1)
}

// TestGroupRefusals: a cycle is 422 naming it; an app id clash is 409;
// nothing is deployed. (A missing dependency is accepted, as in Marathon:
// TestGroupDependencyPaths.)
func TestGroupRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(webApp("/taken/app"))
	e.settled("/taken/app", 1)

	cyc := map[string]any{"apps": []any{
		with(webApp("x"), "dependencies", []any{"y"}),
		with(webApp("y"), "dependencies", []any{"/cyc/x"}),
	}}
	r := e.do("PUT", "/v2/groups/cyc", cyc)
	expect(t, r, http.StatusUnprocessableEntity, "a cycle")
	if !strings.Contains(r.String(), "/cyc/x") || !strings.Contains(r.String(), "/cyc/y") {
		t.Fatalf("the cycle is not named: %s", r)
	}
	r = e.do("POST", "/v2/groups", map[string]any{"id": "/taken/app/g", "apps": []any{webApp("m")}})
	expect(t, r, http.StatusConflict, "a group inside an app")
	if !strings.Contains(r.String(), "/taken/app") {
		t.Fatalf("the clash is not named: %s", r)
	}
	// /taken exists: /taken/app made it, as in Marathon.
	expectMessage(t, e.do("POST", "/v2/groups", map[string]any{"id": "/taken", "apps": []any{webApp("app")}}), http.StatusConflict,
		"Group /taken is already created. Use PUT to change this group.")
	r = e.do("PUT", "/v2/groups/taken", map[string]any{"groups": []any{map[string]any{"id": "app", "apps": []any{webApp("x")}}}})
	expect(t, r, http.StatusConflict, "a group with an existing app's id")
	if !strings.Contains(r.String(), "/taken/app") {
		t.Fatalf("the clash is not named: %s", r)
	}
	r = e.do("POST", "/v2/groups", map[string]any{"id": "/new", "apps": []any{webApp("a")}, "groups": []any{map[string]any{"id": "a", "apps": []any{webApp("b")}}}})
	if r.Status != http.StatusConflict && r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.String(), "/new/a") {
		t.Fatalf("an app and a group of one id in a body: %s", r)
	}
	r = e.do("PUT", "/v2/groups/taken/app", map[string]any{"apps": []any{}})
	expect(t, r, http.StatusConflict, "a group id that is an app")
	if !strings.Contains(r.String(), "/taken/app") {
		t.Fatalf("the clash is not named: %s", r)
	}
	if d := e.do("GET", "/v2/deployments", nil).arr(t); len(d) != 0 {
		t.Fatalf("refused changes deployed: %v", d)
	}
	if g := e.do("GET", "/v2/groups", nil).obj(t); len(g["groups"].([]any)) != 1 {
		t.Fatalf("refused changes made groups: %v", g["groups"])
	}
}

// TestBulkAppUpdate: PUT /v2/apps with an array is one deployment of every
// app in it.
func TestBulkAppUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(webApp("/a"))
	e.createApp(webApp("/b"))
	e.settled("/a", 1)
	e.settled("/b", 1)
	dep, _ := deploymentResult(t, e.do("PUT", "/v2/apps", []any{
		map[string]any{"id": "/a", "instances": 2}, map[string]any{"id": "/b", "instances": 3},
	}), http.StatusOK, "bulk PUT")
	if d := e.a.Snapshot().Deployments; len(d) == 1 && (d[0].ID != dep || len(d[0].Affected) != 2) {
		t.Fatalf("deployments %+v", d[0])
	}
	e.settled("/a", 2)
	e.settled("/b", 3)
	r := e.do("PUT", "/v2/apps", []any{map[string]any{"id": "/a", "cpus": -1}})
	expect(t, r, http.StatusUnprocessableEntity, "a bad app in a bulk PUT")
	if !strings.Contains(r.String(), "/(0)/cpus") && !strings.Contains(r.String(), "(0)") {
		t.Fatalf("the bad app is not named: %s", r)
	}
}

// TestGroupDeploymentCancel: DELETE /v2/deployments/{id} of a group
// creation removes what it made.
func TestGroupDeploymentCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := map[string]any{"id": "/big", "apps": []any{webApp("a"), with(webApp("b"), "cpus", 1000, "dependencies", []any{"a"})}}
	dep, _ := deploymentResult(t, e.do("POST", "/v2/groups", body), http.StatusCreated, "POST")
	waitUntil(t, "a running", func() bool { v := e.a.Snapshot().App("/big/a"); return v != nil && v.TasksRunning == 1 })
	waitUntil(t, "b waiting", func() bool { return len(e.a.Snapshot().Queue) == 1 })
	deploymentResult(t, e.do("DELETE", "/v2/deployments/"+dep, nil), http.StatusOK, "cancel")
	e.gone("/big/a")
	e.gone("/big/b")
	e.noDeployments()
	expect(t, e.do("GET", "/v2/groups/big", nil), http.StatusNotFound, "the cancelled group")
}
