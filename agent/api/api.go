// Package api serves Marathon's v2 REST API (the subset mesolite has)
// over an agent.Agent, with Marathon's status codes, headers and bodies.
// It answers at the root and under /service/marathon, as DC/OS does.
package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/api/ui"
	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/metrics"
)

// Limits on what a client may send.
const (
	MaxBodyBytes   = 1 << 20
	MaxHeaderBytes = 64 << 10
	maxFileChunk   = 1 << 20
)

// Config configures the API.
type Config struct {
	// Token, when set, is required in Authorization ("token=…", as DC/OS
	// clients send it, or "Bearer …"); /ping stays open.
	Token    string
	Version  string
	Leader   string // host:port this API listens on
	Hostname string
	Logger   zerolog.Logger
	// KeepAlive is the interval of keep-alive comments on /v2/events.
	KeepAlive time.Duration
	// EventWriteTimeout is how long one write to an event-stream client
	// may block before the client is disconnected (default 10 s).
	EventWriteTimeout time.Duration
	// Metrics, when set, counts the requests and is served at /metrics
	// (behind the token), with what the agent's snapshot shows.
	Metrics *metrics.Metrics
	// AllowedOrigins are the origins of other sites' pages the API serves
	// ([security] allowed_origins), with CORS headers; the agent's own
	// pages need no entry. AllowedHosts are further names of the agent
	// that requests may carry as Host ([security] allowed_hosts). See
	// Guard.
	AllowedOrigins []string
	AllowedHosts   []string
	// Conns, when set, is the connection limiter of the server that runs
	// the API: the API tells it when a request's body is being read.
	Conns *ConnLimiter
}

// Server is the HTTP handler of the API.
type Server struct {
	a     *agent.Agent
	cfg   Config
	log   zerolog.Logger
	guard *Guard
}

// New returns the API handler for an agent.
func New(a *agent.Agent, cfg Config) *Server {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	if cfg.EventWriteTimeout <= 0 {
		cfg.EventWriteTimeout = 10 * time.Second
	}
	if err := cfg.Metrics.Register(snapshotCollector{a}); err != nil {
		// Only a second API over the same metrics gets here: the first
		// one's collector reports the same agent.
		cfg.Logger.Debug().Err(err).Msg("register the snapshot's metrics")
	}
	return &Server{a: a, cfg: cfg, log: cfg.Logger, guard: NewGuard(cfg.Leader, cfg.Hostname, cfg.AllowedHosts, cfg.AllowedOrigins)}
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, "/service/marathon"); ok && (rest == "" || rest[0] == '/') {
		p = rest
		if p == "" {
			p = "/"
		}
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error().Interface("panic", p).Str("path", r.URL.Path).Msg("api handler panicked")
			if sw.status == 0 {
				writeJSON(sw, http.StatusInternalServerError, msg("internal error; see the agent log"))
			}
		}
		took := time.Since(start)
		if s.cfg.Metrics != nil {
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			s.cfg.Metrics.APIRequest(routePattern(p), methodLabel(r.Method), status, took, p != "/v2/events")
		}
		if r.URL.Path != "/v2/events" {
			s.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Int("status", sw.status).Dur("took", took).Msg("api request")
		}
	}()
	// Before anything is read or done: no orders from other sites' pages
	// (see Guard), on every route.
	if !s.guard.Check(sw, r) {
		return
	}
	if s.cfg.Conns != nil {
		defer s.cfg.Conns.Serve(r)()
	}
	// The dashboard (package ui): static files, public as /ping is; what it
	// shows it reads from the API below, with the same token.
	if ui.Serves(p) {
		ui.Serve(sw, r, p)
		return
	}
	if p == "/" && ui.WantsHTML(r) {
		http.Redirect(sw, r, strings.TrimSuffix(r.URL.Path, "/")+ui.Prefix, http.StatusFound)
		return
	}
	if p != "/ping" && !s.authorized(r) {
		// DC/OS answers with its scheme, which the DC/OS CLI reads.
		sw.Header().Set("WWW-Authenticate", "acsjwt")
		writeJSON(sw, http.StatusUnauthorized, msg("Authentication required: send Authorization: token=<token> (set MESOLITE_TOKEN for the CLI)"))
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(sw, r.Body, MaxBodyBytes)
	}
	s.route(sw, r, p)
}

