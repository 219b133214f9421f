package api

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/api/ui"
	"github.com/mesolite/mesolite/metrics"
)

// routePattern names the route a path takes, with its ids replaced by
// their names ({id}, {taskId}), so a metric label never holds a raw id.
func routePattern(p string) string {
	switch p {
	case "/", "/ping", "/metrics", "/v2/info", "/v2/leader", "/v2/apps", "/v2/tasks", "/v2/tasks/delete",
		"/v2/deployments", "/v2/queue", "/v2/events", "/v2/groups", "/files/read", "/files/read.json",
		"/mesolite/v1/volumes", "/mesolite/v1/status":
		return p
	case "/v2/apps/":
		return "/v2/apps"
	}
	switch {
	case ui.Serves(p):
		return "/ui/"
	case strings.HasPrefix(p, "/v2/apps/"):
		rest := strings.TrimPrefix(p, "/v2/apps")
		switch {
		case strings.HasSuffix(rest, "/restart"):
			return "/v2/apps/{id}/restart"
		case strings.HasSuffix(rest, "/tasks"):
			return "/v2/apps/{id}/tasks"
		case strings.Contains(rest, "/tasks/"):
			return "/v2/apps/{id}/tasks/{taskId}"
		case strings.HasSuffix(rest, "/versions"):
			return "/v2/apps/{id}/versions"
		case strings.Contains(rest, "/versions/"):
			return "/v2/apps/{id}/versions/{version}"
		}
		return "/v2/apps/{id}"
	case strings.HasPrefix(p, "/v2/deployments/"):
		return "/v2/deployments/{id}"
	case strings.HasPrefix(p, "/v2/queue/") && strings.HasSuffix(p, "/delay"):
		return "/v2/queue/{id}/delay"
	case strings.HasPrefix(p, "/v2/groups/"):
		return "/v2/groups/{id}"
	case strings.HasPrefix(p, "/mesolite/v1/volumes/"):
		return "/mesolite/v1/volumes/{id}"
	}
	return "other"
}

// methodLabel keeps the method label to the methods the API knows.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// snapshotCollector reports what the agent's latest snapshot shows, read
// when Prometheus scrapes: nothing is kept or updated in between.
type snapshotCollector struct {
	a *agent.Agent
}

var (
	descTasks = prometheus.NewDesc(metrics.Namespace+"_tasks",
		"Tasks by app and state (a stopped resident instance's task is TASK_KILLED).", []string{"app", "state"}, nil)
	descApps        = prometheus.NewDesc(metrics.Namespace+"_apps", "Apps defined.", nil, nil)
	descVolumeUsed  = prometheus.NewDesc(metrics.Namespace+"_volume_used_bytes", "Bytes a persistent volume uses, as last measured (every 30 s).", []string{"app", "volume"}, nil)
	descVolumeSize  = prometheus.NewDesc(metrics.Namespace+"_volume_size_bytes", "A persistent volume's declared size.", []string{"app", "volume"}, nil)
	descSubscribers = prometheus.NewDesc(metrics.Namespace+"_event_subscribers", "Clients of /v2/events connected now.", nil, nil)
	descOffered     = prometheus.NewDesc(metrics.Namespace+"_resources_offered", "What the agent offers: cpus, mem and disk (MiB), ports.", []string{"resource"}, nil)
	descReserved    = prometheus.NewDesc(metrics.Namespace+"_resources_reserved", "What the instances' reservations hold: cpus, mem and disk (MiB), ports.", []string{"resource"}, nil)
	descRecovery    = prometheus.NewDesc(metrics.Namespace+"_recovery_duration_seconds", "How long the recovery of the last start took.", nil, nil)
	descAdopted     = prometheus.NewDesc(metrics.Namespace+"_recovery_adopted_containers", "Running containers the last start adopted.", nil, nil)
	descRelaunched  = prometheus.NewDesc(metrics.Namespace+"_recovery_relaunched_tasks", "Tasks the last start found dead and relaunched.", nil, nil)
	descOrphans     = prometheus.NewDesc(metrics.Namespace+"_recovery_orphaned_containers", "Containers of this agent no task owned, found at the last start.", nil, nil)
	descDockerUp    = prometheus.NewDesc(metrics.Namespace+"_docker_up", "1 when the container runtime (Docker) answers.", nil, nil)
)

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTasks, descApps, descVolumeUsed, descVolumeSize, descSubscribers,
		descOffered, descReserved, descRecovery, descAdopted, descRelaunched, descOrphans, descDockerUp} {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.a.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	type key struct{ app, state string }
	tasks := map[key]int{}
	for _, t := range snap.Tasks {
		tasks[key{t.AppID, t.State}]++
		for _, v := range t.Volumes {
			gauge(descVolumeSize, v.SizeMiB*(1<<20), t.AppID, v.PersistenceID)
			if v.UsedBytes >= 0 {
				gauge(descVolumeUsed, float64(v.UsedBytes), t.AppID, v.PersistenceID)
			}
		}
	}
	for k, n := range tasks {
		gauge(descTasks, float64(n), k.app, k.state)
	}
	gauge(descApps, float64(len(snap.Apps)))
	gauge(descSubscribers, float64(c.a.Bus().Subscribers()))
	cfg := c.a.Config()
	res := reservedOf(snap)
	for _, r := range []struct {
		name           string
		offered, inUse float64
	}{
		{"cpus", cfg.Cpus, res.Cpus}, {"mem", cfg.MemMiB, res.Mem}, {"disk", cfg.DiskMiB, res.Disk},
		{"ports", float64(cfg.PortMax - cfg.PortMin + 1), float64(res.Ports)},
	} {
		gauge(descOffered, r.offered, r.name)
		gauge(descReserved, r.inUse, r.name)
	}
	if rec := snap.Recovery; rec.Done {
		gauge(descRecovery, rec.TookSeconds)
		gauge(descAdopted, float64(rec.Adopted))
		gauge(descRelaunched, float64(rec.Relaunched))
		gauge(descOrphans, float64(rec.Orphans))
	}
	up := 0.0
	if snap.DockerUp {
		up = 1
	}
	gauge(descDockerUp, up)
}

// reserved is what the instances' reservations hold.
type reserved struct {
	Cpus  float64 `json:"cpus"`
	Mem   float64 `json:"mem"`
	Disk  float64 `json:"disk"`
	Ports int     `json:"ports"`
}

func reservedOf(snap *agent.Snapshot) reserved {
	var r reserved
	for _, inst := range snap.Instances {
		if res := inst.Reservation; res != nil {
			r.Cpus += res.Cpus
			r.Mem += res.Mem
			r.Disk += res.Disk
			r.Ports += len(res.HostPorts)
		}
	}
	return r
}
