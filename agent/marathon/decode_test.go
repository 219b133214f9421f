package marathon

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	nest := func(levels int) string { // an object holding levels-1 nested arrays
		return `{"id":"a","x":` + strings.Repeat("[", levels-1) + strings.Repeat("]", levels-1) + `}`
	}
	for _, tc := range []struct {
		name  string
		body  string
		class string // "", "syntax" or "validation"
		path  string // for validation: a detail with this path
		msg   string // ... whose message contains this
	}{
		{name: "minimal object", body: `{"id":"a"}`},
		{name: "trailing whitespace", body: "{\"id\":\"a\"}\n\t \r\n"},
		{name: "unterminated object", body: `{"id":"a"`, class: "syntax"},
		{name: "unquoted key", body: `{id:"a"}`, class: "syntax"},
		{name: "single quotes", body: `{'id':'a'}`, class: "syntax"},
		{name: "trailing comma", body: `{"id":"a",}`, class: "syntax"},
		{name: "empty body", body: ``, class: "syntax"},
		{name: "whitespace body", body: " \n", class: "syntax"},
		{name: "trailing object", body: `{"id":"a"} {"id":"b"}`, class: "syntax"},
		{name: "trailing garbage", body: `{"id":"a"}x`, class: "syntax"},
		{name: "trailing bracket", body: `{"id":"a"}]`, class: "syntax"},
		{name: "duplicate after which the JSON breaks is a syntax error", body: `{"id":"a","id":"b",`, class: "syntax"},
		{name: "top-level array", body: `[{"id":"a"}]`, class: "validation", path: "/", msg: "expected a JSON object, got an array"},
		{name: "top-level string", body: `"a"`, class: "validation", path: "/", msg: "expected a JSON object"},
		{name: "top-level null", body: `null`, class: "validation", path: "/", msg: "expected a JSON object"},
		{name: "top-level number", body: `12`, class: "validation", path: "/", msg: "expected a JSON object"},

		{name: "duplicate top-level key", body: `{"id":"a","cpus":1,"cpus":2}`, class: "validation", path: "/cpus", msg: `duplicate key "cpus"`},
		{name: "duplicate key in a volume", body: `{"id":"a","container":{"volumes":[{"containerPath":"d","mode":"RW","mode":"RO"}]}}`, class: "validation", path: "/container/volumes(0)/mode", msg: "duplicate key"},
		{name: "duplicate key in the second health check", body: `{"id":"a","healthChecks":[{},{"protocol":"TCP","protocol":"HTTP"}]}`, class: "validation", path: "/healthChecks(1)/protocol", msg: "duplicate key"},
		{name: "duplicate key in nested arrays", body: `{"id":"a","constraints":[["a","UNIQUE"]],"x":[[{"k":1,"k":2}]]}`, class: "validation", path: "/x(0)(0)/k", msg: "duplicate key"},
		{name: "duplicate key in an unknown object", body: `{"id":"a","acme":{"team":{"name":"x","name":"y"}}}`, class: "validation", path: "/acme/team/name", msg: "duplicate key"},
		{name: "duplicate key spelled with an escape", body: `{"id":"a","\u0069d":"b"}`, class: "validation", path: "/id", msg: "duplicate key"},
		{name: "duplicate label key", body: `{"id":"a","labels":{"x":"1","x":"2"}}`, class: "validation", path: "/labels/x", msg: "duplicate key"},
		{name: "same key in sibling objects", body: `{"id":"a","labels":{"x":"1"},"acme":{"x":"1"},"healthChecks":[{"protocol":"TCP"},{"protocol":"TCP"}]}`},
		{name: "keys differing in case are not duplicates", body: `{"id":"a","cpus":1,"CPUS":2}`},

		{name: "string for an integer", body: `{"id":"a","instances":"3"}`, class: "validation", path: "/instances", msg: "expected an integer, got a string"},
		{name: "fraction for an integer", body: `{"id":"a","instances":1.5}`, class: "validation", path: "/instances", msg: "expected an integer, got 1.5"},
		{name: "integral float for an integer", body: `{"id":"a","instances":2.0,"gpus":0e3}`},
		{name: "integer too large", body: `{"id":"a","instances":1e30}`, class: "validation", path: "/instances", msg: "expected an integer"},
		{name: "number out of range", body: `{"id":"a","cpus":1e400}`, class: "validation", path: "/cpus", msg: "out of range"},
		{name: "string for a number", body: `{"id":"a","mem":"1GB"}`, class: "validation", path: "/mem", msg: "expected a number, got a string"},
		{name: "number for a string", body: `{"id":7}`, class: "validation", path: "/id", msg: "expected a string, got a number"},
		{name: "string for a boolean", body: `{"id":"a","requirePorts":"true"}`, class: "validation", path: "/requirePorts", msg: "expected a boolean"},
		{name: "array for an object", body: `{"id":"a","container":[]}`, class: "validation", path: "/container", msg: "expected an object, got an array"},
		{name: "object for an array", body: `{"id":"a","args":{"0":"x"}}`, class: "validation", path: "/args", msg: "expected an array, got an object"},
		{name: "wrong type in a volume", body: `{"id":"a","container":{"volumes":[{"containerPath":"a"},{"containerPath":"b","mode":5}]}}`, class: "validation", path: "/container/volumes(1)/mode", msg: "expected a string, got a number"},
		{name: "wrong type in a persistent volume", body: `{"id":"a","container":{"volumes":[{"containerPath":"a","persistent":{"size":"100"}}]}}`, class: "validation", path: "/container/volumes(0)/persistent/size", msg: "expected a number"},
		{name: "wrong type in a health check", body: `{"id":"a","healthChecks":[{"portIndex":"0"}]}`, class: "validation", path: "/healthChecks(0)/portIndex", msg: "expected an integer"},
		{name: "wrong type in a port mapping", body: `{"id":"a","container":{"portMappings":[{"containerPort":80,"hostPort":true}]}}`, class: "validation", path: "/container/portMappings(0)/hostPort", msg: "expected an integer, got a boolean"},
		{name: "wrong type in docker parameters", body: `{"id":"a","container":{"docker":{"image":"x","parameters":[{"key":"label","value":1}]}}}`, class: "validation", path: "/container/docker/parameters(0)/value", msg: "expected a string"},
		{name: "number as an env value", body: `{"id":"a","env":{"PORT":8080}}`, class: "validation", path: "/env/PORT", msg: `expected a string or {"secret": name}, got a number`},
		{name: "env secret without a name", body: `{"id":"a","env":{"PW":{"secrt":"pw"}}}`, class: "validation", path: "/env/PW", msg: "expected a string or"},
		{name: "number as a label value", body: `{"id":"a","labels":{"replicas":3}}`, class: "validation", path: "/labels/replicas", msg: "expected a string"},
		{name: "number in a constraint", body: `{"id":"a","constraints":[["hostname","MAX_PER",2]]}`, class: "validation", path: "/constraints(0)(2)", msg: "expected a string"},
		{name: "null leaves the default", body: `{"id":"a","cpus":null,"container":null,"labels":null,"healthChecks":[null]}`},
		{name: "unknown fields of any type", body: `{"id":"a","acme":{"x":[1,"2",true,null]},"role":"*","Cpus":"many"}`},
		{name: "read-only fields of a GET body", body: `{"id":"a","version":"2019-05-06T10:00:00.000Z","versionInfo":{},"tasksRunning":1,"tasks":[],"deployments":[{"id":"x"}]}`},

		{name: "64 levels of nesting", body: nest(64)},
		{name: "65 levels of nesting", body: nest(65), class: "syntax"},
		{name: "10001 levels of nesting", body: nest(10001), class: "syntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, doc, err := Decode([]byte(tc.body))
			if got := errClass(err); got != tc.class {
				t.Fatalf("Decode(%.80s): error %v (class %q), want class %q", tc.body, err, got, tc.class)
			}
			if err != nil {
				if app != nil || doc != nil {
					t.Errorf("Decode returned an app or document with error %v", err)
				}
				if tc.class == "validation" && !hasDetail(err, tc.path, tc.msg) {
					t.Errorf("error %v: want a detail at %s containing %q", err, tc.path, tc.msg)
				}
				return
			}
			if app == nil || doc == nil {
				t.Fatalf("Decode returned app %v, doc %v without error", app, doc)
			}
		})
	}
}

