package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/mesolite/mesolite/sandbox"
)

// parameterCases are good and bad values of every accepted key; each bad
// value carries a part of the message it must produce.
type parameterCase struct {
	key  string
	good []string
	bad  map[string]string // value -> part of the message
}

var parameterCases = []parameterCase{
	{"label", []string{"team=db", "a.b/c=", "flag"}, map[string]string{
		"=x": "want key=value", "mesolite.agent_id=evil": "reserved", "mesolite.anything=1": "reserved", "MESOS_TASK_ID=x": "reserved",
	}},
	{"env", []string{"A=1", "_X=", "LONG_NAME=a=b"}, map[string]string{"A": "want NAME=value", "1A=x": "want NAME=value", "=x": "want NAME=value"}},
	{"user", []string{"postgres", "999", "999:999", "www-data:www-data"}, map[string]string{"": "want a user name", "a b": "want a user name", "-x": "want a user name"}},
	{"hostname", []string{"pg", "db-1.example.com"}, map[string]string{"": "host name", "-bad": "not a valid host name", "a_b": "not a valid host name", strings.Repeat("a", 64): "not a valid host name"}},
	{"workdir", []string{"/srv", "/"}, map[string]string{"srv": "absolute path", "": "absolute path"}},
	{"init", []string{"", "true", "false"}, map[string]string{"yes": "want true or false", "1": "want true or false"}},
	{"shm-size", []string{"64m", "1g", "512k", "1048576", "2gb"}, map[string]string{"lots": "is not a size", "-1": "is not a size", "0": "above 0", "1t": "is not a size"}},
	{"memory-swap", []string{"-1", "256m", "1g"}, map[string]string{"lots": "-1 for unlimited", "-2": "is not a size"}},
	{"ulimit", []string{"nofile=1024:2048", "nproc=64", "core=-1"}, map[string]string{
		"nofile": "want name=soft[:hard]", "=5": "want name=soft[:hard]", "nofile=many": `ulimit "nofile=many"`,
		"nofile=1:x": `ulimit "nofile=1:x"`, "bogus=1": "unknown resource", "nofile=10:5": "soft <= hard",
	}},
	{"add-host", []string{"db:10.0.0.1", "db:::1", "gw:host-gateway"}, map[string]string{"db": "want host:ip", "db:nope": "want host:ip", ":10.0.0.1": "want host:ip"}},
	{"entrypoint", []string{"/docker-entrypoint.sh"}, map[string]string{"": "may not be empty", "  ": "may not be empty"}},
	{"stop-signal", []string{"SIGTERM", "TERM", "SIGRTMIN+3", "9"}, map[string]string{"sigterm": "want a signal name", "0": "want 1 to 64", "99": "want 1 to 64", "": "want a signal name"}},
	{"stop-timeout", []string{"0", "30"}, map[string]string{"-1": "whole seconds", "soon": "whole seconds", "1.5": "whole seconds"}},
	{"tmpfs", []string{"/run", "/run:size=1m,mode=1777"}, map[string]string{"run": "absolute", "/": "not /", ":size=1m": "absolute"}},
	{"read-only", []string{"", "true", "false"}, map[string]string{"ro": "want true or false"}},
}

// TestCheckParameter: every accepted key with good and bad values, a NUL
// in any value, and keys that are refused.
func TestCheckParameter(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range parameterCases {
		covered[tc.key] = true
		for _, v := range tc.good {
			if err := CheckParameter(tc.key, v); err != nil {
				t.Errorf("%s=%q: %v, want accepted", tc.key, v, err)
			}
		}
		for v, want := range tc.bad {
			err := CheckParameter(tc.key, v)
			var pe *ParameterError
			switch {
			case !errors.As(err, &pe):
				t.Errorf("%s=%q: %v, want a *ParameterError", tc.key, v, err)
			case pe.UnknownKey():
				t.Errorf("%s=%q: reported as an unknown key", tc.key, v)
			case !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.key):
				t.Errorf("%s=%q: %q, want it to name the key and say %q", tc.key, v, err, want)
			}
		}
		if err := CheckParameter(tc.key, tc.goodOrEmpty()+"\x00"); err == nil || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("%s with a NUL: %v", tc.key, err)
		}
	}
	for _, k := range SupportedParameters() {
		if !covered[k] {
			t.Errorf("accepted key %q has no test case", k)
		}
	}
	for _, k := range []string{"cap-add", "privileged", "volume", "device", "pid", "sysctl", "log-driver", "security-opt", "network", ""} {
		err := CheckParameter(k, "x")
		var pe *ParameterError
		if !errors.As(err, &pe) || !pe.UnknownKey() || !strings.Contains(err.Error(), "is not supported by mesolite; supported: add-host, entrypoint") {
			t.Errorf("key %q: %v, want an unknown key listing the supported ones", k, err)
		}
	}
}

func (c parameterCase) goodOrEmpty() string {
	if len(c.good) > 0 {
		return c.good[0]
	}
	return ""
}

// TestApplyParameters: every good value reaches Docker's create request.
func TestApplyParameters(t *testing.T) {
	s := &sandbox.TaskSpec{TaskID: "t", SandboxDir: "/sb", MemorySwap: 128 << 20, StopTimeout: 10, Env: []string{"A=1"}}
	s.Parameters = []sandbox.Parameter{
		{Key: "label", Value: "team=db"}, {Key: "label", Value: "flag"}, {Key: "env", Value: "A=2"},
		{Key: "entrypoint", Value: "/init"}, {Key: "stop-timeout", Value: "30"}, {Key: "memory-swap", Value: "-1"},
		{Key: "stop-signal", Value: "SIGINT"}, {Key: "init", Value: "false"}, {Key: "read-only", Value: "true"},
	}
	cfg, hc, _, err := dockerConfig(s, "agent")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: cfg %+v host %+v", what, cfg, hc)
		}
	}
	check("labels", cfg.Labels["team"] == "db" && cfg.Labels["flag"] == "" && cfg.Labels[sandbox.LabelTaskID] == "t")
	check("env after the spec's", strings.Join(cfg.Env, " ") == "A=1 A=2")
	check("entrypoint", len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "/init")
	check("stop timeout", cfg.StopTimeout != nil && *cfg.StopTimeout == 30)
	check("swap", hc.MemorySwap == -1)
	check("stop signal", cfg.StopSignal == "SIGINT")
	check("init", hc.Init != nil && !*hc.Init)
	check("read-only", hc.ReadonlyRootfs)
}
