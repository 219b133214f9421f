package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mattn/go-isatty"
)

// appInfo is what the app commands read of an app.
type appInfo struct {
	ID           string          `json:"id"`
	Mem          float64         `json:"mem"`
	Cpus         float64         `json:"cpus"`
	Instances    *int            `json:"instances"`
	TasksRunning int             `json:"tasksRunning"`
	TasksHealthy int             `json:"tasksHealthy"`
	HealthChecks json.RawMessage `json:"healthChecks"`
	Cmd          *string         `json:"cmd"`
	Args         []string        `json:"args"`
	Container    *struct {
		Type string `json:"type"`
	} `json:"container"`
	Deployments []struct {
		ID string `json:"id"`
	} `json:"deployments"`
}

// lockedError is a 409 of a command that has --force.
type lockedError struct {
	kind        string // "app" or "group"
	appID       string
	deployments []string
}

func (e *lockedError) Error() string {
	which := "a deployment"
	if len(e.deployments) > 0 {
		which = "deployment " + strings.Join(e.deployments, ", ")
	}
	return fmt.Sprintf("changes blocked: %s already in progress for %s '%s'; wait for it to finish (see DEPLOYMENT in 'mesolite app list') or run again with --force to override it", which, e.kind, e.appID)
}

// locked turns a 409 into a lockedError.
func locked(err error, appID string) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict {
		return &lockedError{kind: "app", appID: appID, deployments: ae.Deployments}
	}
	return err
}

func forceQuery(inv *invocation) url.Values {
	if inv.flag("force") {
		return url.Values{"force": {"true"}}
	}
	return nil
}

// appIDArg normalizes the ID argument; an empty one is a usage error.
func appIDArg(inv *invocation) (string, error) {
	id, err := normalizeAppID(inv.args[0])
	if err != nil {
		return "", usagef(inv.cmd, "%v", err)
	}
	return id, nil
}

// getApp reads one app; 404 is "app '/x' does not exist".
func (c *cli) getApp(ctx context.Context, id string) (*appInfo, json.RawMessage, error) {
	var body struct {
		App json.RawMessage `json:"app"`
	}
	if err := c.api.getJSON(ctx, appPath(id), url.Values{"embed": {"app.mesolite"}}, &body); err != nil {
		if isStatus(err, http.StatusNotFound) {
			return nil, nil, fmt.Errorf("app '%s' does not exist", id)
		}
		return nil, nil, err
	}
	var app appInfo
	if err := json.Unmarshal(body.App, &app); err != nil {
		return nil, nil, fmt.Errorf("decode app %s: %w", id, err)
	}
	return &app, body.App, nil
}

// readInput reads a file, or standard input for "" and "-". A terminal
// is refused: the user most likely forgot the file.
func (c *cli) readInput(name, example string) ([]byte, error) {
	if name != "" && name != "-" {
		b, err := os.ReadFile(name)
		if err != nil && isURL(name) {
			// As the DC/OS CLI: a resource that is not a file may be a URL.
			return fetchResource(name)
		}
		if err != nil {
			return nil, fmt.Errorf("read %w", err)
		}
		return b, nil
	}
	if f, ok := c.stdin.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return nil, fmt.Errorf("standard input is a terminal: give the JSON in a file or pipe it in, e.g. %s", example)
	}
	if c.stdin == nil {
		return nil, errors.New("no input: give the JSON in a file or on standard input")
	}
	b, err := io.ReadAll(c.stdin)
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	return b, nil
}

func isURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// maxResourceBytes bounds an app definition fetched from a URL.
const maxResourceBytes = 4 << 20

