package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Answers and events shaped as Marathon 1.8+ writes them (built for these
// tests from the RAML and Marathon's writers; the ids and times are
// mesolite's formats). Each must conform; each with any field added, or
// with any field dropped that Marathon always writes, must not.
const (
	sampleApp = `{"id":"/shop/db","backoffFactor":1.15,"backoffSeconds":1,"cmd":"sleep 1",
"container":{"type":"DOCKER","docker":{"image":"mesolite/postgres:15","forcePullImage":false,"privileged":false,"parameters":[{"key":"label","value":"a=b"}]},
 "volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"type":"root","size":64,"constraints":[]}},{"containerPath":"/etc/x","hostPath":"x","mode":"RO"}],
 "portMappings":[{"containerPort":5432,"hostPort":0,"servicePort":10000,"protocol":"tcp","name":"pg","labels":{"VIP_0":"/shop/db:5432"}}]},
"cpus":0.5,"dependencies":["/shop/other"],"disk":0,"env":{"PGDATA":"/mnt/mesos/sandbox/pgdata"},"executor":"","gpus":0,
"healthChecks":[{"protocol":"TCP","portIndex":0,"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15}],
"readinessChecks":[{"name":"ready","protocol":"HTTP","path":"/ready","portName":"pg","intervalSeconds":30,"timeoutSeconds":10,"httpStatusCodesForReady":[200],"preserveLastResponse":true}],
"instances":1,"labels":{},"maxLaunchDelaySeconds":300,"mem":256,"networks":[{"mode":"container/bridge"}],"requirePorts":false,
"residency":{"relaunchEscalationTimeoutSeconds":3600,"taskLostBehavior":"WAIT_FOREVER"},
"upgradeStrategy":{"minimumHealthCapacity":0.5,"maximumOverCapacity":0},"version":"2026-01-02T03:04:05.678Z",
"versionInfo":{"lastScalingAt":"2026-01-02T03:04:05.678Z","lastConfigChangeAt":"2026-01-02T03:04:05.678Z"},
"killSelection":"YOUNGEST_FIRST","unreachableStrategy":"disabled",
"tasksStaged":0,"tasksRunning":1,"tasksHealthy":1,"tasksUnhealthy":0,"deployments":[{"id":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f60"}],
"tasks":[{"appId":"/shop/db","id":"shop_db.instance-0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f61._app.2","host":"127.0.0.1",
 "slaveId":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f62-S0","state":"TASK_RUNNING","stagedAt":"2026-01-02T03:04:06.000Z","startedAt":"2026-01-02T03:04:07.000Z",
 "version":"2026-01-02T03:04:05.678Z","ports":[31000],"servicePorts":[10000],"ipAddresses":[{"ipAddress":"172.17.0.2","protocol":"IPv4"}],
 "healthCheckResults":[{"alive":true,"consecutiveFailures":0,"firstSuccess":"2026-01-02T03:04:08.000Z","lastSuccess":"2026-01-02T03:04:09.000Z","instanceId":"shop_db.instance-0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f61"}],
 "localVolumes":[{"runSpecId":"/shop/db","containerPath":"pgdata","uuid":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f63","persistenceId":"shop_db#pgdata#0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f63"}]}],
"lastTaskFailure":{"appId":"/shop/db","host":"127.0.0.1","message":"exited 1","state":"TASK_FAILED","taskId":"shop_db.instance-0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f61._app.1",
 "timestamp":"2026-01-02T03:04:06.500Z","version":"2026-01-02T03:04:05.678Z","slaveId":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f62-S0"}}`

	sampleDeployments = `[{"id":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f60","version":"2026-01-02T03:04:05.678Z","affectedApps":["/shop/db","/shop/api"],"affectedPods":[],
"steps":[{"actions":[{"action":"StartApplication","app":"/shop/db"},{"action":"StartApplication","app":"/shop/api"}]},{"actions":[{"action":"ScaleApplication","app":"/shop/db"}]},{"actions":[{"action":"ScaleApplication","app":"/shop/api"}]}],
"currentActions":[{"action":"ScaleApplication","app":"/shop/api","readinessCheckResults":[{"name":"ready","taskId":"shop_api.instance-0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f61._app.1","ready":false,
 "lastResponse":{"status":503,"contentType":"text/plain","body":"warming up"}}]}],"currentStep":3,"totalSteps":3}]`

	sampleDeploymentInfo = `{"eventType":"deployment_info","timestamp":"2026-01-02T03:04:05.700Z",
"plan":{"id":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f60","version":"2026-01-02T03:04:05.678Z",
 "original":{"id":"/","apps":[],"groups":[],"pods":[],"dependencies":[],"version":"2026-01-01T00:00:00.000Z"},
 "target":{"id":"/","apps":[],"pods":[],"dependencies":[],"version":"2026-01-02T03:04:05.678Z","groups":[{"id":"/shop","apps":[{"id":"/shop/web","backoffFactor":1.15,"backoffSeconds":1,
  "cpus":0.1,"disk":0,"executor":"","gpus":0,"instances":1,"labels":{},"maxLaunchDelaySeconds":300,"mem":32,"networks":[{"mode":"host"}],"portDefinitions":[{"port":10001,"protocol":"tcp","name":"http"}],
  "requirePorts":false,"upgradeStrategy":{"minimumHealthCapacity":1,"maximumOverCapacity":1},"version":"2026-01-02T03:04:05.678Z","killSelection":"YOUNGEST_FIRST",
  "unreachableStrategy":{"inactiveAfterSeconds":0,"expungeAfterSeconds":0}}],"groups":[],"pods":[],"dependencies":["/shop/api"],"version":"2026-01-02T03:04:05.678Z"}]},
 "steps":[{"actions":[{"action":"StartApplication","app":"/shop/web"}]},{"actions":[{"action":"ScaleApplication","app":"/shop/web"}]}]},
"currentStep":{"actions":[{"action":"ScaleApplication","app":"/shop/web","readinessCheckResults":[]}]}}`

	sampleQueue = `{"queue":[{"app":{"id":"/big","backoffFactor":1.15,"backoffSeconds":1,"cpus":0.1,"disk":0,"executor":"","gpus":0,"instances":1,"labels":{"a":"b"},
 "maxLaunchDelaySeconds":300,"mem":32,"networks":[{"mode":"host"}],"portDefinitions":[],"requirePorts":false,"upgradeStrategy":{"minimumHealthCapacity":1,"maximumOverCapacity":1},
 "version":"2026-01-02T03:04:05.678Z","versionInfo":{"lastScalingAt":"2026-01-02T03:04:05.678Z","lastConfigChangeAt":"2026-01-02T03:04:05.678Z"},
 "killSelection":"YOUNGEST_FIRST","unreachableStrategy":{"inactiveAfterSeconds":300,"expungeAfterSeconds":600}},
"count":1,"delay":{"timeLeftSeconds":0,"overdue":true},"since":"2026-01-02T03:04:05.678Z",
"processedOffersSummary":{"processedOffersCount":0,"unusedOffersCount":0,"rejectSummaryLastOffers":[],"rejectSummaryLaunchAttempt":[]}}]}`

	sampleStatusUpdate = `{"eventType":"status_update_event","timestamp":"2026-01-02T03:04:05.700Z","slaveId":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f62-S0",
"taskId":"web.instance-0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f61._app.1","taskStatus":"TASK_RUNNING","message":"","appId":"/web","host":"127.0.0.1",
"ipAddresses":[{"ipAddress":"172.17.0.2","protocol":"IPv4"}],"ports":[31000],"version":"2026-01-02T03:04:05.678Z"}`
)

// optional lists the fields a sample may drop and still conform: those
// Marathon writes only sometimes (an Option, an omitEmpty array, an embed
// present only when there is something to embed). Array indexes are *.
var optional = map[string]bool{
	"/app/cmd": true, "/app/container": true, "/app/dependencies": true, "/app/env": true, "/app/healthChecks": true, "/app/readinessChecks": true,
	"/app/residency": true, "/app/lastTaskFailure": true, "/app/lastTaskFailure/slaveId": true,
	"/app/container/portMappings": true, "/app/container/portMappings/*/name": true, "/app/container/portMappings/*/hostPort": true,
	"/app/tasks/*/startedAt": true, "/app/tasks/*/healthCheckResults/*/firstSuccess": true,
	"/app/tasks/*/healthCheckResults/*/lastSuccess": true, "/app/healthChecks/*/portIndex": true,
	"/*/currentActions/*/readinessCheckResults/*/lastResponse": true,
	"/plan/target/groups/*/apps/*/portDefinitions/*/name":      true,
	"/queue/*/app/labels": false,
}

type sample struct {
	name  string
	check func(c *Checker, body []byte) error
	body  string
}

var reIndex = regexp.MustCompile(`/[0-9]+(/|$)`)

func isOptional(ptr string) bool {
	for reIndex.MatchString(ptr) {
		ptr = reIndex.ReplaceAllString(ptr, "/*$1")
	}
	return optional[ptr]
}

func respond(method, path, query string, status int) func(c *Checker, body []byte) error {
	return func(c *Checker, body []byte) error {
		q, _ := url.ParseQuery(query)
		return c.CheckResponse(Response{Method: method, Path: path, Query: q, Status: status,
			Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, Body: body})
	}
}

func event(typ, query string) func(c *Checker, body []byte) error {
	return func(c *Checker, body []byte) error {
		q, _ := url.ParseQuery(query)
		return c.CheckEvent(typ, body, q)
	}
}

var samples = []sample{
	{name: "app", check: respond("GET", "/v2/apps/shop/db", "", 200), body: `{"app":` + sampleApp + `}`},
	{name: "deployments", check: respond("GET", "/v2/deployments", "", 200), body: sampleDeployments},
	{name: "deployment_info", check: event("deployment_info", ""), body: sampleDeploymentInfo},
	{name: "queue", check: respond("GET", "/service/marathon/v2/queue", "", 200), body: sampleQueue},
	{name: "status_update_event", check: event("status_update_event", ""), body: sampleStatusUpdate},
}

func TestSamplesConform(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		if err := s.check(c, []byte(s.body)); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}

// TestAddedOrDroppedFieldFails: adding a field to any object of a sample,
// or dropping any field Marathon always writes, makes it fail.
func TestAddedOrDroppedFieldFails(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		var doc any
		if err := json.Unmarshal([]byte(s.body), &doc); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		objects := 0
		walk(doc, "", func(ptr string, obj map[string]any) {
			objects++
			obj["zzzNotMarathons"] = true
			if c.check(s, doc) == nil {
				t.Errorf("%s: a field added at %s passes", s.name, ptrOr(ptr))
			}
			delete(obj, "zzzNotMarathons")
			keys := make([]string, 0, len(obj))
			for k := range obj {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				v := obj[k]
				delete(obj, k)
				err := c.check(s, doc)
				switch {
				case err == nil && !isOptional(ptr+"/"+k):
					t.Errorf("%s: dropping %s/%s passes", s.name, ptr, k)
				case err != nil && isOptional(ptr+"/"+k):
					t.Errorf("%s: dropping the optional %s/%s fails: %v", s.name, ptr, k, err)
				}
				obj[k] = v
			}
		})
		if objects < 2 {
			t.Errorf("%s: only %d objects walked", s.name, objects)
		}
		if err := c.check(s, doc); err != nil {
			t.Fatalf("%s: the walk left the sample changed: %v", s.name, err)
		}
	}
}

