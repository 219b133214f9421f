package marathon

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/fetch"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/apps")

// corpusDir holds app definitions in Marathon's format (repo root testdata):
//
//	valid/<name>.json                 an app Parse accepts
//	valid/<name>.normalized.json      the object Parse returns (2-space indent, sorted keys)
//	invalid/<name>.json               an app Parse refuses with a 422
//	invalid/<name>.details.json       the []Detail of that 422
const corpusDir = "../../testdata/apps"

// corpusOptions are the agent settings the corpus is checked with.
// The docker parameters are checked by the Docker runtime's own checker,
// as the agent does.
var corpusOptions = Options{
	HostPathRoots:  []string{"/srv", "/var/log"},
	CheckParameter: docker.CheckParameter,
	CheckFetchURI:  func(uri string) error { return fetch.CheckURI(uri, []string{"/srv", "/var/log"}) },
}

const (
	normalizedSuffix = ".normalized.json"
	detailsSuffix    = ".details.json"
)

// corpusInputs lists the app definitions of one corpus directory, without
// the golden files.
func corpusInputs(t testing.TB, dir string) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(corpusDir, dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range all {
		if !strings.HasSuffix(p, normalizedSuffix) && !strings.HasSuffix(p, detailsSuffix) {
			out = append(out, p)
		}
	}
	return out
}

// TestCorpus parses every app of the corpus and compares the result with
// its golden file. Run with -update to rewrite the goldens, then review
// the diff against ref §1 before committing it.
func TestCorpus(t *testing.T) {
	valid, invalid := corpusInputs(t, "valid"), corpusInputs(t, "invalid")
	if len(valid) < 24 || len(invalid) < 8 {
		t.Fatalf("corpus has %d valid and %d invalid apps, want at least 24 and 8", len(valid), len(invalid))
	}
	for _, in := range valid {
		t.Run("valid/"+filepath.Base(in), func(t *testing.T) {
			body := readFile(t, in)
			_, out, err := Parse(body, corpusOptions)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := canonicalJSON(out)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(in, ".json")+normalizedSuffix, got)

			// The rendered object is a fixed point: parsing it again
			// changes nothing.
			_, again, err := Parse(got, corpusOptions)
			if err != nil {
				t.Fatalf("Parse of the rendered app: %v", err)
			}
			if b, _ := canonicalJSON(again); !bytes.Equal(b, got) {
				t.Errorf("rendering is not a fixed point:\nfirst:  %s\nsecond: %s", got, b)
			}
		})
	}
	for _, in := range invalid {
		t.Run("invalid/"+filepath.Base(in), func(t *testing.T) {
			_, _, err := Parse(readFile(t, in), corpusOptions)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse: %v, want a *ValidationError", err)
			}
			got, err := canonicalJSON(ve.Details)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(in, ".json")+detailsSuffix, got)
		})
	}
}

// TestTutorialPostgres: the seed tutorial's PostgreSQL app normalizes to
// ref §1.5 (GET /v2/apps/postgres), less what only a running Marathon adds:
// version, versionInfo, role, the task counts, and the service port, which
// the agent assigns after Parse (ref §1.2 step 8).
func TestTutorialPostgres(t *testing.T) {
	const ref15 = `{
	  "id": "/postgres",
	  "backoffFactor": 1.15,
	  "backoffSeconds": 1,
	  "container": {
	    "type": "DOCKER",
	    "docker": {"forcePullImage": false, "image": "postgres:9.5", "parameters": [], "privileged": false},
	    "volumes": [
	      {"containerPath": "pgdata", "mode": "RW",
	       "persistent": {"type": "root", "size": 100, "constraints": []}}
	    ],
	    "portMappings": [
	      {"containerPort": 5432, "hostPort": 0, "labels": {"VIP_0": "5.4.3.2:5432"},
	       "protocol": "tcp", "servicePort": 0}
	    ]
	  },
	  "cpus": 1.0,
	  "disk": 0.0,
	  "env": {"POSTGRES_PASSWORD": "DC/OS_ROCKS", "PGDATA": "/mnt/mesos/sandbox/pgdata"},
	  "executor": "",
	  "gpus": 0,
	  "healthChecks": [
	    {"gracePeriodSeconds": 300, "intervalSeconds": 60, "maxConsecutiveFailures": 3, "portIndex": 0,
	     "protocol": "TCP", "ipProtocol": "IPv4", "timeoutSeconds": 20, "delaySeconds": 15}
	  ],
	  "instances": 1,
	  "labels": {},
	  "maxLaunchDelaySeconds": 300,
	  "mem": 1024.0,
	  "networks": [{"mode": "container/bridge"}],
	  "requirePorts": false,
	  "residency": {"relaunchEscalationTimeoutSeconds": 3600, "taskLostBehavior": "WAIT_FOREVER"},
	  "upgradeStrategy": {"maximumOverCapacity": 0.0, "minimumHealthCapacity": 0.0},
	  "killSelection": "YOUNGEST_FIRST",
	  "unreachableStrategy": "disabled"
	}`
	_, out, err := Parse(readFile(t, "../../testdata/postgres.marathon.json"), Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !sameJSON(t, out, ref15) {
		got, _ := canonicalJSON(out)
		t.Errorf("tutorial app normalizes to\n%s\nwant ref §1.5:\n%s", got, ref15)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden compares got with the file at path, or writes it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestCorpus -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