func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	var got string
	switch {
	case strings.HasPrefix(h, "token="):
		got = strings.TrimPrefix(h, "token=")
	case strings.HasPrefix(h, "Bearer "):
		got = strings.TrimPrefix(h, "Bearer ")
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, p string) {
	if r.Method == http.MethodHead && p != "/v2/events" {
		// Every GET answers HEAD too, as Marathon's Jersey does: the
		// GET's status and headers; net/http drops the body. (The event
		// stream would never end.)
		r = r.WithContext(r.Context())
		r.Method = http.MethodGet
	}
	switch {
	case p == "/ping":
		if r.Method != "GET" && r.Method != "HEAD" {
			methodNotAllowed(w)
			return
		}
		s.ping(w, r)
	case p == "/v2/info":
		only(w, r, "GET", s.info)
	case p == "/v2/leader":
		only(w, r, "GET", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"leader": s.cfg.Leader})
		})
	case p == "/v2/apps" || p == "/v2/apps/":
		switch r.Method {
		case "GET":
			s.listApps(w, r)
		case "POST":
			s.createApp(w, r)
		case "PUT", "PATCH":
			s.updateApps(w, r)
		default:
			methodNotAllowed(w)
		}
	case strings.HasPrefix(p, "/v2/apps/"):
		s.appRoute(w, r, strings.TrimPrefix(p, "/v2/apps"))
	case p == "/v2/tasks":
		only(w, r, "GET", s.listTasks)
	case p == "/v2/tasks/delete":
		only(w, r, "POST", s.deleteTasks)
	case p == "/v2/deployments":
		only(w, r, "GET", s.listDeployments)
	case strings.HasPrefix(p, "/v2/deployments/"):
		only(w, r, "DELETE", func(w http.ResponseWriter, r *http.Request) {
			s.cancelDeployment(w, r, strings.TrimPrefix(p, "/v2/deployments/"))
		})
	case p == "/v2/queue":
		only(w, r, "GET", s.queue)
	case strings.HasPrefix(p, "/v2/queue/") && strings.HasSuffix(p, "/delay"):
		only(w, r, "DELETE", func(w http.ResponseWriter, r *http.Request) {
			s.resetDelay(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/v2/queue"), "/delay"))
		})
	case p == "/v2/groups" || strings.HasPrefix(p, "/v2/groups/"):
		s.groups(w, r, strings.TrimPrefix(p, "/v2/groups"))
	case p == "/v2/events":
		only(w, r, "GET", s.events)
	case p == "/files/read" || p == "/files/read.json":
		only(w, r, "GET", s.readFile)
	case p == "/mesolite/v1/volumes":
		only(w, r, "GET", s.volumes)
	case strings.HasPrefix(p, "/mesolite/v1/volumes/") && strings.HasSuffix(p, "/release"):
		only(w, r, "POST", func(w http.ResponseWriter, r *http.Request) {
			ref := strings.TrimSuffix(strings.TrimPrefix(p, "/mesolite/v1/volumes/"), "/release")
			dir, err := s.a.ReleaseVolume(r.Context(), ref)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"released": dir})
		})
	case strings.HasPrefix(p, "/mesolite/v1/volumes/"):
		only(w, r, "DELETE", func(w http.ResponseWriter, r *http.Request) {
			// The persistence id (its "#" escaped as %23) or the volume's path.
			ref := strings.TrimPrefix(p, "/mesolite/v1/volumes/")
			dir, err := s.a.RemoveOrphanVolume(r.Context(), ref)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"removed": dir})
		})
	case p == "/mesolite/v1/status":
		only(w, r, "GET", s.status)
	case p == "/metrics" && s.cfg.Metrics != nil:
		only(w, r, "GET", s.cfg.Metrics.Handler().ServeHTTP)
	case p == "/mesolite/v1/vips":
		only(w, r, "GET", s.vips)
	default:
		writeJSON(w, http.StatusNotFound, msg("URI not found: "+p))
	}
}

