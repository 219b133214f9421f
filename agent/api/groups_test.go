package api_test

import (
	"net/http"
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
