package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// groupInfo is what the group commands read of Marathon's group JSON.
type groupInfo struct {
	ID     string            `json:"id"`
	Apps   []json.RawMessage `json:"apps"`
	Groups []*groupInfo      `json:"groups"`
}

// appCount is the number of apps in the group and its subgroups.
func (g *groupInfo) appCount() int {
	n := len(g.Apps)
	for _, sub := range g.Groups {
		n += sub.appCount()
	}
	return n
}

// groupList prints every group below the root, as the DC/OS CLI does.
func groupList(ctx context.Context, c *cli, inv *invocation) error {
	var raw json.RawMessage
	if err := c.api.getJSON(ctx, "/v2/groups", nil, &raw); err != nil {
		return err
	}
	var root struct {
		Groups []json.RawMessage `json:"groups"`
	}
	var tree groupInfo
	if err := json.Unmarshal(raw, &root); err != nil {
		return fmt.Errorf("decode the answer of /v2/groups: %w", err)
	}
	if err := json.Unmarshal(raw, &tree); err != nil {
		return fmt.Errorf("decode the answer of /v2/groups: %w", err)
	}
	if inv.flag("json") {
		if root.Groups == nil {
			root.Groups = []json.RawMessage{}
		}
		return writeJSONValue(c.stdout, root.Groups)
	}
	var rows [][]string
	var walk func(gs []*groupInfo)
	walk = func(gs []*groupInfo) {
		for _, g := range gs {
			rows = append(rows, []string{g.ID, strconv.Itoa(g.appCount())})
			walk(g.Groups)
		}
	}
	walk(tree.Groups)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	writeTable(c.stdout, []column{{"ID", alignLeft}, {"APPS", alignCenter}}, rows)
	return nil
}

// groupShow prints a group as JSON; --group-version one of its versions.
func groupShow(ctx context.Context, c *cli, inv *invocation) error {
	id := groupIDArg(inv.args[0])
	path := groupPath(id)
	if v, ok := inv.value("group-version"); ok {
		path += "/versions/" + url.PathEscape(v)
	}
	var raw json.RawMessage
	if err := c.api.getJSON(ctx, path, nil, &raw); err != nil {
		if isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("group '%s' does not exist", id)
		}
		return err
	}
	return writeJSON(c.stdout, raw)
}

// groupPath is the API path of a group, with the id escaped segment by
// segment ("/v2/groups" for the root).
func groupPath(id string) string {
	if id == "/" {
		return "/v2/groups"
	}
	return "/v2/groups" + strings.TrimPrefix(appPath(id), "/v2/apps")
}

// groupIDArg normalizes a group id argument ("/" is the root group).
func groupIDArg(arg string) string { return "/" + strings.Trim(arg, "/") }

// groupLocked turns a 409 of a change with --force into a lockedError,
// and 404 into "group does not exist".
func groupLocked(err error, id string) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict && len(ae.Deployments) > 0 {
		return &lockedError{kind: "group", appID: id, deployments: ae.Deployments}
	}
	if isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("group '%s' does not exist", id)
	}
	return err
}

// groupAdd creates a group from a definition, as dcos marathon group add:
// it must not exist yet; prints the deployment.
func groupAdd(ctx context.Context, c *cli, inv *invocation) error {
	name := ""
	if len(inv.args) == 1 {
		name = inv.args[0]
	}
	body, err := c.readInput(name, "mesolite group add < group.json")
	if err != nil {
		return err
	}
	src := name
	if src == "" || src == "-" {
		src = "standard input"
	}
	def, err := jsonObject(body, "the group definition in "+src)
	if err != nil {
		return err
	}
	var rawID string
	if json.Unmarshal(def["id"], &rawID) != nil || strings.Trim(rawID, "/") == "" {
		return userErrorf("the group definition in %s has no id", src)
	}
	id := groupIDArg(rawID)
	var existing json.RawMessage
	err = c.api.getJSON(ctx, groupPath(id), url.Values{"embed": {"group.groups"}}, &existing)
	if err == nil {
		return userErrorf("Group '%s' already exists", id)
	}
	if !isStatus(err, http.StatusNotFound) {
		return err
	}
	b, h, err := c.api.do(ctx, http.MethodPost, "/v2/groups", nil, body)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Created deployment %s\n", deploymentOf(b, h))
	return nil
}

// groupUpdate changes a group with key=value properties or a JSON object
// on standard input (apps, groups, dependencies, version, scaleBy).
func groupUpdate(ctx context.Context, c *cli, inv *invocation) error {
	id := groupIDArg(inv.args[0])
	body, err := c.updateBody(inv.args[1:], "mesolite group update "+strings.TrimPrefix(id, "/")+" < group.json")
	if err != nil {
		return err
	}
	var existing json.RawMessage
	if err := c.api.getJSON(ctx, groupPath(id), url.Values{"embed": {"group.groups"}}, &existing); err != nil {
		return groupLocked(err, id)
	}
	b, h, err := c.api.do(ctx, http.MethodPut, groupPath(id), forceQuery(inv), body)
	if err != nil {
		return groupLocked(err, id)
	}
	fmt.Fprintf(c.stdout, "Created deployment %s\n", deploymentOf(b, h))
	return nil
}

// groupScale multiplies the instances of every app in a group by FACTOR
// (rounded up), Marathon's scaleBy.
func groupScale(ctx context.Context, c *cli, inv *invocation) error {
	id := groupIDArg(inv.args[0])
	factor, err := strconv.ParseFloat(inv.args[1], 64)
	if err != nil || factor < 0 || math.IsInf(factor, 0) || math.IsNaN(factor) {
		return usagef(inv.cmd, "the scale factor %q is not a number of 0 or more", inv.args[1])
	}
	body, err := json.Marshal(map[string]float64{"scaleBy": factor})
	if err != nil {
		return err
	}
	b, h, err := c.api.do(ctx, http.MethodPut, groupPath(id), forceQuery(inv), body)
	if err != nil {
		return groupLocked(err, id)
	}
	fmt.Fprintf(c.stdout, "Created deployment %s\n", deploymentOf(b, h))
	return nil
}

// groupRemove removes a group with its apps and subgroups; it prints
// nothing, as dcos marathon group remove.
func groupRemove(ctx context.Context, c *cli, inv *invocation) error {
	id := groupIDArg(inv.args[0])
	_, _, err := c.api.do(ctx, http.MethodDelete, groupPath(id), forceQuery(inv), nil)
	return groupLocked(err, id)
}