func (c *Checker) check(s sample, doc any) error {
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return s.check(c, b)
}

func ptrOr(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// walk calls fn on every object of doc, depth first, with its JSON pointer.
// Maps of user data (labels, env) are objects too: a field added to them is
// data, not a schema violation, so they are skipped.
func walk(doc any, ptr string, fn func(ptr string, obj map[string]any)) {
	switch v := doc.(type) {
	case map[string]any:
		last := ptr[strings.LastIndex(ptr, "/")+1:]
		if last == "labels" || last == "env" {
			return
		}
		fn(ptr, v)
		for k, child := range v {
			walk(child, ptr+"/"+k, fn)
		}
	case []any:
		for i, child := range v {
			walk(child, ptr+"/"+strconv.Itoa(i), fn)
		}
	}
}

// TestMesoliteFieldsNeedEmbed: mesolite's own fields pass only when the
// request asked for them.
func TestMesoliteFieldsNeedEmbed(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	task := `{"tasks":[{"appId":"/web","id":"web.instance-0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f61._app.1","host":"127.0.0.1",
"slaveId":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f62-S0","state":"TASK_KILLED","ports":[],"servicePorts":[],"ipAddresses":[],"healthCheckResults":[],"localVolumes":[],
"message":"stopped","instanceId":"web.instance-0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f61","incarnation":1}]}`
	mk := func(q string) error {
		return respond("GET", "/v2/tasks", q, 200)(c, []byte(task))
	}
	if err := mk("embed=mesolite"); err != nil {
		t.Errorf("with embed=mesolite: %v", err)
	}
	if err := mk(""); err == nil {
		t.Error("mesolite's task fields pass without embed=mesolite")
	}
	// A stopped task has no times, version or ports.
	stopped := strings.Replace(task, `"state":"TASK_KILLED"`, `"state":"TASK_KILLED","stagedAt":"2026-01-02T03:04:05.678Z"`, 1)
	if err := respond("GET", "/v2/tasks", "embed=mesolite", 200)(c, []byte(stopped)); err == nil {
		t.Error("a stopped task with stagedAt passes")
	}
	// mesolite's events only on streams that ask for them.
	ev := `{"eventType":"mesolite_recovered_event","timestamp":"2026-01-02T03:04:05.678Z","adopted":1,"relaunched":0,"orphans":0,"unreadable":0}`
	if err := c.CheckEvent("mesolite_recovered_event", []byte(ev), url.Values{}); err == nil {
		t.Error("mesolite's event passes on a plain stream")
	}
	if err := c.CheckEvent("mesolite_recovered_event", []byte(ev), url.Values{"embed": {"mesolite"}}); err != nil {
		t.Errorf("mesolite's event on a stream that asked: %v", err)
	}
	if err := c.CheckEvent("made_up_event", []byte(`{"eventType":"made_up_event","timestamp":"2026-01-02T03:04:05.678Z"}`), nil); err == nil {
		t.Error("an unknown event type passes")
	}
}

// TestTimestampsAreMarathons: a time without milliseconds or not in UTC
// fails.
func TestTimestampsAreMarathons(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []string{"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.678+01:00", "2026-01-02T03:04:05.678901Z", "2026-01-02 03:04:05.678Z"} {
		body := []byte(`{"deploymentId":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f60","version":"` + ts + `"}`)
		if err := respond("PUT", "/v2/apps/web", "", 200)(c, body); err == nil {
			t.Errorf("version %q passes", ts)
		}
	}
	body := []byte(`{"deploymentId":"0f5f0c3a-6a1e-4b55-8e4e-1b2c3d4e5f60","version":"2026-01-02T03:04:05.678Z"}`)
	if err := respond("PUT", "/v2/apps/web", "", 200)(c, body); err != nil {
		t.Errorf("a good version fails: %v", err)
	}
}

// TestLightPlan: a stream that asked for ?plan-format=light gets plans
// without original and target, and others get them.
func TestLightPlan(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(sampleDeploymentInfo), &ev); err != nil {
		t.Fatal(err)
	}
	plan := ev["plan"].(map[string]any)
	delete(plan, "original")
	delete(plan, "target")
	light, _ := json.Marshal(ev)
	if err := c.CheckEvent("deployment_info", light, url.Values{"plan-format": {"light"}}); err != nil {
		t.Errorf("light plan on a light stream: %v", err)
	}
	if err := c.CheckEvent("deployment_info", light, nil); err == nil {
		t.Error("a light plan passes on a stream that did not ask for it")
	}
	if err := c.CheckEvent("deployment_info", []byte(sampleDeploymentInfo), url.Values{"plan-format": {"light"}}); err == nil {
		t.Error("a full plan passes on a light stream")
	}
}