// fetchResource GETs an app definition from a URL.
func fetchResource(u string) ([]byte, error) {
	cl := &http.Client{Timeout: 30 * time.Second}
	res, err := cl.Get(u)
	if err != nil {
		return nil, fmt.Errorf("can't read from resource %s: %v; check that it exists and is reachable", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("can't read from resource %s: %s; check that it exists", u, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResourceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("can't read from resource %s: %v", u, err)
	}
	if len(b) > maxResourceBytes {
		return nil, fmt.Errorf("can't read from resource %s: larger than %d MiB; an app definition is a small JSON object", u, maxResourceBytes>>20)
	}
	return b, nil
}

// jsonObject parses b as a JSON object; what names it in the error.
func jsonObject(b []byte, what string) (map[string]json.RawMessage, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", what, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("%s is not a JSON object", what)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return obj, nil
}

// deploymentOf reads the deploymentId of a DeploymentResult.
func deploymentOf(b []byte, h http.Header) string {
	var r struct {
		DeploymentID string `json:"deploymentId"`
	}
	if json.Unmarshal(b, &r) == nil && r.DeploymentID != "" {
		return r.DeploymentID
	}
	return h.Get("Marathon-Deployment-Id")
}

func appAdd(ctx context.Context, c *cli, inv *invocation) error {
	name := ""
	if len(inv.args) == 1 {
		name = inv.args[0]
	}
	body, err := c.readInput(name, "mesolite app add < app.json")
	if err != nil {
		return err
	}
	src := name
	if src == "" || src == "-" {
		src = "standard input"
	}
	def, err := jsonObject(body, "the app definition in "+src)
	if err != nil {
		return err
	}
	// Without a usable id the API's validation says what is wrong.
	var rawID string
	if json.Unmarshal(def["id"], &rawID) == nil {
		if id, err := normalizeAppID(rawID); err == nil {
			var existing json.RawMessage
			err := c.api.getJSON(ctx, appPath(id), nil, &existing)
			if err == nil {
				return userErrorf("Application '%s' already exists", id)
			}
			if !isStatus(err, http.StatusNotFound) {
				return err
			}
		}
	}
	b, h, err := c.api.do(ctx, http.MethodPost, "/v2/apps", nil, body)
	if err != nil {
		return err
	}
	var created struct {
		Deployments []struct {
			ID string `json:"id"`
		} `json:"deployments"`
	}
	_ = json.Unmarshal(b, &created)
	dep := h.Get("Marathon-Deployment-Id")
	if len(created.Deployments) > 0 {
		dep = created.Deployments[0].ID
	}
	fmt.Fprintf(c.stdout, "Created deployment %s\n", dep)
	return nil
}

func appShow(ctx context.Context, c *cli, inv *invocation) error {
	id, err := appIDArg(inv)
	if err != nil {
		return err
	}
	_, raw, err := c.getApp(ctx, id)
	if err != nil {
		return err
	}
	return writeJSON(c.stdout, raw)
}

// scale PUTs {"id","instances"} and prints the deployment.
func (c *cli) scale(ctx context.Context, inv *invocation, id string, n int) error {
	body, _ := json.Marshal(map[string]any{"id": id, "instances": n})
	b, h, err := c.api.do(ctx, http.MethodPut, appPath(id), forceQuery(inv), body)
	if err != nil {
		return locked(err, id)
	}
	fmt.Fprintf(c.stdout, "Created deployment %s\n", deploymentOf(b, h))
	return nil
}

func appStop(ctx context.Context, c *cli, inv *invocation) error {
	id, err := appIDArg(inv)
	if err != nil {
		return err
	}
	app, _, err := c.getApp(ctx, id)
	if err != nil {
		return err
	}
	if n := instancesOf(app); n <= 0 {
		return fmt.Errorf("app '%s' already stopped: %d instances", id, n)
	}
	return c.scale(ctx, inv, id, 0)
}

func appStart(ctx context.Context, c *cli, inv *invocation) error {
	id, err := appIDArg(inv)
	if err != nil {
		return err
	}
	n := 1
	if len(inv.args) == 2 {
		n, err = strconv.Atoi(inv.args[1])
		if err != nil {
			return usagef(inv.cmd, "the number of instances must be an integer: %q", inv.args[1])
		}
		if n <= 0 {
			return fmt.Errorf("the number of instances must be positive: %d", n)
		}
	}
	app, _, err := c.getApp(ctx, id)
	if err != nil {
		return err
	}
	if m := instancesOf(app); m > 0 {
		return fmt.Errorf("application '%s' already started: %d instances", inv.args[0], m)
	}
	return c.scale(ctx, inv, id, n)
}

func instancesOf(app *appInfo) int {
	if app.Instances == nil {
		return 0
	}
	return *app.Instances
}

func appRestart(ctx context.Context, c *cli, inv *invocation) error {
	id, err := appIDArg(inv)
	if err != nil {
		return err
	}
	app, _, err := c.getApp(ctx, id)
	if err != nil {
		return err
	}
	if app.Instances == nil {
		return fmt.Errorf("unable to get number of instances for application '%s'", id)
	}
	if *app.Instances <= 0 {
		return fmt.Errorf("unable to perform rolling restart of application '%s' because it has no running tasks", id)
	}
	b, h, err := c.api.do(ctx, http.MethodPost, appPath(id)+"/restart", forceQuery(inv), []byte("{}"))
	if err != nil {
		return locked(err, id)
	}
	fmt.Fprintf(c.stdout, "Created deployment %s\n", deploymentOf(b, h))
	return nil
}

func appUpdate(ctx context.Context, c *cli, inv *invocation) error {
	id, err := appIDArg(inv)
	if err != nil {
		return err
	}
	body, err := c.updateBody(inv.args[1:], "mesolite app update "+strings.TrimPrefix(id, "/")+" < update.json")
	if err != nil {
		return err
	}
	if _, _, err := c.getApp(ctx, id); err != nil {
		return err
	}
	b, h, err := c.api.do(ctx, http.MethodPut, appPath(id), forceQuery(inv), body)
	if err != nil {
		return locked(err, id)
	}
	fmt.Fprintf(c.stdout, "Created deployment %s\n", deploymentOf(b, h))
	return nil
}

// updateBody is the JSON object of an update: the key=value properties,
// or standard input without any (as the DC/OS CLI's
// get_resource_from_properties).
func (c *cli) updateBody(props []string, example string) ([]byte, error) {
	if len(props) == 0 {
		body, err := c.readInput("", example)
		if err != nil {
			return nil, err
		}
		if _, err := jsonObject(body, "the update on standard input"); err != nil {
			return nil, err
		}
		return body, nil
	}
	obj := map[string]any{}
	for _, item := range props {
		k, v, err := parseJSONItem(item)
		if err != nil {
			return nil, err
		}
		if _, dup := obj[k]; dup {
			return nil, userErrorf("Key '%s' was specified more than once", k)
		}
		obj[k] = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("encode the update: %w", err)
	}
	return buf.Bytes(), nil
}

func appRemove(ctx context.Context, c *cli, inv *invocation) error {
	id, err := appIDArg(inv)
	if err != nil {
		return err
	}
	_, _, err = c.api.do(ctx, http.MethodDelete, appPath(id), forceQuery(inv), nil)
	if isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("app '%s' does not exist", id)
	}
	return locked(err, id)
}

// deploymentInfo is what app list reads of GET /v2/deployments.
type deploymentInfo struct {
	ID             string `json:"id"`
	CurrentActions []struct {
		Action string `json:"action"`
		App    string `json:"app"`
	} `json:"currentActions"`
}

// queueInfo is what app list reads of GET /v2/queue.
type queueInfo struct {
	Queue []struct {
		App struct {
			ID string `json:"id"`
		} `json:"app"`
		Delay struct {
			Overdue bool `json:"overdue"`
		} `json:"delay"`
	} `json:"queue"`
}

func appList(ctx context.Context, c *cli, inv *invocation) error {
	var apps struct {
		Apps []json.RawMessage `json:"apps"`
	}
	if err := c.api.getJSON(ctx, "/v2/apps", nil, &apps); err != nil {
		return err
	}
	type entry struct {
		info appInfo
		raw  json.RawMessage
	}
	entries := make([]entry, 0, len(apps.Apps))
	for _, raw := range apps.Apps {
		var e entry
		if err := json.Unmarshal(raw, &e.info); err != nil {
			return fmt.Errorf("decode the answer of /v2/apps: %w", err)
		}
		e.raw = raw
		entries = append(entries, e)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].info.ID < entries[j].info.ID })

	switch {
	case inv.flag("json"):
		raws := make([]json.RawMessage, len(entries))
		for i, e := range entries {
			raws[i] = e.raw
		}
		return writeJSONValue(c.stdout, raws)
	case inv.flag("quiet"):
		for _, e := range entries {
			fmt.Fprintln(c.stdout, e.info.ID)
		}
		return nil
	}
	var deps []deploymentInfo
	if err := c.api.getJSON(ctx, "/v2/deployments", nil, &deps); err != nil {
		return err
	}
	var queue queueInfo
	if err := c.api.getJSON(ctx, "/v2/queue", nil, &queue); err != nil {
		return err
	}
	overdue := map[string]bool{}
	for _, q := range queue.Queue {
		if q.Delay.Overdue {
			overdue[q.App.ID] = true
		}
	}
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		rows = append(rows, appRow(&e.info, deps, overdue[e.info.ID]))
	}
	writeTable(c.stdout, appColumns, rows)
	return nil
}

