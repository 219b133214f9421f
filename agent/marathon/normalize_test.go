package marathon

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Inputs shared by the Normalize table and the idempotence test.
const (
	persistentApp = `{"id":"/pg","container":{"docker":{"image":"pg"},"volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"size":100}}]},"networks":[{"mode":"container/bridge"}]}`
	hostVolumeApp = `{"id":"/h","container":{"docker":{"image":"x"},"volumes":[{"containerPath":"/data","hostPath":"data","mode":"RW"}]}}`
	bridgeApp     = `{"id":"/b","networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80},{"containerPort":443,"hostPort":8443,"name":"https","labels":{"VIP_0":"/b:443"}}]}}`
)

// TestNormalize checks each default of SPEC §2 and ref §1 on the rendered
// object. want maps a detail path to its JSON value; "" means absent.
func TestNormalize(t *testing.T) {
	hc := func(check string) string {
		return `{"id":"/hc","container":{"docker":{"image":"x"}},"healthChecks":[` + check + `]}`
	}
	for _, tc := range []struct {
		name string
		body string
		want map[string]string
	}{
		{name: "app defaults", body: `{"id":"a","container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/id":                    `"/a"`,
			"/cpus":                  `1`,
			"/mem":                   `128`,
			"/disk":                  `0`,
			"/gpus":                  `0`,
			"/instances":             `1`,
			"/executor":              `""`,
			"/backoffSeconds":        `1`,
			"/backoffFactor":         `1.15`,
			"/maxLaunchDelaySeconds": `300`,
			"/killSelection":         `"YOUNGEST_FIRST"`,
			"/labels":                `{}`,
			"/requirePorts":          `false`,
			"/upgradeStrategy":       `{"minimumHealthCapacity":1,"maximumOverCapacity":1}`,
			"/unreachableStrategy":   `{"inactiveAfterSeconds":300,"expungeAfterSeconds":600}`,
			"/networks":              `[{"mode":"host"}]`,
			"/portDefinitions":       `[{"port":0,"name":"default","protocol":"tcp"}]`,
			"/residency":             "",
			"/env":                   "",
			"/constraints":           "",
			"/healthChecks":          "",
			"/fetch":                 "",
			"/cmd":                   "",
			"/args":                  "",
		}},
		{name: "container and docker defaults", body: `{"id":"a","container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/container": `{"type":"DOCKER","docker":{"image":"x","forcePullImage":false,"privileged":false,"parameters":[]},"volumes":[]}`,
		}},
		{name: "given values kept", body: `{"id":"a","cpus":0.25,"mem":64,"disk":10,"instances":0,"backoffSeconds":5,"backoffFactor":2,"maxLaunchDelaySeconds":60,"killSelection":"OLDEST_FIRST","container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/cpus": `0.25`, "/mem": `64`, "/disk": `10`, "/instances": `0`, "/backoffSeconds": `5`,
			"/backoffFactor": `2`, "/maxLaunchDelaySeconds": `60`, "/killSelection": `"OLDEST_FIRST"`,
		}},
		{name: "relative id made absolute", body: `{"id":"prod//db/pg/","container":{"docker":{"image":"x"}}}`, want: map[string]string{"/id": `"/prod/db/pg"`}},

		{name: "persistent volume app", body: persistentApp, want: map[string]string{
			"/upgradeStrategy":     `{"minimumHealthCapacity":0.5,"maximumOverCapacity":0}`,
			"/residency":           `{"relaunchEscalationTimeoutSeconds":3600,"taskLostBehavior":"WAIT_FOREVER"}`,
			"/unreachableStrategy": `"disabled"`,
			"/container/volumes":   `[{"containerPath":"pgdata","mode":"RW","persistent":{"type":"root","size":100,"constraints":[]}}]`,
		}},
		{name: "persistent volume mode defaults to RW", body: `{"id":"a","container":{"docker":{"image":"x"},"volumes":[{"containerPath":"d","persistent":{"size":1}}]}}`, want: map[string]string{
			"/container/volumes(0)/mode": `"RW"`,
		}},
		{name: "persistent app keeps a given upgradeStrategy", body: `{"id":"a","container":{"docker":{"image":"x"},"volumes":[{"containerPath":"d","persistent":{"size":1}}]},"upgradeStrategy":{"minimumHealthCapacity":0,"maximumOverCapacity":0}}`, want: map[string]string{
			"/upgradeStrategy": `{"minimumHealthCapacity":0,"maximumOverCapacity":0}`,
		}},
		{name: "persistent app: missing upgradeStrategy field gets the resident default", body: `{"id":"a","container":{"docker":{"image":"x"},"volumes":[{"containerPath":"d","persistent":{"size":1}}]},"upgradeStrategy":{"minimumHealthCapacity":0}}`, want: map[string]string{
			"/upgradeStrategy": `{"minimumHealthCapacity":0,"maximumOverCapacity":0}`,
		}},
		{name: "partial upgradeStrategy keeps the given field", body: `{"id":"a","container":{"docker":{"image":"x"}},"upgradeStrategy":{"minimumHealthCapacity":0.8}}`, want: map[string]string{
			"/upgradeStrategy": `{"minimumHealthCapacity":0.8,"maximumOverCapacity":1}`,
		}},
		{name: "persistent app keeps a given residency", body: `{"id":"a","container":{"docker":{"image":"x"},"volumes":[{"containerPath":"d","persistent":{"size":1}}]},"residency":{"relaunchEscalationTimeoutSeconds":60,"taskLostBehavior":"WAIT_FOREVER"}}`, want: map[string]string{
			"/residency": `{"relaunchEscalationTimeoutSeconds":60,"taskLostBehavior":"WAIT_FOREVER"}`,
		}},
		{name: "null unreachableStrategy gets the default", body: `{"id":"a","container":{"docker":{"image":"x"}},"unreachableStrategy":null}`, want: map[string]string{
			"/unreachableStrategy": `{"inactiveAfterSeconds":300,"expungeAfterSeconds":600}`,
		}},
		{name: "host volume alone is not resident", body: hostVolumeApp, want: map[string]string{
			"/residency":                 "",
			"/upgradeStrategy":           `{"minimumHealthCapacity":1,"maximumOverCapacity":1}`,
			"/container/volumes(0)":      `{"containerPath":"/data","hostPath":"data","mode":"RW"}`,
			"/unreachableStrategy":       `{"inactiveAfterSeconds":300,"expungeAfterSeconds":600}`,
			"/container/volumes(0)/mode": `"RW"`,
		}},

		{name: "bridge port mappings", body: bridgeApp, want: map[string]string{
			"/container/portMappings(0)": `{"containerPort":80,"hostPort":0,"labels":{},"protocol":"tcp","servicePort":0}`,
			"/container/portMappings(1)": `{"containerPort":443,"hostPort":8443,"labels":{"VIP_0":"/b:443"},"name":"https","protocol":"tcp","servicePort":0}`,
			"/portDefinitions":           "",
			"/requirePorts":              `false`,
			"/networks":                  `[{"mode":"container/bridge"}]`,
		}},
		{name: "container network keeps an absent hostPort", body: `{"id":"a","networks":[{"mode":"container","name":"dcos"}],"container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80}]}}`, want: map[string]string{
			"/container/portMappings(0)": `{"containerPort":80,"labels":{},"protocol":"tcp","servicePort":0}`,
			"/networks":                  `[{"mode":"container","name":"dcos"}]`,
		}},
		{name: "network mode defaults to container", body: `{"id":"a","networks":[{"name":"dcos"}],"container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/networks": `[{"mode":"container","name":"dcos"}]`,
		}},
		{name: "requirePorts forced false with bridge", body: `{"id":"a","networks":[{"mode":"container/bridge"}],"requirePorts":true,"container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80}]}}`, want: map[string]string{
			"/requirePorts": `false`,
		}},
		{name: "empty portDefinitions dropped with bridge", body: `{"id":"a","networks":[{"mode":"container/bridge"}],"portDefinitions":[],"container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80}]}}`, want: map[string]string{
			"/portDefinitions": "",
		}},
		{name: "host portDefinitions kept", body: `{"id":"a","portDefinitions":[{"port":8080,"name":"http","labels":{"VIP_0":"/a:80"}},{"port":0,"protocol":"udp"}],"requirePorts":true,"container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/portDefinitions": `[{"port":8080,"name":"http","protocol":"tcp","labels":{"VIP_0":"/a:80"}},{"port":0,"protocol":"udp"}]`,
			"/requirePorts":    `true`,
		}},
		{name: "host empty portDefinitions means no port", body: `{"id":"a","portDefinitions":[],"container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/portDefinitions": `[]`,
		}},

		{name: "legacy docker.network BRIDGE", body: `{"id":"a","container":{"docker":{"image":"x","network":"BRIDGE"}}}`, want: map[string]string{
			"/networks":                 `[{"mode":"container/bridge"}]`,
			"/container/docker/network": "",
			"/portDefinitions":          "",
		}},
		{name: "legacy docker.network HOST", body: `{"id":"a","container":{"docker":{"image":"x","network":"HOST"}}}`, want: map[string]string{
			"/networks":                 `[{"mode":"host"}]`,
			"/container/docker/network": "",
			"/portDefinitions":          `[{"port":0,"name":"default","protocol":"tcp"}]`,
		}},
		{name: "legacy docker.network ignored beside networks", body: `{"id":"a","networks":[{"mode":"host"}],"container":{"docker":{"image":"x","network":"BRIDGE"}}}`, want: map[string]string{
			"/networks":                 `[{"mode":"host"}]`,
			"/container/docker/network": "",
		}},
		{name: "legacy docker.portMappings folded", body: `{"id":"a","container":{"docker":{"image":"x","network":"BRIDGE","portMappings":[{"containerPort":5432,"hostPort":0,"servicePort":10001,"protocol":"tcp"}]}}}`, want: map[string]string{
			"/container/portMappings":        `[{"containerPort":5432,"hostPort":0,"labels":{},"protocol":"tcp","servicePort":10001}]`,
			"/container/docker/portMappings": "",
		}},
		{name: "legacy ports folded", body: `{"id":"a","ports":[0,8080],"container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/portDefinitions": `[{"port":0,"protocol":"tcp"},{"port":8080,"protocol":"tcp"}]`,
			"/ports":           "",
		}},
		{name: "legacy empty ports means no port", body: `{"id":"a","ports":[],"container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/portDefinitions": `[]`,
			"/ports":           "",
		}},
		{name: "portDefinitions win over legacy ports", body: `{"id":"a","ports":[1,2],"portDefinitions":[{"port":3}],"container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/portDefinitions": `[{"port":3,"protocol":"tcp"}]`,
		}},
		{name: "legacy ports dropped with bridge", body: `{"id":"a","ports":[0],"networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/portDefinitions": "",
			"/ports":           "",
		}},
		{name: "legacy ipAddress with docker.network USER", body: `{"id":"a","ipAddress":{"networkName":"dcos","labels":{"k":"v"}},"container":{"docker":{"image":"x","network":"USER","portMappings":[{"containerPort":80}]}}}`, want: map[string]string{
			"/networks":                  `[{"mode":"container","name":"dcos","labels":{"k":"v"}}]`,
			"/container/portMappings(0)": `{"containerPort":80,"labels":{},"protocol":"tcp","servicePort":0}`,
			"/ipAddress":                 "",
		}},
		{name: "legacy ipAddress alone", body: `{"id":"a","ipAddress":{"networkName":"dcos","discovery":{"ports":[{"number":8080,"name":"http","protocol":"tcp"}]}},"container":{"type":"MESOS","docker":{"image":"x"}}}`, want: map[string]string{
			"/networks":               `[{"mode":"container","name":"dcos"}]`,
			"/container/portMappings": `[{"containerPort":8080,"labels":{},"name":"http","protocol":"tcp","servicePort":0}]`,
			"/ipAddress":              "",
		}},
		{name: "legacy ipAddress on the mesos bridge", body: `{"id":"a","ipAddress":{"networkName":"mesos-bridge"},"container":{"docker":{"image":"x"}}}`, want: map[string]string{
			"/networks": `[{"mode":"container/bridge"}]`,
		}},

		{name: "HTTP health check defaults", body: hc(`{}`), want: map[string]string{
			"/healthChecks": `[{"protocol":"HTTP","path":"/","portIndex":0,"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15,"ignoreHttp1xx":false,"ipProtocol":"IPv4"}]`,
		}},
		{name: "HTTPS health check defaults", body: hc(`{"protocol":"HTTPS"}`), want: map[string]string{
			"/healthChecks(0)/path": `"/"`, "/healthChecks(0)/portIndex": `0`, "/healthChecks(0)/ignoreHttp1xx": `false`, "/healthChecks(0)/ipProtocol": `"IPv4"`,
		}},
		{name: "TCP health check has no path and no ignoreHttp1xx", body: hc(`{"protocol":"TCP","ignoreHttp1xx":false}`), want: map[string]string{
			"/healthChecks": `[{"protocol":"TCP","portIndex":0,"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15,"ipProtocol":"IPv4"}]`,
		}},
		{name: "COMMAND health check has no portIndex", body: hc(`{"protocol":"COMMAND","command":{"value":"true"},"ignoreHttp1xx":true}`), want: map[string]string{
			"/healthChecks": `[{"protocol":"COMMAND","command":{"value":"true"},"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15,"ipProtocol":"IPv4"}]`,
		}},
		{name: "MESOS_HTTP health check", body: hc(`{"protocol":"MESOS_HTTP","delaySeconds":5}`), want: map[string]string{
			"/healthChecks(0)/path": `"/"`, "/healthChecks(0)/portIndex": `0`, "/healthChecks(0)/ignoreHttp1xx": "", "/healthChecks(0)/delaySeconds": `5`,
		}},
		{name: "MESOS_HTTPS health check", body: hc(`{"protocol":"MESOS_HTTPS","path":"/ready"}`), want: map[string]string{
			"/healthChecks(0)/path": `"/ready"`, "/healthChecks(0)/ignoreHttp1xx": "",
		}},
		{name: "MESOS_TCP health check with a port", body: hc(`{"protocol":"MESOS_TCP","port":8080}`), want: map[string]string{
			"/healthChecks(0)/port": `8080`, "/healthChecks(0)/portIndex": "", "/healthChecks(0)/path": "",
		}},
		{name: "health check values kept", body: hc(`{"protocol":"HTTP","path":"/health","portIndex":0,"gracePeriodSeconds":10,"intervalSeconds":2,"timeoutSeconds":1,"maxConsecutiveFailures":0,"ignoreHttp1xx":true}`), want: map[string]string{
			"/healthChecks(0)": `{"protocol":"HTTP","path":"/health","portIndex":0,"gracePeriodSeconds":10,"intervalSeconds":2,"timeoutSeconds":1,"maxConsecutiveFailures":0,"delaySeconds":15,"ignoreHttp1xx":true,"ipProtocol":"IPv4"}`,
		}},
		{name: "health check protocol upper-cased", body: hc(`{"protocol":"tcp"}`), want: map[string]string{
			"/healthChecks(0)/protocol": `"TCP"`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, doc, err := Decode([]byte(tc.body))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			Normalize(app)
			if err := Validate(app, Options{}); err != nil {
				t.Fatalf("normalized app does not validate: %v", err)
			}
			out, err := Render(app, doc)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			for path, want := range tc.want {
				got, ok := lookup(out, path)
				switch {
				case want == "" && ok:
					t.Errorf("%s = %s, want it absent", path, compact(got))
				case want != "" && !ok:
					t.Errorf("%s absent, want %s", path, want)
				case want != "" && !sameJSON(t, got, want):
					t.Errorf("%s = %s, want %s", path, compact(got), want)
				}
			}
		})
	}
}

