package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/mesolite/mesolite/metrics"
	"github.com/mesolite/mesolite/sandbox"
)

// VolumeInfo is one persistent volume on disk and who owns it.
type VolumeInfo struct {
	PersistenceID string
	Path          string
	AppID         string
	InstanceID    string
	TaskID        string
	ContainerPath string
	Goal          string
	SizeMiB       float64
	// UsedBytes is what the last measurement found (MeasuredAt), -1 before
	// the first one.
	UsedBytes  int64
	MeasuredAt time.Time
	Exists     bool
	// Orphan: a directory on disk that no reservation owns. It is never
	// deleted automatically. Released: the user let go of it (mesolite
	// volume release); it is never given to an instance again.
	Orphan   bool
	Released bool
}

// Volumes lists every persistent volume: those reservations own, whether
// or not their directory exists, and directories nobody owns, each with
// the bytes it used at the last measurement (see startUsageScan): a
// request never walks the volumes, which can hold millions of files. It
// lists the volumes directory on the caller's goroutine, never on the
// loop.
func (a *Agent) Volumes() ([]VolumeInfo, error) {
	snap := a.Snapshot()
	onDisk, err := a.layout.ListVolumes()
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, id := range onDisk {
		exists[id] = true
	}
	measured := func(v VolumeInfo) VolumeInfo {
		v.UsedBytes = -1
		if u, ok := snap.VolumeUse[v.PersistenceID]; ok && v.Exists {
			v.UsedBytes, v.MeasuredAt = u.UsedBytes, u.MeasuredAt
		}
		return v
	}
	var out []VolumeInfo
	owned := map[string]bool{}
	for _, inst := range snap.Instances {
		for _, v := range inst.Reservation.Volumes {
			dir, _ := a.layout.VolumeDir(v.PersistenceID) // a reserved id is a safe name
			owned[v.PersistenceID] = true
			out = append(out, measured(VolumeInfo{
				PersistenceID: v.PersistenceID, Path: dir, AppID: inst.AppID, InstanceID: inst.ID,
				TaskID: inst.TaskID, ContainerPath: v.ContainerPath, Goal: string(inst.Goal),
				SizeMiB: v.SizeMiB, Exists: exists[v.PersistenceID],
			}))
		}
	}
	for _, id := range onDisk {
		if owned[id] {
			continue
		}
		dir, _ := a.layout.VolumeDir(id) // a directory entry is a safe name
		v := VolumeInfo{PersistenceID: id, Path: dir, Exists: true, Orphan: true}
		if o, err := a.layout.ReadOwner(id); err == nil {
			v.AppID, v.ContainerPath, v.Released = o.AppID, o.ContainerPath, o.Released
		}
		out = append(out, measured(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PersistenceID < out[j].PersistenceID })
	return out, nil
}

// RemoveOrphanVolume deletes a volume directory that no reservation owns
// (mesolite volume remove) and returns its path. ref is a persistence id
// or the volume's path. A volume a reservation owns is refused
// (ErrConflict): wipe its task or remove its app. The loop decides; the
// runtime deletes, on the caller's goroutine. No reservation can claim
// the volume meanwhile: a new reservation's persistence id is new.
func (a *Agent) RemoveOrphanVolume(ctx context.Context, ref string) (string, error) {
	id := ref
	if filepath.IsAbs(ref) {
		if filepath.Dir(filepath.Clean(ref)) != filepath.Clean(a.layout.VolumesRoot()) {
			return "", errorf(ErrInvalid, "%s is not a volume of this agent (volumes live in %s)", ref, a.layout.VolumesRoot())
		}
		id = filepath.Base(ref)
	}
	dir, err := a.layout.VolumeDir(id)
	if err != nil {
		return "", errorf(ErrInvalid, "%s", err.Error())
	}
	_, err = call(a, ctx, func() (struct{}, error) {
		if err := a.unreserved(id); err != nil {
			return struct{}{}, err
		}
		a.dropUnowned(id) // removing it is saying so: no instance gets it
		return struct{}{}, nil
	})
	if err != nil {
		return "", err
	}
	if !a.layout.VolumeExists(id) {
		return "", errorf(ErrNotFound, "volume %s does not exist", id)
	}
	if err := a.rt.DestroyVolume(ctx, id); err != nil {
		return "", err
	}
	a.log.Info().Str("volume", id).Msg("orphan volume removed on request")
	return dir, nil
}

// unreserved refuses a volume a reservation owns (ErrConflict).
func (a *Agent) unreserved(id string) error {
	for _, inst := range a.instances {
		if r := inst.rec.Reservation; r != nil {
			for _, v := range r.Volumes {
				if v.PersistenceID == id {
					return errorf(ErrConflict, "volume %s belongs to instance %s of app %s: kill its task with --wipe, or remove the app", id, inst.id(), inst.rec.AppID)
				}
			}
		}
	}
	return nil
}

// ReleaseVolume lets go of a volume that no reservation owns (mesolite
// volume release): its data is kept, but it is never given to an instance
// again, as a volume that no record names otherwise is (see recover.go);
// the app's next instance gets a new, empty one. It stays an orphan until
// removed (DELETE /mesolite/v1/volumes/{id}). ref is a persistence id.
// Errors: ErrConflict for a reserved volume, ErrNotFound, ErrInvalid.
func (a *Agent) ReleaseVolume(ctx context.Context, ref string) (string, error) {
	dir, err := a.layout.VolumeDir(ref)
	if err != nil {
		return "", errorf(ErrInvalid, "%s", err.Error())
	}
	if !a.layout.VolumeExists(ref) {
		return "", errorf(ErrNotFound, "volume %s does not exist", ref)
	}
	_, err = call(a, ctx, func() (struct{}, error) {
		if err := a.unreserved(ref); err != nil {
			return struct{}{}, err
		}
		a.dropUnowned(ref)
		return struct{}{}, nil
	})
	if err != nil {
		return "", err
	}
	o, err := a.layout.ReadOwner(ref)
	if err != nil {
		safe, cp, _ := parsePersistenceID(ref)
		o = sandbox.VolumeOwner{PersistenceID: ref, AppID: "/" + safe, InstanceID: "(none)", ContainerPath: cp, Created: time.Now().UTC()}
	}
	o.Released = true
	if err := a.rt.WriteVolumeOwner(ctx, o); err != nil {
		return "", err
	}
	a.log.Info().Str("volume", ref).Msg("volume released on request: kept, never given to an instance")
	return dir, nil
}

// Volume usage is measured every Config.UsageInterval (usageInterval by
// default). A volume at 90% of its declared size gets a warning and an
// event; beyond 100%, with Config.EnforceDiskQuota, its task is killed
// (TASK_FAILED), the data kept.
const (
	usageInterval = 30 * time.Second
	usageWarnAt   = 0.9
)

// usage holds the last measurement of each volume. It is owned by the
// loop; published is what the snapshot shows of it, replaced (never
// changed) after each measurement.
type usage struct {
	used      map[string]*volumeUse // by persistence id
	scanning  bool
	published map[string]VolumeUse
}

// volumeUse is what the last measurement found for one volume.
type volumeUse struct {
	used   int64
	at     time.Time
	warned bool
}

// VolumeUse is the last measurement of a volume.
type VolumeUse struct {
	UsedBytes  int64
	MeasuredAt time.Time
}

// publish makes the snapshot's copy of the measurements.
func (u *usage) publish() {
	m := make(map[string]VolumeUse, len(u.used))
	for id, v := range u.used {
		m[id] = VolumeUse{UsedBytes: v.used, MeasuredAt: v.at}
	}
	u.published = m
}

// usedBytes returns the last measured use of a volume, or -1.
func (u *usage) usedBytes(persistenceID string) int64 {
	if v := u.used[persistenceID]; v != nil {
		return v.used
	}
	return -1
}

// record stores a measurement and reports whether it changed the use,
// and whether the volume just crossed the warning ratio upwards.
func (u *usage) record(persistenceID string, used int64, ratio float64) (changed, warn bool) {
	if u.used == nil {
		u.used = map[string]*volumeUse{}
	}
	v := u.used[persistenceID]
	if v == nil {
		v = &volumeUse{}
		u.used[persistenceID] = v
	}
	changed = v.used != used
	v.used, v.at = used, time.Now().UTC()
	switch {
	case ratio >= usageWarnAt && !v.warned:
		v.warned = true
		warn = true
	case ratio < usageWarnAt:
		v.warned = false
	}
	return changed, warn
}

// forget drops a volume's measurement (its instance is gone).
func (u *usage) forget(persistenceID string) { delete(u.used, persistenceID) }

// startUsageScan measures every volume on a worker: those reservations
// hold, whatever their instance's goal, and those nobody owns. The
// measurements feed the warnings, the quota (running instances only),
// the views and GET /mesolite/v1/volumes.
func (a *Agent) startUsageScan() {
	if a.usage.scanning {
		return
	}
	type job struct{ instID, persistenceID, dir string }
	var jobs []job
	for _, inst := range a.instances {
		if r := inst.rec.Reservation; r != nil && r.VolumesCreated {
			for _, v := range r.Volumes {
				if dir, err := a.layout.VolumeDir(v.PersistenceID); err == nil {
					jobs = append(jobs, job{inst.id(), v.PersistenceID, dir})
				}
			}
		}
	}
	a.usage.scanning = true
	layout := a.layout
	a.goWork(func(context.Context) {
		reserved := map[string]bool{}
		for _, j := range jobs {
			reserved[j.persistenceID] = true
		}
		onDisk, _ := layout.ListVolumes() // none listed: none measured
		for _, id := range onDisk {
			if dir, err := layout.VolumeDir(id); err == nil && !reserved[id] {
				jobs = append(jobs, job{"", id, dir})
			}
		}
		used := make(map[string]int64, len(jobs))
		for _, j := range jobs {
			n, err := sandbox.DiskUsage(j.dir)
			if err == nil {
				used[j.persistenceID] = n
			}
		}
		a.post(func() {
			a.usage.scanning = false
			for _, j := range jobs {
				n, ok := used[j.persistenceID]
				switch {
				case !ok:
				case j.instID == "":
					a.usage.record(j.persistenceID, n, 0)
				default:
					if inst := a.instances[j.instID]; inst != nil {
						a.onVolumeUsage(inst, j.persistenceID, n)
					}
				}
			}
			a.usage.publish()
			a.changed = true
		})
	})
}

func (a *Agent) onVolumeUsage(inst *instance, persistenceID string, used int64) {
	r := inst.rec.Reservation
	if r == nil {
		return
	}
	var v *ReservedVolume
	for i := range r.Volumes {
		if r.Volumes[i].PersistenceID == persistenceID {
			v = &r.Volumes[i]
		}
	}
	if v == nil {
		return
	}
	ratio := float64(used) / (v.SizeMiB * (1 << 20))
	if inst.rec.Goal != GoalRunning {
		ratio = 0 // measured; warnings and the quota are for running ones
	}
	changed, warn := a.usage.record(persistenceID, used, ratio)
	if changed {
		inst.view = nil
		a.changed = true
	}
	if warn {
		a.log.Warn().Str("volume", persistenceID).Str("instance_id", inst.id()).
			Int64("used_mib", used>>20).Float64("size_mib", v.SizeMiB).Msg("volume nearly full")
		a.bus.publish("volume_usage_warning_event", map[string]any{
			"appId": inst.rec.AppID, "instanceId": inst.id(), "persistenceId": persistenceID,
			"usedBytes": used, "sizeMiB": v.SizeMiB,
		})
	}
	t := inst.task()
	if ratio > 1 && a.cfg.EnforceDiskQuota && t != nil && t.State == TaskRunning && inst.busy == "" {
		reason := fmt.Sprintf("volume %s uses %d MiB of its %s MiB (over quota; the data is kept)", v.ContainerPath, used>>20, fmtNum(v.SizeMiB))
		a.log.Error().Str("volume", persistenceID).Str("task_id", t.ID).Msg("volume over quota; killing the task")
		t.KillFailed = true
		inst.cause = metrics.ReasonOverQuota
		a.kill(inst, reason)
	}
}

func (a *Agent) tickUsage(ctx context.Context) {
	t := time.NewTicker(a.cfg.UsageInterval)
	defer t.Stop()
	a.post(func() { a.startUsageScan() })
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.post(func() { a.startUsageScan() })
		}
	}
}