// TestDecodeValues: what Decode gives back besides errors.
func TestDecodeValues(t *testing.T) {
	t.Run("not normalized", func(t *testing.T) {
		app, _, err := Decode([]byte(`{"id":"a/b/"}`))
		if err != nil {
			t.Fatal(err)
		}
		if app.ID != "a/b/" || app.Networks != nil {
			t.Errorf("Decode normalized: id %q networks %v", app.ID, app.Networks)
		}
	})
	t.Run("defaults for absent fields", func(t *testing.T) {
		app, _, err := Decode([]byte(`{"id":"a","cpus":null}`))
		if err != nil {
			t.Fatal(err)
		}
		if app.Cpus != 1 || app.Mem != 128 || app.Instances != 1 || app.BackoffFactor != 1.15 {
			t.Errorf("defaults: cpus %v mem %v instances %v backoffFactor %v", app.Cpus, app.Mem, app.Instances, app.BackoffFactor)
		}
	})
	t.Run("integral float read as integer", func(t *testing.T) {
		app, _, err := Decode([]byte(`{"id":"a","instances":3.0,"healthChecks":[{"portIndex":1e0}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if app.Instances != 3 || *app.HealthChecks[0].PortIndex != 1 {
			t.Errorf("instances %d portIndex %d, want 3 and 1", app.Instances, *app.HealthChecks[0].PortIndex)
		}
	})
	t.Run("keys match exactly", func(t *testing.T) {
		app, doc, err := Decode([]byte(`{"id":"a","CPUS":4,"Mem":512,"container":{"Docker":{"image":"x"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		if app.Cpus != 1 || app.Mem != 128 || app.Container.Docker != nil {
			t.Errorf("case-insensitive match: cpus %v mem %v docker %v", app.Cpus, app.Mem, app.Container.Docker)
		}
		if doc["CPUS"] == nil || doc["Mem"] == nil {
			t.Errorf("document lost unknown keys: %v", doc)
		}
	})
	t.Run("read-only fields dropped", func(t *testing.T) {
		_, doc, err := Decode([]byte(`{"id":"a","version":"2019-05-06T10:00:00.000Z","tasksHealthy":1,"lastTaskFailure":{},"acme":1}`))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"version", "tasksHealthy", "lastTaskFailure"} {
			if _, ok := doc[k]; ok {
				t.Errorf("document keeps read-only %q", k)
			}
		}
		if _, ok := doc["acme"]; !ok {
			t.Errorf("document lost unknown field acme")
		}
	})
	t.Run("every type error reported", func(t *testing.T) {
		_, _, err := Decode([]byte(`{"id":"a","cpus":"1","mem":"2","container":{"volumes":[{"mode":1}]}}`))
		for _, p := range []string{"/cpus", "/mem", "/container/volumes(0)/mode"} {
			if _, ok := detail(err, p); !ok {
				t.Errorf("error %v lacks a detail at %s", err, p)
			}
		}
	})
}

// TestFromObjectDocs: FromObject also takes documents built in Go (float64
// and int numbers), as the agent builds when it merges an update.
func TestFromObjectDocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  map[string]any
		path string // "" = no error
	}{
		{name: "float64 numbers", doc: map[string]any{"id": "a", "cpus": 0.5, "instances": float64(2)}},
		{name: "int numbers", doc: map[string]any{"id": "a", "instances": 2, "mem": 64}},
		{name: "fractional float64 for an integer", doc: map[string]any{"id": "a", "instances": 2.5}, path: "/instances"},
		{name: "Go value of another type", doc: map[string]any{"id": "a", "cpus": struct{}{}}, path: "/cpus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromObject(tc.doc)
			if tc.path == "" {
				if err != nil {
					t.Fatalf("FromObject: %v", err)
				}
				return
			}
			if _, ok := detail(err, tc.path); !ok {
				t.Fatalf("FromObject: %v, want a detail at %s", err, tc.path)
			}
		})
	}
}

// TestRender: unknown fields come back at any depth; known fields Marathon
// does not write are dropped (ref §1.1, §1.4).
func TestRender(t *testing.T) {
	const body = `{
	  "id": "/web",
	  "acme": {"team": "db", "cost": [1, 2.50, {"x": null}]},
	  "role": "slave_public",
	  "CPUS": 9,
	  "version": "2019-05-06T10:00:00.000Z",
	  "ports": [0],
	  "networks": [{"mode": "container/bridge", "note": "n"}],
	  "container": {
	    "type": "DOCKER",
	    "foo": {"bar": 1},
	    "docker": {"image": "nginx:1", "foo": "kept", "network": "BRIDGE", "pullConfig": {"secret": "s"}},
	    "volumes": [{"containerPath": "/data", "hostPath": "data", "mode": "RW", "note": "v"}],
	    "portMappings": [{"containerPort": 80, "extra": [true]}]
	  },
	  "healthChecks": [
	    {"protocol": "TCP", "ignoreHttp1xx": false, "bar": "kept"},
	    {"protocol": "HTTP", "ignoreHttp1xx": true}
	  ],
	  "upgradeStrategy": {"minimumHealthCapacity": 0.5, "x": 1}
	}`
	_, out, err := Parse([]byte(body), Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for _, tc := range []struct {
		name string
		path string
		want string // JSON; "" = absent
	}{
		{name: "unknown top-level object", path: "/acme", want: `{"team":"db","cost":[1,2.5,{"x":null}]}`},
		{name: "unknown top-level string", path: "/role", want: `"slave_public"`},
		{name: "key matching a field only by case", path: "/CPUS", want: `9`},
		{name: "known field beside it untouched", path: "/cpus", want: `1`},
		{name: "unknown field of a network", path: "/networks(0)/note", want: `"n"`},
		{name: "unknown field of container", path: "/container/foo", want: `{"bar":1}`},
		{name: "unknown field of container.docker", path: "/container/docker/foo", want: `"kept"`},
		{name: "unknown object of container.docker", path: "/container/docker/pullConfig", want: `{"secret":"s"}`},
		{name: "unknown field of a volume", path: "/container/volumes(0)/note", want: `"v"`},
		{name: "unknown field of a port mapping", path: "/container/portMappings(0)/extra", want: `[true]`},
		{name: "unknown field of a health check", path: "/healthChecks(0)/bar", want: `"kept"`},
		{name: "unknown field of upgradeStrategy", path: "/upgradeStrategy/x", want: `1`},
		{name: "typed value wins", path: "/upgradeStrategy", want: `{"minimumHealthCapacity":0.5,"maximumOverCapacity":1,"x":1}`},
		{name: "ignoreHttp1xx dropped from a TCP check", path: "/healthChecks(0)/ignoreHttp1xx"},
		{name: "ignoreHttp1xx kept on an HTTP check", path: "/healthChecks(1)/ignoreHttp1xx", want: `true`},
		{name: "legacy ports dropped", path: "/ports"},
		{name: "container.docker.network dropped", path: "/container/docker/network"},
		{name: "read-only version dropped", path: "/version"},
		{name: "portDefinitions omitted with bridge", path: "/portDefinitions"},
		{name: "residency omitted without persistent volumes", path: "/residency"},
		{name: "empty env omitted", path: "/env"},
		{name: "empty constraints omitted", path: "/constraints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := lookup(out, tc.path)
			switch {
			case tc.want == "" && ok:
				t.Errorf("%s = %s, want it absent", tc.path, compact(got))
			case tc.want != "" && !ok:
				t.Errorf("%s absent, want %s", tc.path, tc.want)
			case tc.want != "" && !sameJSON(t, got, tc.want):
				t.Errorf("%s = %s, want %s", tc.path, compact(got), tc.want)
			}
		})
	}
}

// TestRenderLegacyPortMappings: docker.portMappings folded into
// container.portMappings are rendered there only.
func TestRenderLegacyPortMappings(t *testing.T) {
	_, out, err := Parse([]byte(`{"id":"/l","container":{"docker":{"image":"x","network":"BRIDGE","portMappings":[{"containerPort":80}]}}}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(out, "/container/docker/portMappings"); ok {
		t.Errorf("docker.portMappings rendered: %s", compact(out))
	}
	if got, _ := lookup(out, "/container/portMappings"); !sameJSON(t, got, `[{"containerPort":80,"hostPort":0,"labels":{},"protocol":"tcp","servicePort":0}]`) {
		t.Errorf("container.portMappings = %s", compact(got))
	}
}
