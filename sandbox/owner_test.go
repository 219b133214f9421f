package sandbox

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"
)

func TestVolumeOwners(t *testing.T) {
	l := Layout{WorkDir: t.TempDir(), AgentID: "a-S0", FrameworkID: "f-0000", Role: "marathon"}
	h := Host{Layout: l}
	ctx := context.Background()
	own := func(pid, inst string) VolumeOwner {
		return VolumeOwner{AppID: "/db", InstanceID: inst, ContainerPath: "data", AgentID: l.AgentID, FrameworkID: l.FrameworkID, Created: time.Now().UTC()}
	}
	for _, pid := range []string{"db#data#1", "db#data#2", "db#data#3"} {
		if err := h.CreateVolume(ctx, Volume{PersistenceID: pid, SizeMiB: 1, Owner: own(pid, "db.instance-"+pid[len(pid)-1:])}); err != nil {
			t.Fatal(err)
		}
	}
	// A volume without a record, as an older version made it.
	if _, err := l.CreateVolume("db#data#old", 1); err != nil {
		t.Fatal(err)
	}
	o, err := l.ReadOwner("db#data#2")
	if err != nil || o.InstanceID != "db.instance-2" || o.PersistenceID != "db#data#2" || o.SizeMiB != 1 || o.Schema != OwnerSchema {
		t.Fatalf("owner = %+v, %v", o, err)
	}
	// The records are no volumes.
	if ids, _ := l.ListVolumes(); len(ids) != 4 {
		t.Fatalf("volumes %v, want 4", ids)
	}
	// Damaged records read as unreadable, a missing one as missing.
	p2, _ := l.OwnerPath("db#data#2")
	p3, _ := l.OwnerPath("db#data#3")
	if err := os.WriteFile(p2, []byte("\x00garbled"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p3)
	if err := os.WriteFile(p3, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	p1, _ := l.OwnerPath("db#data#1")
	if err := os.WriteFile(p1, []byte(`{"schema":1,"persistenceId":"db#data#9","appId":"/db","instanceId":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	vs, err := l.VolumesOnDisk()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]VolumeOnDisk{}
	for _, v := range vs {
		got[v.PersistenceID] = v
	}
	for id, want := range map[string]error{"db#data#1": ErrOwnerUnreadable, "db#data#2": ErrOwnerUnreadable, "db#data#3": ErrOwnerUnreadable, "db#data#old": fs.ErrNotExist} {
		if v := got[id]; !v.Dir || !errors.Is(v.OwnerErr, want) || v.Owner != nil {
			t.Errorf("%s: %+v, want a directory and %v", id, v, want)
		}
	}
	// A record rewritten reads again; destroying removes both.
	if err := h.WriteVolumeOwner(ctx, VolumeOwner{PersistenceID: "db#data#2", AppID: "/db", InstanceID: "db.instance-2"}); err != nil {
		t.Fatal(err)
	}
	if o, err := l.ReadOwner("db#data#2"); err != nil || o.InstanceID != "db.instance-2" {
		t.Fatalf("rewritten owner = %+v, %v", o, err)
	}
	if err := h.DestroyVolume(ctx, "db#data#2"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadOwner("db#data#2"); !errors.Is(err, fs.ErrNotExist) || l.VolumeExists("db#data#2") {
		t.Fatalf("after destroy: %v, exists %v", err, l.VolumeExists("db#data#2"))
	}
	// A record without its directory (a crash between the two) is listed.
	if err := l.WriteOwner(VolumeOwner{PersistenceID: "db#data#7", AppID: "/db", InstanceID: "db.instance-7"}); err != nil {
		t.Fatal(err)
	}
	vs, _ = l.VolumesOnDisk()
	found := false
	for _, v := range vs {
		if v.PersistenceID == "db#data#7" {
			found = !v.Dir && v.Owner != nil
		}
	}
	if !found {
		t.Fatalf("a record without its directory is not listed: %+v", vs)
	}
	if _, err := l.OwnerPath("../x"); err == nil {
		t.Fatal("a path is a volume's owner path")
	}
}
