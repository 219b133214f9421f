package metrics

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the handler's text answer with Prometheus's own parser.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.Header.Set("Accept", "text/plain")
	m.Handler().ServeHTTP(w, r)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value finds the sample of a family with the given labels (a counter's,
// a gauge's, or a histogram's count).
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	m := New("1.2.3")
	m.Launched("/a")
	m.Launched("/a")
	m.Failed("/a", ReasonExited)
	m.Relaunched("/a", ReasonExited)
	m.HealthResult("/a", "HTTP", true, 2*time.Millisecond)
	m.HealthResult("/a", "HTTP", false, time.Second)
	m.DeploymentDone(true, 3*time.Second)
	m.APIRequest("/v2/apps/{id}", "GET", 200, time.Millisecond, true)
	m.APIRequest("/v2/events", "GET", 200, time.Minute, false)
	m.EventDropped()
	m.RuntimeCall("run", 40*time.Millisecond, nil)
	m.RuntimeCall("stop", time.Millisecond, errors.New("no"))

	fams := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mesolite_task_launches_total", map[string]string{"app": "/a"}, 2},
		{"mesolite_task_failures_total", map[string]string{"app": "/a", "reason": "exited"}, 1},
		{"mesolite_task_relaunches_total", map[string]string{"app": "/a", "reason": "exited"}, 1},
		{"mesolite_health_checks_total", map[string]string{"app": "/a", "protocol": "HTTP", "result": "success"}, 1},
		{"mesolite_health_checks_total", map[string]string{"result": "failure"}, 1},
		{"mesolite_health_check_duration_seconds", map[string]string{"protocol": "HTTP"}, 2},
		{"mesolite_deployment_duration_seconds", map[string]string{"result": "success"}, 1},
		{"mesolite_api_requests_total", map[string]string{"route": "/v2/apps/{id}", "method": "GET", "code": "200"}, 1},
		{"mesolite_api_requests_total", map[string]string{"route": "/v2/events"}, 1},
		{"mesolite_api_request_duration_seconds", map[string]string{"route": "/v2/apps/{id}"}, 1},
		{"mesolite_events_dropped_total", nil, 1},
		{"mesolite_runtime_call_duration_seconds", map[string]string{"call": "run"}, 1},
		{"mesolite_runtime_call_errors_total", map[string]string{"call": "stop"}, 1},
		{"mesolite_build_info", map[string]string{"version": "1.2.3"}, 1},
	} {
		got, ok := value(fams, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(fams, "mesolite_api_request_duration_seconds", map[string]string{"route": "/v2/events"}); ok {
		t.Error("an event stream's length is in the API latency histogram")
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	// A removed app's series go.
	m.ForgetApp("/a")
	fams = scrape(t, m)
	for _, name := range []string{"mesolite_task_launches_total", "mesolite_task_failures_total", "mesolite_health_checks_total"} {
		if _, ok := value(fams, name, map[string]string{"app": "/a"}); ok {
			t.Errorf("%s still has app /a after ForgetApp", name)
		}
	}
}

// TestNil: a nil *Metrics counts nothing and never panics.
func TestNil(t *testing.T) {
	var m *Metrics
	m.Launched("/a")
	m.Failed("/a", ReasonOOM)
	m.Relaunched("/a", ReasonKilled)
	m.HealthResult("/a", "TCP", true, 0)
	m.DeploymentDone(false, 0)
	m.APIRequest("/ping", "GET", 200, 0, true)
	m.EventDropped()
	m.RuntimeCall("run", 0, nil)
	m.ForgetApp("/a")
	if err := m.Register(nil); err != nil {
		t.Error(err)
	}
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 404 {
		t.Errorf("nil metrics' handler: %d", w.Code)
	}
}

// BenchmarkHealthResult is the cost the agent pays per health check.
func BenchmarkHealthResult(b *testing.B) {
	m := New("x")
	b.ReportAllocs()
	for b.Loop() {
		m.HealthResult("/app", "HTTP", true, time.Millisecond)
	}
}

// BenchmarkAPIRequest is the cost per API request.
func BenchmarkAPIRequest(b *testing.B) {
	m := New("x")
	b.ReportAllocs()
	for b.Loop() {
		m.APIRequest("/v2/apps/{id}", "GET", 200, time.Millisecond, true)
	}
}
