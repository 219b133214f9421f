// Package metrics holds what the agent counts and times for Prometheus,
// served at /metrics in its text format. Counters and histograms are
// updated where things happen, each update an atomic add on a series
// found by its labels; the figures that describe the state (tasks by
// state, volume use, subscribers, the last recovery) are read from the
// agent's snapshot when Prometheus scrapes, and cost nothing in between.
//
// Labels stay few: an app id, a task state, a reason or result from a
// short fixed list, a route pattern (never a raw path), an HTTP method
// and status, a runtime call's name, a volume's persistence id. An app's
// series go when the app is removed (ForgetApp).
//
// Every method is safe on a nil *Metrics, which counts nothing: tests and
// tools that make an agent without metrics need no stand-in.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric of mesolite's own.
const Namespace = "mesolite"

// Metrics is the agent's set of metrics and the registry that serves them.
type Metrics struct {
	reg *prometheus.Registry

	launches   *prometheus.CounterVec
	failures   *prometheus.CounterVec
	relaunches *prometheus.CounterVec
	checks     *prometheus.CounterVec
	checkTime  *prometheus.HistogramVec
	deploys    *prometheus.HistogramVec
	requests   *prometheus.CounterVec
	reqTime    *prometheus.HistogramVec
	dropped    prometheus.Counter
	calls      *prometheus.HistogramVec
	callErrors *prometheus.CounterVec
}

// New makes the metrics, registered with a registry of their own (with
// the Go runtime's and the process's collectors) and labelled with the
// build's version in mesolite_build_info.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
		m.reg.MustRegister(h)
		return h
	}
	m.launches = counter("task_launches_total", "Tasks launched (a container asked to run), by app.", "app")
	m.failures = counter("task_failures_total", "Tasks that ended without being asked to, by app and reason.", "app", "reason")
	m.relaunches = counter("task_relaunches_total", "Instances launched again on their reservation, by app and why.", "app", "reason")
	m.checks = counter("health_checks_total", "Health check results, by app, protocol and result (success or failure).", "app", "protocol", "result")
	m.checkTime = histogram("health_check_duration_seconds", "How long a health check took, by protocol.",
		[]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2, 10}, "protocol")
	m.deploys = histogram("deployment_duration_seconds", "How long deployments took, by result (success or failed).",
		[]float64{0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900}, "result")
	m.requests = counter("api_requests_total", "API requests answered, by route pattern, method and status code.", "route", "method", "code")
	m.reqTime = histogram("api_request_duration_seconds", "How long the API took to answer, by route pattern and method (event streams excluded).",
		[]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2, 10}, "route", "method")
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "events_dropped_total",
		Help: "Events an event-stream subscriber could not take (its buffer was full); each one disconnects that subscriber."})
	m.reg.MustRegister(m.dropped)
	m.calls = histogram("runtime_call_duration_seconds", "How long calls to the container runtime (Docker) took, by call.",
		[]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30}, "call")
	m.callErrors = counter("runtime_call_errors_total", "Calls to the container runtime (Docker) that failed, by call.", "call")

	info := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the version label is mesolite's version.", ConstLabels: prometheus.Labels{"version": version}})
	info.Set(1)
	m.reg.MustRegister(info,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds a collector, such as one that reads the agent's snapshot
// at scrape time.
func (m *Metrics) Register(c prometheus.Collector) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(c)
}

// Handler serves the metrics in Prometheus's text format (or in what the
// scraper asks for).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Gatherer is the registry, for tests and tools.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Reasons a task failed or an instance was launched again. The list is
// fixed: labels must stay few.
const (
	ReasonExited    = "exited"       // the process exited non-zero
	ReasonFinished  = "finished"     // the process exited zero on its own
	ReasonOOM       = "oom"          // killed for memory
	ReasonUnhealthy = "unhealthy"    // killed after failed health checks
	ReasonLaunch    = "launch_error" // the container could not be made or started
	ReasonLost      = "lost"         // gone while the agent or Docker was down
	ReasonOverQuota = "over_quota"   // killed for a full volume
	ReasonKilled    = "killed"       // killed on request (task kill)
	ReasonRestart   = "restart"      // a restart or a change of definition
	ReasonStart     = "start"        // a stopped instance started again
	ReasonUnknown   = "unknown"      // not known (the agent restarted meanwhile)
)

// Launched counts a task launch.
func (m *Metrics) Launched(app string) {
	if m != nil {
		m.launches.WithLabelValues(app).Inc()
	}
}

// Failed counts a task that ended without being asked to.
func (m *Metrics) Failed(app, reason string) {
	if m != nil {
		m.failures.WithLabelValues(app, reason).Inc()
	}
}

// Relaunched counts an instance launched again on its reservation.
func (m *Metrics) Relaunched(app, reason string) {
	if m != nil {
		m.relaunches.WithLabelValues(app, reason).Inc()
	}
}

// HealthResult counts one health check and times it.
func (m *Metrics) HealthResult(app, protocol string, ok bool, took time.Duration) {
	if m == nil {
		return
	}
	result := "success"
	if !ok {
		result = "failure"
	}
	m.checks.WithLabelValues(app, protocol, result).Inc()
	m.checkTime.WithLabelValues(protocol).Observe(took.Seconds())
}

// DeploymentDone times a deployment that ended.
func (m *Metrics) DeploymentDone(success bool, took time.Duration) {
	if m == nil {
		return
	}
	result := "success"
	if !success {
		result = "failed"
	}
	m.deploys.WithLabelValues(result).Observe(took.Seconds())
}

// codes holds the text of the status codes, so counting a request does
// not format one.
var codes [600]string

func init() {
	for i := range codes {
		codes[i] = strconv.Itoa(i)
	}
}

// APIRequest counts an answered request; route is the route's pattern
// (/v2/apps/{id}), never the path. timed is false for event streams,
// whose length says nothing about the API's speed.
func (m *Metrics) APIRequest(route, method string, code int, took time.Duration, timed bool) {
	if m == nil {
		return
	}
	c := "other"
	if code > 0 && code < len(codes) {
		c = codes[code]
	}
	m.requests.WithLabelValues(route, method, c).Inc()
	if timed {
		m.reqTime.WithLabelValues(route, method).Observe(took.Seconds())
	}
}

// EventDropped counts an event a subscriber could not take.
func (m *Metrics) EventDropped() {
	if m != nil {
		m.dropped.Inc()
	}
}

// RuntimeCall times a call to the container runtime and counts it as an
// error when it failed.
func (m *Metrics) RuntimeCall(call string, took time.Duration, err error) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(call).Observe(took.Seconds())
	if err != nil {
		m.callErrors.WithLabelValues(call).Inc()
	}
}

// ForgetApp drops the series of an app that is gone, so a machine that
// adds and removes many apps does not keep them all.
func (m *Metrics) ForgetApp(app string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"app": app}
	m.launches.DeletePartialMatch(l)
	m.failures.DeletePartialMatch(l)
	m.relaunches.DeletePartialMatch(l)
	m.checks.DeletePartialMatch(l)
}