var appColumns = []column{
	{"ID", alignLeft}, {"MEM", alignLeft}, {"CPUS", alignLeft}, {"TASKS", alignLeft},
	{"HEALTH", alignLeft}, {"DEPLOYMENT", alignLeft}, {"WAITING", alignLeft},
	{"CONTAINER", alignLeft}, {"CMD", alignLeft},
}

// deploymentActions names Marathon's deployment actions as the DC/OS CLI
// shows them.
var deploymentActions = map[string]string{
	"ResolveArtifacts": "artifacts", "ScaleApplication": "scale", "StartApplication": "start",
	"StopApplication": "stop", "RestartApplication": "restart", "ScalePod": "scale",
	"StopPod": "stop", "RestartPod": "restart", "KillAllOldTasksOf": "kill-tasks",
}

// appRow computes the columns of one app as the DC/OS CLI does.
func appRow(app *appInfo, deps []deploymentInfo, overdue bool) []string {
	health := "---"
	if hc := bytes.TrimSpace(app.HealthChecks); len(hc) > 0 && !bytes.Equal(hc, []byte("null")) && !bytes.Equal(hc, []byte("[]")) {
		health = fmt.Sprintf("%d/%d", app.TasksHealthy, app.TasksRunning)
	}
	var actions []string
	for _, d := range app.Deployments {
		for _, dep := range deps {
			if dep.ID != d.ID {
				continue
			}
			for _, act := range dep.CurrentActions {
				if act.App != app.ID {
					continue
				}
				name, ok := deploymentActions[act.Action]
				if !ok {
					name = strings.ToLower(act.Action)
				}
				actions = append(actions, name)
			}
		}
	}
	deployment := "---"
	switch len(actions) {
	case 0:
	case 1:
		deployment = actions[0]
	default:
		deployment = "(" + strings.Join(actions, ",") + ")"
	}
	waiting := "False"
	if overdue {
		waiting = "True"
	}
	container := "MESOS"
	if app.Container != nil && app.Container.Type != "" {
		container = app.Container.Type
	}
	cmd := "---"
	switch {
	case app.Cmd != nil && *app.Cmd != "":
		cmd = *app.Cmd
	case len(app.Args) > 0:
		cmd = "[" + strings.Join(app.Args, ", ") + "]"
	}
	cmd = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, cmd)
	if r := []rune(cmd); len(r) >= 30 {
		cmd = string(r[:27]) + "..."
	}
	return []string{
		app.ID, ftoa(app.Mem), ftoa(app.Cpus), fmt.Sprintf("%d/%d", app.TasksRunning, instancesOf(app)),
		health, deployment, waiting, container, cmd,
	}
}

// ftoa formats a number as humanize.Ftoa does: at most 6 decimals, no
// trailing zeros.
func ftoa(f float64) string {
	s := strconv.FormatFloat(f, 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
