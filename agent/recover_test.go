package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mesolite/mesolite/agent"
)

// The fast twins of cmd/mesolite's TestSecurityRecords*: a lost record
// over the fake runtime.

func (h *harness) record(kind, key string) string {
	return filepath.Join(h.dir, "meta", kind, key+".json")
}

func (h *harness) ownerRecord(pid string) string {
	return filepath.Join(h.dir, "volumes", "owners", "marathon", pid)
}

func findingOf(s *agent.Snapshot, kind, key string) *agent.Finding {
	for i, f := range s.Recovery.Findings {
		if f.Kind == kind && strings.Contains(f.Key, key) {
			return &s.Recovery.Findings[i]
		}
	}
	return nil
}

// TestLostInstanceRecord: the instance comes back, the same one, on its
// own volume; the container no task owns any more is removed before the
// instance runs again.
func TestLostInstanceRecord(t *testing.T) {
	for _, how := range []string{"delete", "garble"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.create(appJSON(t, residentApp("/db"), nil))
			before := h.running("/db", 1)[0]
			vols := h.volumeDirs()
			h.stop()
			path := h.record("instances", before.InstanceID)
			var err error
			if how == "delete" {
				err = os.Remove(path)
			} else {
				err = os.WriteFile(path, []byte("{garbled"), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			h.start()
			after := h.running("/db", 1)[0]
			if after.InstanceID != before.InstanceID || after.ID == before.ID {
				t.Fatalf("task %s of instance %s, want a new task of instance %s", after.ID, after.InstanceID, before.InstanceID)
			}
			if got := h.volumeDirs(); len(got) != 1 || got[0] != vols[0] {
				t.Fatalf("volumes %v, want %v", got, vols)
			}
			if h.liveContainers() != 1 {
				t.Fatalf("%d containers running", h.liveContainers())
			}
			f := findingOf(h.a.Snapshot(), "instances", before.InstanceID)
			if f == nil || (how == "garble") != strings.Contains(f.Problem, "unreadable") {
				t.Fatalf("finding %+v", f)
			}
		})
	}
}

// TestUnownedVolume: a volume that no record names (instance and owner
// records both lost) goes to the app's next instance, unless the user
// released it; a released one is kept and never given out.
func TestUnownedVolume(t *testing.T) {
	for _, release := range []bool{false, true} {
		name := "adopted"
		if release {
			name = "released"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.create(appJSON(t, residentApp("/db"), nil))
			before := h.running("/db", 1)[0]
			pid := filepath.Base(h.volumeDirs()[0])
			if err := os.WriteFile(filepath.Join(h.volumeDirs()[0], "data"), []byte("kept"), 0o644); err != nil {
				t.Fatal(err)
			}
			h.scale("/db", 0)
			h.waitFor("the app stopped", func(s *agent.Snapshot) bool {
				return s.App("/db").TasksRunning == 0 && len(s.App("/db").Deployments) == 0
			})
			h.stop()
			for _, p := range []string{h.record("instances", before.InstanceID), h.ownerRecord(pid)} {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			h.start()
			if findingOf(h.a.Snapshot(), "instances", pid) == nil {
				t.Fatalf("no finding for the unowned volume: %+v", h.a.Snapshot().Recovery.Findings)
			}
			if release {
				if _, err := h.a.ReleaseVolume(context.Background(), pid); err != nil {
					t.Fatal(err)
				}
			}
			h.scale("/db", 1)
			h.running("/db", 1)
			vols, err := h.a.Volumes()
			if err != nil {
				t.Fatal(err)
			}
			var mine, kept *agent.VolumeInfo
			for i, v := range vols {
				if v.AppID == "/db" && !v.Orphan {
					mine = &vols[i]
				}
				if v.PersistenceID == pid {
					kept = &vols[i]
				}
			}
			switch {
			case mine == nil || kept == nil:
				t.Fatalf("volumes %+v", vols)
			case !release && mine.PersistenceID != pid:
				t.Fatalf("the new instance got volume %s, not the unowned %s", mine.PersistenceID, pid)
			case release && (mine.PersistenceID == pid || !kept.Orphan || !kept.Released):
				t.Fatalf("released volume %+v given to %+v", kept, mine)
			}
			if b, err := os.ReadFile(filepath.Join(kept.Path, "data")); err != nil || string(b) != "kept" {
				t.Fatalf("the volume's data: %q %v", b, err)
			}
			// A reserved volume cannot be released.
			if _, err := h.a.ReleaseVolume(context.Background(), mine.PersistenceID); !errors.Is(err, agent.ErrConflict) {
				t.Fatalf("release of a reserved volume: %v, want ErrConflict", err)
			}
		})
	}
}
