package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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

func groupShow(ctx context.Context, c *cli, inv *invocation) error {
	id := "/" + strings.Trim(inv.args[0], "/")
	path := "/v2/groups"
	if id != "/" {
		path += strings.TrimPrefix(appPath(id), "/v2/apps")
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