// appRoute serves /v2/apps/{id}[/restart|/tasks[/{taskId}]|/versions[/{v}]].
// App ids cannot end in restart, tasks or versions, so the suffixes are
// unambiguous.
func (s *Server) appRoute(w http.ResponseWriter, r *http.Request, rest string) {
	if strings.ContainsRune(rest, 0) {
		writeJSON(w, http.StatusBadRequest, msg("path may not contain a NUL byte"))
		return
	}
	switch {
	case strings.HasSuffix(rest, "/restart"):
		only(w, r, "POST", func(w http.ResponseWriter, r *http.Request) {
			s.restartApp(w, r, strings.TrimSuffix(rest, "/restart"))
		})
	case strings.HasSuffix(rest, "/tasks"):
		id := strings.TrimSuffix(rest, "/tasks")
		switch r.Method {
		case "GET":
			s.appTasks(w, r, id)
		case "DELETE":
			s.killAppTasks(w, r, id, "")
		default:
			methodNotAllowed(w)
		}
	case strings.Contains(rest, "/tasks/"):
		i := strings.LastIndex(rest, "/tasks/")
		only(w, r, "DELETE", func(w http.ResponseWriter, r *http.Request) {
			s.killAppTasks(w, r, rest[:i], rest[i+len("/tasks/"):])
		})
	case strings.HasSuffix(rest, "/versions"):
		only(w, r, "GET", func(w http.ResponseWriter, r *http.Request) {
			s.appVersions(w, r, strings.TrimSuffix(rest, "/versions"))
		})
	case strings.Contains(rest, "/versions/"):
		i := strings.LastIndex(rest, "/versions/")
		only(w, r, "GET", func(w http.ResponseWriter, r *http.Request) {
			s.appVersion(w, r, rest[:i], rest[i+len("/versions/"):])
		})
	default:
		switch r.Method {
		case "GET":
			s.showApp(w, r, rest)
		case "PUT":
			s.updateApp(w, r, rest, true)
		case "PATCH":
			s.updateApp(w, r, rest, false)
		case "DELETE":
			s.deleteApp(w, r, rest)
		default:
			methodNotAllowed(w)
		}
	}
}

func (s *Server) ping(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "must-revalidate,no-cache,no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "pong\n")
}

func (s *Server) info(w http.ResponseWriter, _ *http.Request) {
	cfg := s.a.Config()
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "mesolite", "version": s.cfg.Version, "buildref": "mesolite", "elected": true,
		"leader": s.cfg.Leader, "frameworkId": s.a.FrameworkID(),
		"marathon_config": map[string]any{
			"master": "mesolite", "framework_name": "marathon", "hostname": cfg.Hostname,
			"local_port_min": 10000, "local_port_max": 20000, "executor": "//cmd",
			"mesos_role": cfg.Role, "checkpoint": true, "ha": false, "features": []string{},
			"task_launch_timeout": 300000, "mesos_user": "root", "webui_url": nil,
		},
		"http_config": map[string]any{"http_port": portOf(s.cfg.Leader)},
	})
}

