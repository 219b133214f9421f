package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeMetrics reads /metrics with Prometheus's own text parser.
func scrapeMetrics(t *testing.T, p *agentProc) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.url()+"/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample sums the samples of a family whose labels include want (a
// counter's or gauge's value, a histogram's count).
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// waitMetric scrapes until cond holds for the named sample, for at most d.
func waitMetric(t *testing.T, p *agentProc, what, name string, labels map[string]string, d time.Duration, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := sample(scrapeMetrics(t, p), name, labels)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %s%v = %v", d, what, name, labels, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMetrics runs the tutorial against a real agent and reads /metrics
// at each step: a launch, a health result, a volume write, a failure and
// its relaunch, a stop and a start move what they should, and every label
// stays a pattern, never an id.
func TestMetrics(t *testing.T) {
	docker := requireDocker(t)
	requireImage(t, docker, "mesolite/testapp:latest", "test-image")
	p := startConfiguredAgent(t, `volume_usage_interval = "1s"`, "")
	app := map[string]string{"app": "/testapp"}

	before := scrapeMetrics(t, p)
	if v := sample(before, "mesolite_task_launches_total", nil); v != 0 {
		t.Fatalf("launches before any app: %v", v)
	}
	// Recovery runs after the API answers: its figures come when it ends.
	waitMetric(t, p, "the recovery's duration", "mesolite_recovery_duration_seconds", nil, 15*time.Second, func(v float64) bool { return v > 0 })

	// An event stream counts as a subscriber while it is open.
	stream, err := http.Get(p.url() + "/v2/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if _, err := bufio.NewReader(stream.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, p, "the subscriber", "mesolite_event_subscribers", nil, 5*time.Second, func(v float64) bool { return v == 1 })

	raw, err := os.ReadFile("../../testdata/testapp.marathon.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := p.do(http.MethodPost, "/v2/apps", rawJSON(raw)); code != http.StatusCreated {
		t.Fatalf("POST /v2/apps: %d %s", code, body)
	}
	task := p.waitTask("/testapp", "a healthy task", uiTimeout, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
	})
	m := scrapeMetrics(t, p)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
	}{
		{"mesolite_task_launches_total", app, func(v float64) bool { return v == 1 }},
		{"mesolite_tasks", map[string]string{"app": "/testapp", "state": "TASK_RUNNING"}, func(v float64) bool { return v == 1 }},
		{"mesolite_health_checks_total", map[string]string{"app": "/testapp", "protocol": "HTTP", "result": "success"}, func(v float64) bool { return v >= 1 }},
		{"mesolite_health_check_duration_seconds", map[string]string{"protocol": "HTTP"}, func(v float64) bool { return v >= 1 }},
		{"mesolite_api_requests_total", map[string]string{"route": "/v2/apps", "method": "POST", "code": "201"}, func(v float64) bool { return v == 1 }},
		{"mesolite_api_request_duration_seconds", map[string]string{"route": "/v2/apps", "method": "POST"}, func(v float64) bool { return v == 1 }},
		{"mesolite_runtime_call_duration_seconds", map[string]string{"call": "run"}, func(v float64) bool { return v == 1 }},
		{"mesolite_volume_size_bytes", app, func(v float64) bool { return v == 16<<20 }},
		{"mesolite_resources_reserved", map[string]string{"resource": "mem"}, func(v float64) bool { return v == 64 }},
	} {
		if v := sample(m, c.name, c.labels); !c.want(v) {
			t.Errorf("after the launch: %s%v = %v", c.name, c.labels, v)
		}
	}
	waitMetric(t, p, "the deployment's duration", "mesolite_deployment_duration_seconds", map[string]string{"result": "success"}, 10*time.Second, func(v float64) bool { return v == 1 })

	// A volume write shows at the next measurement.
	port := task.Ports[0]
	httpPut(t, fmt.Sprintf("http://127.0.0.1:%d/kv/blob", port), strings.Repeat("x", 1<<20), 10*time.Second)
	waitMetric(t, p, "the write in the volume's use", "mesolite_volume_used_bytes", app, 10*time.Second, func(v float64) bool { return v >= 1<<20 })

	// A crash: a failure by its reason, and a relaunch for that reason.
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/exit?code=3", port), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitMetric(t, p, "the failure", "mesolite_task_failures_total", map[string]string{"app": "/testapp", "reason": "exited"}, 20*time.Second, func(v float64) bool { return v == 1 })
	waitMetric(t, p, "the relaunch", "mesolite_task_relaunches_total", map[string]string{"app": "/testapp", "reason": "exited"}, 30*time.Second, func(v float64) bool { return v == 1 })

	// Stop and start: the start is a relaunch of its own kind.
	p.mustCLI("marathon", "app", "stop", "testapp")
	p.waitTask("/testapp", "the stopped task", uiTimeout, func(t e2eTask) bool { return t.State == "TASK_KILLED" })
	p.mustCLI("marathon", "app", "start", "testapp")
	waitMetric(t, p, "the start", "mesolite_task_relaunches_total", map[string]string{"app": "/testapp", "reason": "start"}, uiTimeout, func(v float64) bool { return v == 1 })
	m = scrapeMetrics(t, p)
	if v := sample(m, "mesolite_task_launches_total", app); v != 3 {
		t.Errorf("launches after a crash and a start: %v, want 3", v)
	}
	if v := sample(m, "mesolite_runtime_call_duration_seconds", map[string]string{"call": "stop"}); v < 1 {
		t.Errorf("no timed stop call: %v", v)
	}

	// Labels hold route patterns, never an app, task or volume id.
	p.mustCLI("marathon", "app", "show", "testapp")
	p.mustCLI("marathon", "task", "list")
	m = scrapeMetrics(t, p)
	for _, name := range []string{"mesolite_api_requests_total", "mesolite_api_request_duration_seconds"} {
		for _, mt := range m[name].GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "route" && (strings.Contains(l.GetValue(), "testapp") || strings.Contains(l.GetValue(), "instance-")) {
					t.Errorf("%s has a raw id in its route label: %q", name, l.GetValue())
				}
			}
		}
	}
	if v := sample(m, "mesolite_api_requests_total", map[string]string{"route": "/v2/apps/{id}", "method": "GET"}); v < 1 {
		t.Errorf("GET /v2/apps/testapp is not counted as /v2/apps/{id}: %v", v)
	}

	// Removing the app drops its series.
	p.mustCLI("marathon", "app", "remove", "testapp")
	waitMetric(t, p, "the app's series gone", "mesolite_task_launches_total", app, uiTimeout, func(v float64) bool { return v == 0 })
}
