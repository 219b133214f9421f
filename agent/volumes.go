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
	UsedBytes     int64
	Exists        bool
	// Orphan: a directory on disk that no reservation owns. It is never
	// deleted automatically.
	Orphan bool
}

// Volumes lists every persistent volume: those reservations own, whether
// or not their directory exists, and directories nobody owns. withUsage
// also measures the bytes each one uses. It reads the disk on the
// caller's goroutine, never on the loop.
func (a *Agent) Volumes(withUsage bool) ([]VolumeInfo, error) {
	snap := a.Snapshot()
	onDisk, err := a.layout.ListVolumes()
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, id := range onDisk {
		exists[id] = true
	}
	var out []VolumeInfo
	owned := map[string]bool{}
	for _, inst := range snap.Instances {
		for _, v := range inst.Reservation.Volumes {
			dir, _ := a.layout.VolumeDir(v.PersistenceID) // a reserved id is a safe name
			owned[v.PersistenceID] = true
			out = append(out, VolumeInfo{
				PersistenceID: v.PersistenceID, Path: dir, AppID: inst.AppID, InstanceID: inst.ID,
				TaskID: inst.TaskID, ContainerPath: v.ContainerPath, Goal: string(inst.Goal),
				SizeMiB: v.SizeMiB, Exists: exists[v.PersistenceID],
			})
		}
	}
	for _, id := range onDisk {
		if owned[id] {
			continue
		}
		dir, _ := a.layout.VolumeDir(id) // a directory entry is a safe name
		out = append(out, VolumeInfo{PersistenceID: id, Path: dir, Exists: true, Orphan: true})
	}
	if withUsage {
		for i := range out {
			if out[i].Exists {
				out[i].UsedBytes, _ = sandbox.DiskUsage(out[i].Path) // unreadable parts count as 0
			}
		}
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
		for _, inst := range a.instances {
			if r := inst.rec.Reservation; r != nil {
				for _, v := range r.Volumes {
					if v.PersistenceID == id {
						return struct{}{}, errorf(ErrConflict, "volume %s belongs to instance %s of app %s: kill its task with --wipe, or remove the app", id, inst.id(), inst.rec.AppID)
					}
				}
			}
		}
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

// Volume usage is measured every Config.UsageInterval (usageInterval by
// default). A volume at 90% of its declared size gets a warning and an
// event; beyond 100%, with Config.EnforceDiskQuota, its task is killed
// (TASK_FAILED), the data kept.
const (
	usageInterval = 30 * time.Second
	usageWarnAt   = 0.9
)

// usage holds the last measurement of each volume. It is owned by the
// loop.
type usage struct {
	used     map[string]*volumeUse // by persistence id
	scanning bool
}

// volumeUse is what the last measurement found for one volume.
type volumeUse struct {
	used   int64
	warned bool
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
	v.used = used
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

// startUsageScan measures the volumes of running instances on a worker.
func (a *Agent) startUsageScan() {
	if a.usage.scanning {
		return
	}
	type job struct{ instID, persistenceID, dir string }
	var jobs []job
	for _, inst := range a.instances {
		if r := inst.rec.Reservation; r != nil && r.VolumesCreated && inst.rec.Goal == GoalRunning {
			for _, v := range r.Volumes {
				if dir, err := a.layout.VolumeDir(v.PersistenceID); err == nil {
					jobs = append(jobs, job{inst.id(), v.PersistenceID, dir})
				}
			}
		}
	}
	if len(jobs) == 0 {
		return
	}
	a.usage.scanning = true
	a.goWork(func(context.Context) {
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
				if inst := a.instances[j.instID]; inst != nil {
					if n, ok := used[j.persistenceID]; ok {
						a.onVolumeUsage(inst, j.persistenceID, n)
					}
				}
			}
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