func portOf(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// embeds reads Marathon's embed parameters, with or without the apps./app.
// prefix.
func embeds(q url.Values) map[string]bool {
	out := map[string]bool{}
	for _, e := range q["embed"] {
		for _, p := range []string{"group.apps.", "apps.", "app."} {
			e = strings.TrimPrefix(e, p)
		}
		out[e] = true
	}
	return out
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// AppsResource.index: counts and deployments always, the rest as asked.
	e := appEmbed(q, "apps.", "app.")
	e.counts, e.deployments = true, true
	idFilter := strings.ToLower(q.Get("id"))
	cmdFilter := strings.ToLower(q.Get("cmd"))
	labelSel, err := parseLabelSelector(q.Get("label"))
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, msg(err.Error()))
		return
	}
	snap := s.a.Snapshot()
	apps := make([]map[string]any, 0, len(snap.Apps))
	for _, v := range snap.Apps {
		if idFilter != "" && !strings.Contains(strings.ToLower(v.ID), idFilter) {
			continue
		}
		if cmdFilter != "" && (v.Spec.Cmd == "" || !strings.Contains(strings.ToLower(v.Spec.Cmd), cmdFilter)) {
			continue
		}
		if !labelSel(v.Spec.Labels) {
			continue
		}
		apps = append(apps, renderApp(v, e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": apps})
}

func (s *Server) showApp(w http.ResponseWriter, r *http.Request, id string) {
	canon := marathon.CanonicalID(id)
	v := s.a.Snapshot().App(canon)
	if v == nil {
		writeJSON(w, http.StatusNotFound, msg(fmt.Sprintf("App '%s' does not exist", canon)))
		return
	}
	// AppsResource.show: counts, tasks, lastTaskFailure and deployments
	// always ("deprecated. For compatibility."), the rest as asked.
	e := appEmbed(r.URL.Query(), "app.", "apps.")
	e.counts, e.tasks, e.lastTaskFailure, e.deployments = true, true, true, true
	app := renderApp(v, e)
	if e.mesolite {
		s.addVIPs(app, canon)
	}
	writeJSON(w, http.StatusOK, map[string]any{"app": app})
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	v, dr, err := s.a.CreateApp(r.Context(), body)
	if err != nil {
		writeError(w, err)
		return
	}
	// AppsResource.create: the app with zero counts and its deployment.
	app := renderApp(v, embed{counts: true, deployments: true, noVersionInfo: true})
	w.Header().Set("Location", "/v2/apps"+v.ID)
	w.Header().Set("Marathon-Deployment-Id", dr.DeploymentID)
	s.apiPost(r, renderApp(v, embed{noVersionInfo: true}))
	writeJSON(w, http.StatusCreated, app)
}

func (s *Server) updateApp(w http.ResponseWriter, r *http.Request, id string, put bool) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	force := boolParam(q, "force", false)
	// A body of only "version" (and the id) rolls the app back to it.
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) == nil {
		if v, ok := probe["version"]; ok && string(bytes.TrimSpace(v)) != "null" {
			others := 0
			for k, raw := range probe {
				if k != "version" && k != "id" && string(bytes.TrimSpace(raw)) != "null" {
					others++
				}
			}
			var version string
			if others == 0 && json.Unmarshal(v, &version) == nil {
				res, err := s.a.RollbackApp(r.Context(), id, version, force)
				if err != nil {
					writeError(w, err)
					return
				}
				w.Header().Set("Marathon-Deployment-Id", res.DeploymentID)
				if v := s.a.Snapshot().App(marathon.CanonicalID(id)); v != nil {
					s.apiPost(r, renderApp(v, embed{}))
				}
				writeJSON(w, http.StatusOK, renderDeploymentResult(res))
				return
			}
		}
	}
	// In Marathon's AppUpdate a null field is a field not given: go-marathon
	// sends {"id":…,"instances":0,"ports":null,"dependencies":null} to
	// scale, and a null must neither wipe a field nor count as a change.
	upd, err := marathon.DecodeObject(body)
	if err != nil {
		writeError(w, err)
		return
	}
	stripped := false
	for k, v := range upd {
		if v == nil {
			delete(upd, k)
			stripped = true
		}
	}
	if stripped {
		if body, err = json.Marshal(upd); err != nil {
			writeError(w, err)
			return
		}
	}
	opts := agent.UpdateOptions{Partial: true, Force: force, AllowCreate: put}
	if put && !boolParam(q, "partialUpdate", true) {
		opts.Partial = false
	}
	res, created, err := s.a.UpdateApp(r.Context(), id, body, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Marathon-Deployment-Id", res.DeploymentID)
	if v := s.a.Snapshot().App(marathon.CanonicalID(id)); v != nil {
		s.apiPost(r, renderApp(v, embed{}))
	}
	status := http.StatusOK
	if created {
		w.Header().Set("Location", "/v2/apps"+marathon.CanonicalID(id))
		status = http.StatusCreated
	}
	writeJSON(w, status, renderDeploymentResult(res))
}

// updateApps serves PUT and PATCH /v2/apps: a list of apps changed (PUT
// also creates) in one deployment, as AppsResource.replaceMultiple does;
// PUT's items are partial updates unless ?partialUpdate=false.
func (s *Server) updateApps(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	put := r.Method == "PUT"
	partial := !put || boolParam(q, "partialUpdate", true)
	res, err := s.a.UpdateApps(r.Context(), body, partial, put, boolParam(q, "force", false))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Marathon-Deployment-Id", res.DeploymentID)
	writeJSON(w, http.StatusOK, renderDeploymentResult(res))
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request, id string) {
	res, err := s.a.DeleteApp(r.Context(), id, boolParam(r.URL.Query(), "force", true))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Marathon-Deployment-Id", res.DeploymentID)
	writeJSON(w, http.StatusOK, renderDeploymentResult(res))
}

func (s *Server) restartApp(w http.ResponseWriter, r *http.Request, id string) {
	res, err := s.a.RestartApp(r.Context(), id, boolParam(r.URL.Query(), "force", false))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Marathon-Deployment-Id", res.DeploymentID)
	writeJSON(w, http.StatusOK, renderDeploymentResult(res))
}

func (s *Server) appTasks(w http.ResponseWriter, r *http.Request, id string) {
	canon := marathon.CanonicalID(id)
	v := s.a.Snapshot().App(canon)
	if v == nil {
		writeJSON(w, http.StatusNotFound, msg(fmt.Sprintf("App '%s' does not exist", canon)))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": renderTasks(r, v.Tasks)})
}

// killAppTasks serves DELETE /v2/apps/{id}/tasks[/{taskId}].
func (s *Server) killAppTasks(w http.ResponseWriter, r *http.Request, id, taskID string) {
	canon := marathon.CanonicalID(id)
	v := s.a.Snapshot().App(canon)
	if v == nil {
		writeJSON(w, http.StatusNotFound, msg(fmt.Sprintf("App '%s' does not exist", canon)))
		return
	}
	var ids []string
	if taskID != "" {
		if s.a.Snapshot().Task(taskID) == nil || s.a.Snapshot().Task(taskID).AppID != canon {
			writeJSON(w, http.StatusNotFound, msg(fmt.Sprintf("Task '%s' does not exist", taskID)))
			return
		}
		ids = []string{taskID}
	} else {
		host := r.URL.Query().Get("host")
		for _, t := range v.Tasks {
			if host == "" || host == "*" || host == t.Host {
				ids = append(ids, t.ID)
			}
		}
	}
	q := r.URL.Query()
	tasks, dr, err := s.a.KillTasks(r.Context(), ids, boolParam(q, "scale", false), boolParam(q, "wipe", false), boolParam(q, "force", false))
	if err != nil {
		writeError(w, err)
		return
	}
	if dr != nil {
		w.Header().Set("Marathon-Deployment-Id", dr.DeploymentID)
		writeJSON(w, http.StatusOK, renderDeploymentResult(*dr))
		return
	}
	if taskID != "" {
		if len(tasks) == 0 {
			writeJSON(w, http.StatusNotFound, msg(fmt.Sprintf("Task '%s' does not exist", taskID)))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"task": renderOneTask(r, tasks[0])})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": renderTasks(r, tasks)})
}

func (s *Server) appVersions(w http.ResponseWriter, _ *http.Request, id string) {
	vs, err := s.a.AppVersions(id)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = marathon.FormatTime(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
}

func (s *Server) appVersion(w http.ResponseWriter, _ *http.Request, id, version string) {
	v, err := s.a.AppVersion(id, version)
	if err != nil {
		writeError(w, err)
		return
	}
	doc := v.Definition
	doc["version"] = marathon.FormatTime(v.Version)
	doc["versionInfo"] = map[string]any{"lastScalingAt": marathon.FormatTime(v.LastScalingAt), "lastConfigChangeAt": marathon.FormatTime(v.LastConfigChangeAt)}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	statuses := map[string]bool{}
	for _, st := range append(q["status"], q["status[]"]...) {
		switch strings.ToLower(st) {
		case "running":
			statuses[agent.TaskRunning] = true
		case "staging":
			statuses[agent.TaskStaging] = true
		}
	}
	snap := s.a.Snapshot()
	tasks := make([]*agent.TaskView, 0, len(snap.Tasks))
	for _, t := range snap.Tasks {
		if len(statuses) == 0 || statuses[t.State] {
			tasks = append(tasks, t)
		}
	}
	if !embeds(q)["mesolite"] {
		writePlainTasks(w, tasks)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": renderTasks(r, tasks)})
}

// writePlainTasks answers {"tasks":[…]} with Marathon's fields of each
// task, as writeJSON would, from each view's JSON made once (plainTaskJSON):
// with a thousand tasks, encoding them all again on every request was most
// of its time.
func writePlainTasks(w http.ResponseWriter, tasks []*agent.TaskView) {
	n := len(`{"tasks":[]}`) + max(0, len(tasks)-1)
	for _, t := range tasks {
		n += len(plainTaskJSON(t))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	// Piece by piece into the server's buffer: no copy of the whole body.
	_, _ = w.Write([]byte(`{"tasks":[`))
	for i, t := range tasks {
		if i > 0 {
			_, _ = w.Write(comma)
		}
		_, _ = w.Write(plainTaskJSON(t))
	}
	_, _ = w.Write([]byte("]}"))
}

var comma = []byte(",")

func (s *Server) deleteTasks(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	ids, err := taskIDs(body)
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	tasks, dr, err := s.a.KillTasks(r.Context(), ids, boolParam(q, "scale", false), boolParam(q, "wipe", false), boolParam(q, "force", false))
	if err != nil {
		writeError(w, err)
		return
	}
	if dr != nil {
		w.Header().Set("Marathon-Deployment-Id", dr.DeploymentID)
		writeJSON(w, http.StatusOK, renderDeploymentResult(*dr))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": renderTasks(r, tasks)})
}

// taskIDs reads the body of POST /v2/tasks/delete, {"ids": [...]}, with
// the app decoder's checks: malformed JSON is a 400, a duplicate key or a
// value of the wrong type a 422 naming its path.
func taskIDs(body []byte) ([]string, error) {
	obj, err := marathon.DecodeObject(body)
	if err != nil {
		return nil, err
	}
	raw, ok := obj["ids"]
	if !ok || raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, &marathon.ValidationError{Details: []marathon.Detail{{Path: "/ids", Errors: []string{"expected an array of task ids"}}}}
	}
	ids := make([]string, 0, len(list))
	var details []marathon.Detail
	for i, v := range list {
		id, ok := v.(string)
		if !ok {
			details = append(details, marathon.Detail{Path: fmt.Sprintf("/ids(%d)", i), Errors: []string{"expected a string"}})
			continue
		}
		ids = append(ids, id)
	}
	if details != nil {
		return nil, &marathon.ValidationError{Details: details}
	}
	return ids, nil
}

func (s *Server) listDeployments(w http.ResponseWriter, _ *http.Request) {
	ds := s.a.Snapshot().Deployments
	out := make([]marathon.Deployment, 0, len(ds))
	for _, d := range ds {
		out = append(out, renderDeployment(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) cancelDeployment(w http.ResponseWriter, r *http.Request, id string) {
	dr, err := s.a.CancelDeployment(r.Context(), id, boolParam(r.URL.Query(), "force", false))
	if err != nil {
		writeError(w, err)
		return
	}
	if dr == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Marathon-Deployment-Id", dr.DeploymentID)
	writeJSON(w, http.StatusOK, renderDeploymentResult(*dr))
}

// queue serves GET /v2/queue as QueueInfoConversion writes it: each item's
// app is the plain App (no AppInfo fields); lastUnusedOffers only with
// ?embed=lastUnusedOffers (mesolite has no offers: it is empty); mesolite's
// waitingReason only with ?embed=mesolite.
func (s *Server) queue(w http.ResponseWriter, r *http.Request) {
	snap := s.a.Snapshot()
	q := r.URL.Query()
	mesolite := embeds(q)["mesolite"]
	offers := false
	for _, e := range q["embed"] {
		offers = offers || e == "lastUnusedOffers"
	}
	items := make([]map[string]any, 0, len(snap.Queue))
	for _, q := range snap.Queue {
		item := map[string]any{
			"count": q.Count,
			"delay": map[string]any{"timeLeftSeconds": q.TimeLeftSeconds, "overdue": q.Overdue},
			"since": marathon.FormatTime(q.Since),
			"app":   renderApp(q.App, embed{}),
		}
		summary := map[string]any{"processedOffersCount": 0, "unusedOffersCount": 0, "rejectSummaryLastOffers": []any{}, "rejectSummaryLaunchAttempt": []any{}}
		if q.Waiting != "" && mesolite {
			// mesolite's: why the agent cannot place the instance.
			item["waitingReason"] = q.Waiting
		}
		if offers {
			item["lastUnusedOffers"] = []any{}
		}
		item["processedOffersSummary"] = summary
		items = append(items, item)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": items})
}

func (s *Server) resetDelay(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.a.ResetDelay(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readFile serves a task's sandbox file, as Mesos's /files/read does:
// ?task=<id>&path=stdout&offset=N&length=M answers {"data","offset"};
// offset -1 answers the end of the stream (stdout with its rotated files,
// see agent.ReadTaskFile).
func (s *Server) readFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	taskID := q.Get("task")
	name := q.Get("path")
	if name == "" {
		name = agent.StdoutFile
	}
	// The task and its file first: an unknown one is a 404 whatever the
	// offset says.
	if _, err := s.a.ReadTaskFile(taskID, name, -1, 0); err != nil {
		writeError(w, err)
		return
	}
	offset, err := strconv.ParseInt(q.Get("offset"), 10, 64)
	if q.Get("offset") == "" {
		offset, err = 0, nil
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, msg("offset must be an integer"))
		return
	}
	length := int64(maxFileChunk)
	if l := q.Get("length"); l != "" {
		if length, err = strconv.ParseInt(l, 10, 64); err != nil || length < 0 {
			writeJSON(w, http.StatusBadRequest, msg("length must be a non-negative integer"))
			return
		}
		length = min(length, maxFileChunk)
	}
	// The stream across its rotated files; offsets count from the task's
	// first byte, so they stay right when a file rotates.
	c, err := s.a.ReadTaskFile(taskID, name, offset, length)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": string(c.Data), "offset": c.Offset})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	snap := s.a.Snapshot()
	cfg := s.a.Config()
	writeJSON(w, http.StatusOK, map[string]any{
		"agentId": s.a.AgentID(), "frameworkId": s.a.FrameworkID(), "version": s.cfg.Version,
		"workDir": s.a.WorkDir(), "dockerUp": snap.DockerUp, "recovery": renderRecovery(snap.Recovery),
		"healthChecks":      s.a.CheckPath(),
		"unreadableRecords": snap.Unreadable, "apps": len(snap.Apps), "tasks": len(snap.Tasks),
		"resources": map[string]any{"cpus": cfg.Cpus, "mem": cfg.MemMiB, "disk": cfg.DiskMiB, "ports": fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax)},
		"reserved":  reservedOf(snap),
		"network":   renderNetwork(s.a.Network()),
	})
}

func (s *Server) volumes(w http.ResponseWriter, r *http.Request) {
	vols, err := s.a.Volumes()
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]volumeJSON, len(vols))
	for i, v := range vols {
		out[i] = renderVolume(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"volumes": out})
}

// apiPost publishes Marathon's api_post_event.
func (s *Server) apiPost(r *http.Request, app map[string]any) {
	s.a.Bus().Publish("api_post_event", map[string]any{"clientIp": remoteIP(r), "uri": r.URL.Path, "appDefinition": app})
}

// remoteIP is the client's address without its port, as Marathon reports
// it in events.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// renderTasks renders tasks as Marathon does, with mesolite's fields only
// when the request asks for them (?embed=mesolite).
func renderTasks(r *http.Request, tasks []*agent.TaskView) any {
	return renderTaskList(tasks, embeds(r.URL.Query())["mesolite"])
}

// renderOneTask renders one task, with mesolite's fields when asked.
func renderOneTask(r *http.Request, t *agent.TaskView) any {
	if embeds(r.URL.Query())["mesolite"] {
		return renderMesoliteTask(t)
	}
	return renderTask(t)
}

// readBody reads a request body, answering 400 itself when it is empty or
// too large.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, msg(fmt.Sprintf("Request body is larger than %d bytes", MaxBodyBytes)))
			return nil, false
		}
		writeJSON(w, http.StatusBadRequest, msg("read body: "+err.Error()))
		return nil, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Please specify data in JSON format", "details": "No content to map due to end-of-input"})
		return nil, false
	}
	return body, true
}

// writeError maps an error to Marathon's status and body: agent/api is
// the one place that knows the agent's error classes as status codes.
func writeError(w http.ResponseWriter, err error) {
	var (
		se  *marathon.SyntaxError
		ve  *marathon.ValidationError
		le  *agent.LockedError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &se):
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Invalid JSON", "details": se.Msg})
	case errors.As(err, &ve):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Object is not valid", "details": ve.Details})
	case errors.As(err, &le):
		ds := make([]map[string]string, 0, len(le.Deployments))
		for _, id := range le.Deployments {
			ds = append(ds, map[string]string{"id": id})
		}
		writeJSON(w, http.StatusConflict, map[string]any{"message": le.Error(), "deployments": ds})
	case errors.Is(err, agent.ErrNotFound):
		writeJSON(w, http.StatusNotFound, msg(err.Error()))
	case errors.Is(err, agent.ErrConflict):
		writeJSON(w, http.StatusConflict, msg(err.Error()))
	case errors.Is(err, agent.ErrInvalid):
		writeJSON(w, http.StatusBadRequest, msg(err.Error()))
	case errors.Is(err, agent.ErrUnprocessable):
		writeJSON(w, http.StatusUnprocessableEntity, msg(err.Error()))
	case errors.Is(err, agent.ErrUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, msg(err.Error()))
	case errors.As(err, &mbe):
		writeJSON(w, http.StatusRequestEntityTooLarge, msg(fmt.Sprintf("Request body is larger than %d bytes", MaxBodyBytes)))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusServiceUnavailable, msg("request cancelled: "+err.Error()))
	default:
		writeJSON(w, http.StatusInternalServerError, msg(err.Error()))
	}
}

func msg(m string) map[string]string { return map[string]string{"message": m} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"message":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func only(w http.ResponseWriter, r *http.Request, method string, h http.HandlerFunc) {
	if r.Method != method {
		methodNotAllowed(w)
		return
	}
	h(w, r)
}

func methodNotAllowed(w http.ResponseWriter) {
	writeJSON(w, http.StatusMethodNotAllowed, msg("HTTP method not allowed"))
}

// boolParam reads a boolean query parameter case-insensitively (the
// Python DC/OS CLI sends "True").
func boolParam(q url.Values, name string, def bool) bool {
	v := q.Get(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		return def
	}
	return b
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// parseLabelSelector reads Marathon's label selector: comma-separated
// terms of key, key==value, key!=value, key in (a, b), key notin (a, b).
func parseLabelSelector(sel string) (func(map[string]string) bool, error) {
	if strings.TrimSpace(sel) == "" {
		return func(map[string]string) bool { return true }, nil
	}
	var terms []func(map[string]string) bool
	for _, raw := range splitSelector(sel) {
		t := strings.TrimSpace(raw)
		switch {
		case strings.Contains(t, "=="):
			k, v, _ := strings.Cut(t, "==")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			terms = append(terms, func(l map[string]string) bool { x, ok := l[k]; return ok && x == v })
		case strings.Contains(t, "!="):
			k, v, _ := strings.Cut(t, "!=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			terms = append(terms, func(l map[string]string) bool { x, ok := l[k]; return ok && x != v })
		case strings.Contains(t, " notin ") || strings.Contains(t, " in "):
			op := " in "
			if strings.Contains(t, " notin ") {
				op = " notin "
			}
			k, rest, _ := strings.Cut(t, op)
			rest = strings.TrimSpace(rest)
			if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
				//lint:ignore ST1005 Marathon's own words, which clients match
				return nil, fmt.Errorf("Can not parse label selector %s. Reason: expected (a, b) after%s", sel, op)
			}
			set := map[string]bool{}
			for _, v := range strings.Split(rest[1:len(rest)-1], ",") {
				set[strings.TrimSpace(v)] = true
			}
			k = strings.TrimSpace(k)
			in := op == " in "
			terms = append(terms, func(l map[string]string) bool { x, ok := l[k]; return ok && set[x] == in })
		default:
			k := t
			terms = append(terms, func(l map[string]string) bool { _, ok := l[k]; return ok })
		}
	}
	return func(l map[string]string) bool {
		for _, t := range terms {
			if !t(l) {
				return false
			}
		}
		return true
	}, nil
}

// splitSelector splits on commas outside parentheses.
func splitSelector(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
