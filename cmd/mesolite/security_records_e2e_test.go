package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// One lost file never means a second volume or a second container (issue
// 10, item 2). For every kind of record the agent keeps, each record is
// deleted, garbled or truncated while the agent is stopped; the agent
// starts, reports what it found (log and /mesolite/v1/status), every app
// comes back on its own volume with its data, and no volume is ever
// mounted by two running containers.

// finding is one entry of /mesolite/v1/status recovery.findings.
type finding struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	AppID   string `json:"appId"`
	Problem string `json:"problem"`
	Action  string `json:"action"`
}

func (p *agentProc) findings() []finding {
	p.t.Helper()
	var st struct {
		Recovery struct {
			Findings []finding `json:"findings"`
		} `json:"recovery"`
	}
	if err := p.getJSON("/mesolite/v1/status", &st); err != nil {
		p.t.Fatal(err)
	}
	return st.Recovery.Findings
}

// damage deletes, garbles or truncates a file.
func damage(t *testing.T, path, how string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("damage %s: %v", path, err)
	}
	switch how {
	case "delete":
		err = os.Remove(path)
	case "garble":
		err = os.WriteFile(path, append([]byte("\x00\xff{{garbled"), b[len(b)/3:]...), 0o644)
	case "truncate":
		err = os.WriteFile(path, b[:len(b)/2], 0o644)
	default:
		t.Fatalf("unknown damage %q", how)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// recordWorld is an agent with apps whose volumes hold a key each.
type recordWorld struct {
	t     *testing.T
	p     *agentProc
	apps  []string
	tasks map[string]e2eTask // app -> its task before the restart
	vols  map[string]string  // app -> its volume directory
}

func newRecordWorld(t *testing.T, lo int, apps []string, neverHealthy bool) *recordWorld {
	t.Helper()
	w := &recordWorld{t: t, apps: apps, tasks: map[string]e2eTask{}, vols: map[string]string{}}
	w.p = startAgentTOML(t, baseTOML(lo, 10, ""))
	for _, id := range apps {
		if r := w.p.postJSON("POST", "/v2/apps", recordApp(id, neverHealthy)); r.status != 201 {
			t.Fatalf("create %s: %d %s", id, r.status, r.body)
		}
	}
	for _, id := range apps {
		tk := w.p.waitTask(id, "a running task", 60*time.Second, func(t e2eTask) bool {
			return t.State == "TASK_RUNNING" && (neverHealthy || len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive)
		})
		w.tasks[id] = tk
		w.vols[id] = filepath.Join(w.p.workDir, "volumes", "roles", "marathon", tk.LocalVolumes[0].PersistenceID)
		if err := os.WriteFile(filepath.Join(w.vols[id], "greeting"), []byte("hello "+id), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// restart stops the agent, lets damage run, starts it again and watches
// every volume for two running containers until check says all is well.
func (w *recordWorld) restart(damage func(), check func() (bool, string)) {
	t := w.t
	w.p.stop(syscall.SIGTERM)
	damage()
	stop := make(chan struct{})
	var mu sync.Mutex
	var twice []string
	var wg sync.WaitGroup
	wg.Add(1)
	watching := true
	defer func() {
		if watching {
			close(stop)
			wg.Wait()
		}
	}()
	go func() {
		defer wg.Done()
		for {
			for id, dir := range w.vols {
				if ids, _ := mountsOf(dir); len(ids) > 1 {
					mu.Lock()
					twice = append(twice, fmt.Sprintf("%s: %v", id, ids))
					mu.Unlock()
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	w.p.start()
	eventually(t, 60*time.Second, "every app back on its own volume", check)
	// A little longer: an orphan's grace or a second launch would show now.
	time.Sleep(3 * time.Second)
	watching = false
	close(stop)
	wg.Wait()
	if len(twice) > 0 {
		t.Fatalf("a volume was mounted by two running containers: %v", twice)
	}
}

// intact checks that each app has one running task on its old volume,
// which holds its key, and that no other volume of the app exists.
func (w *recordWorld) intact() (bool, string) {
	var bad []string
	vols, _ := filepath.Glob(filepath.Join(w.p.workDir, "volumes", "roles", "marathon", "*"))
	for _, id := range w.apps {
		ts := w.p.tasks(id)
		if len(ts) != 1 || ts[0].State != "TASK_RUNNING" {
			bad = append(bad, fmt.Sprintf("%s tasks %+v", id, ts))
			continue
		}
		if len(ts[0].LocalVolumes) != 1 || filepath.Join(w.p.workDir, "volumes", "roles", "marathon", ts[0].LocalVolumes[0].PersistenceID) != w.vols[id] {
			bad = append(bad, fmt.Sprintf("%s runs on volume %+v, not %s", id, ts[0].LocalVolumes, filepath.Base(w.vols[id])))
		}
		if b, err := os.ReadFile(filepath.Join(w.vols[id], "greeting")); err != nil || string(b) != "hello "+id {
			bad = append(bad, fmt.Sprintf("%s key %q %v", id, b, err))
		}
		prefix := strings.TrimPrefix(id, "/") + "#"
		n := 0
		for _, v := range vols {
			if st, err := os.Stat(v); err == nil && st.IsDir() && strings.HasPrefix(filepath.Base(v), prefix) {
				n++
			}
		}
		if n != 1 {
			bad = append(bad, fmt.Sprintf("%s has %d volume directories", id, n))
		}
	}
	return len(bad) == 0, strings.Join(bad, "; ")
}

// expectFindings checks that the status reports a finding of kind for
// each key fragment.
func (w *recordWorld) expectFindings(kind string, keys ...string) {
	w.t.Helper()
	fs := w.p.findings()
	for _, k := range keys {
		found := false
		for _, f := range fs {
			if f.Kind == kind && (strings.Contains(f.Key, k) || strings.Contains(f.AppID, k)) && f.Problem != "" && f.Action != "" {
				found = true
			}
		}
		if !found {
			w.t.Errorf("no %s finding for %q in /mesolite/v1/status: %+v", kind, k, fs)
		}
	}
	b, _ := os.ReadFile(w.p.logPath)
	if !strings.Contains(string(b), `"kind":"`+kind+`"`) {
		w.t.Errorf("the log reports no %s finding", kind)
	}
}

func recordFile(t *testing.T, workDir, kind, match string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(workDir, "meta", kind, "*.json"))
	sort.Strings(files)
	for _, f := range files {
		if strings.Contains(filepath.Base(f), match) {
			return f
		}
	}
	t.Fatalf("no %s record matching %q in %v", kind, match, files)
	return ""
}

var damages = []string{"delete", "garble", "truncate"}

func TestSecurityRecordsAgentIdentity(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	for i, how := range damages {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			w := newRecordWorld(t, 23200+i*10, []string{"/rec-agent"}, false)
			id := w.p.agentID
			w.restart(func() { damage(t, filepath.Join(w.p.workDir, "meta", "agent", "agent.json"), how) }, w.intact)
			if w.p.agentID != id {
				t.Errorf("agent id changed from %s to %s", id, w.p.agentID)
			}
			if tk := w.p.tasks("/rec-agent")[0]; tk.ID != w.tasks["/rec-agent"].ID {
				t.Errorf("the task was relaunched (%s, was %s), not adopted", tk.ID, w.tasks["/rec-agent"].ID)
			}
			w.expectFindings("agent", "agent")
		})
	}
}

// TestSecurityRecordsPerApp damages one record of each app: a deleted,
// a garbled and a truncated one in the same restart.
func TestSecurityRecordsPerApp(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	apps := []string{"/rec-del", "/rec-garble", "/rec-trunc"}
	for i, kind := range []string{"apps", "versions", "instances", "deployments"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			w := newRecordWorld(t, 23240+i*10, apps, kind == "deployments")
			match := map[string]string{}
			for _, app := range apps {
				match[app] = strings.TrimPrefix(app, "/")
				if kind == "instances" {
					match[app] = w.tasks[app].InstanceID
				}
			}
			if kind == "deployments" {
				var ds []struct {
					ID           string   `json:"id"`
					AffectedApps []string `json:"affectedApps"`
				}
				if err := w.p.getJSON("/v2/deployments", &ds); err != nil {
					t.Fatal(err)
				}
				for _, d := range ds {
					if len(d.AffectedApps) == 1 {
						match[d.AffectedApps[0]] = d.ID
					}
				}
			}
			w.restart(func() {
				for j, app := range apps {
					damage(t, recordFile(t, w.p.workDir, kind, match[app]), damages[j])
				}
			}, func() (bool, string) {
				if kind == "deployments" {
					// Never healthy: running, each on its own volume.
					var bad []string
					for _, app := range apps {
						if ts := w.p.tasks(app); len(ts) != 1 || ts[0].State != "TASK_RUNNING" || ts[0].ID != w.tasks[app].ID {
							bad = append(bad, fmt.Sprintf("%s %+v", app, ts))
						}
					}
					return len(bad) == 0, strings.Join(bad, "; ")
				}
				return w.intact()
			})
			w.expectFindings(kind, "rec-del", "rec-garble", "rec-trunc")
			switch kind {
			case "apps":
				for _, app := range apps {
					if tk := w.p.tasks(app)[0]; tk.ID != w.tasks[app].ID {
						t.Errorf("%s: the task was relaunched (%s), not adopted", app, tk.ID)
					}
				}
			case "versions":
				for _, app := range apps {
					var vs struct {
						Versions []string `json:"versions"`
					}
					if err := w.p.getJSON("/v2/apps"+app+"/versions", &vs); err != nil || len(vs.Versions) == 0 {
						t.Errorf("%s: versions %v %v", app, vs.Versions, err)
						continue
					}
					if r := w.p.raw("GET", "/v2/apps"+app+"/versions/"+vs.Versions[0], nil, ""); r.status != 200 {
						t.Errorf("%s: current version unreadable: %d %s", app, r.status, r.body)
					}
				}
			case "instances":
				for _, app := range apps {
					if tk := w.p.tasks(app)[0]; tk.InstanceID != w.tasks[app].InstanceID {
						t.Errorf("%s: a new instance %s instead of %s", app, tk.InstanceID, w.tasks[app].InstanceID)
					}
				}
			case "deployments":
				var ds []struct {
					AffectedApps []string `json:"affectedApps"`
				}
				_ = w.p.getJSON("/v2/deployments", &ds)
				if len(ds) != len(apps) {
					t.Errorf("%d deployments after the restart, want one per unfinished app: %+v", len(ds), ds)
				}
			}
		})
	}
}

// TestSecurityRecordsVolumeOwners damages the owner record kept beside
// each volume, alone and together with the instance record.
func TestSecurityRecordsVolumeOwners(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	apps := []string{"/own-del", "/own-garble", "/own-trunc", "/own-both"}
	w := newRecordWorld(t, 23290, apps, false)
	owner := func(app string) string {
		return filepath.Join(w.p.workDir, "volumes", "owners", "marathon", filepath.Base(w.vols[app]))
	}
	for _, app := range apps {
		if _, err := os.Stat(owner(app)); err != nil {
			t.Fatalf("no owner record beside the volume of %s: %v", app, err)
		}
	}
	w.restart(func() {
		damage(t, owner("/own-del"), "delete")
		damage(t, owner("/own-garble"), "garble")
		damage(t, owner("/own-trunc"), "truncate")
		damage(t, owner("/own-both"), "delete")
		damage(t, recordFile(t, w.p.workDir, "instances", w.tasks["/own-both"].InstanceID), "delete")
	}, w.intact)
	w.expectFindings("volume-owners", "own-del", "own-garble", "own-trunc")
	w.expectFindings("instances", "own-both")
	for _, app := range apps {
		var o struct {
			PersistenceID string `json:"persistenceId"`
			AppID         string `json:"appId"`
			InstanceID    string `json:"instanceId"`
		}
		b, err := os.ReadFile(owner(app))
		if err != nil || json.Unmarshal(b, &o) != nil || o.AppID != app || o.PersistenceID != filepath.Base(w.vols[app]) {
			t.Errorf("%s: owner record not rewritten: %s %v", app, b, err)
		}
	}
}