// TestNormalizeIdempotent: Normalize twice gives what Normalize once gives,
// also for apps that do not validate.
func TestNormalizeIdempotent(t *testing.T) {
	bodies := []string{
		baseApp, persistentApp, hostVolumeApp, bridgeApp,
		`{"id":"a"}`,
		`{"id":"a","ports":[0,0],"container":{"docker":{"image":"x","network":"HOST"}}}`,
		`{"id":"a","container":{"docker":{"image":"x","network":"NONE"}}}`,
		`{"id":"a","container":{"docker":{"image":"x","network":"BRIDGE","portMappings":[{"containerPort":1}]}}}`,
		`{"id":"a","ipAddress":{"networkName":"n","discovery":{"ports":[{"number":1}]}},"container":{"docker":{"image":"x"}}}`,
		`{"id":"a","ipAddress":"bogus","container":{"docker":{"image":"x"}}}`,
		`{"id":"a","networks":[{"mode":"container/bridge"}],"portDefinitions":[{"port":1}]}`,
		`{"id":"a","upgradeStrategy":{"minimumHealthCapacity":-1}}`,
		`{"id":"a","healthChecks":[{"protocol":"mesos_http"},{"protocol":"COMMAND"},{"protocol":"bogus","ignoreHttp1xx":true}]}`,
		`{"id":"a","container":{"volumes":[{"containerPath":"d","persistent":{"type":"","size":1},"external":null}]},"unreachableStrategy":null}`,
	}
	for _, body := range bodies {
		once, _, err := Decode([]byte(body))
		if err != nil {
			t.Fatalf("Decode(%s): %v", body, err)
		}
		twice, _, _ := Decode([]byte(body))
		Normalize(once)
		Normalize(twice)
		Normalize(twice)
		if !reflect.DeepEqual(once, twice) {
			a, _ := json.Marshal(once)
			b, _ := json.Marshal(twice)
			t.Errorf("Normalize not idempotent for %s:\nonce:  %s\ntwice: %s", body, a, b)
		}
	}
}

func TestCanonicalID(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{name: "absolute", in: "/a", want: "/a"},
		{name: "relative", in: "a", want: "/a"},
		{name: "nested relative", in: "db/pg", want: "/db/pg"},
		{name: "trailing slash", in: "/db/pg/", want: "/db/pg"},
		{name: "doubled slashes", in: "//db///pg", want: "/db/pg"},
		{name: "empty", in: "", want: "/"},
		{name: "root", in: "/", want: "/"},
		{name: "only slashes", in: "///", want: "/"},
		{name: "dot segments are not resolved", in: "/a/../b", want: "/a/../b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CanonicalID(tc.in); got != tc.want {
				t.Errorf("CanonicalID(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSafeID(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{name: "one segment", in: "/postgres", want: "postgres"},
		{name: "SPEC example", in: "/db/pg", want: "db_pg"},
		{name: "relative with trailing slash", in: "db/pg/", want: "db_pg"},
		{name: "dots and dashes kept", in: "/prod.eu/web-1", want: "prod.eu_web-1"},
		{name: "deep", in: "/a/b/c/d", want: "a_b_c_d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SafeID(tc.in); got != tc.want {
				t.Errorf("SafeID(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
