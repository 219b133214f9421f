package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/mesolite/mesolite/sandbox"
)

// VolumeInfo is one persistent volume on disk and who owns it.
type VolumeInfo struct {
	PersistenceID string  `json:"persistenceId"`
	Path          string  `json:"path"`
	AppID         string  `json:"appId,omitempty"`
	InstanceID    string  `json:"instanceId,omitempty"`
	TaskID        string  `json:"taskId,omitempty"`
	ContainerPath string  `json:"containerPath,omitempty"`
	Goal          string  `json:"goal,omitempty"`
	SizeMiB       float64 `json:"sizeMiB"`
	UsedBytes     int64   `json:"usedBytes"`
	Exists        bool    `json:"exists"`
	// Orphan: a directory on disk that no reservation owns. It is never
	// deleted automatically.
	Orphan bool `json:"orphan"`
}

// Volumes lists every persistent volume: those reservations own, whether
// or not their directory exists, and directories nobody owns. withUsage
// also measures the bytes each one uses.
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
			dir, _ := a.layout.VolumeDir(v.PersistenceID)
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
		dir, _ := a.layout.VolumeDir(id)
		out = append(out, VolumeInfo{PersistenceID: id, Path: dir, Exists: true, Orphan: true})
	}
	if withUsage {
		for i := range out {
			if out[i].Exists {
				out[i].UsedBytes, _ = sandbox.DiskUsage(out[i].Path)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PersistenceID < out[j].PersistenceID })
	return out, nil
}

// RemoveOrphanVolume deletes a volume directory that no reservation owns
// (mesolite volume remove). ref is a persistence id or the volume's path.
// A volume a reservation owns is refused: wipe its task or remove its app.
func (a *Agent) RemoveOrphanVolume(ctx context.Context, ref string) (string, error) {
	id := ref
	if filepath.IsAbs(ref) {
		if filepath.Dir(filepath.Clean(ref)) != filepath.Clean(a.layout.VolumesRoot()) {
			return "", &BadRequestError{Msg: fmt.Sprintf("%s is not a volume of this agent (volumes live in %s)", ref, a.layout.VolumesRoot())}
		}
		id = filepath.Base(ref)
	}
	dir, err := a.layout.VolumeDir(id)
	if err != nil {
		return "", &BadRequestError{Msg: err.Error()}
	}
	_, err = a.call(ctx, func() (any, error) {
		for _, inst := range a.instances {
			if r := inst.rec.Reservation; r != nil {
				for _, v := range r.Volumes {
					if v.PersistenceID == id {
						return nil, &ConflictError{Msg: fmt.Sprintf("volume %s belongs to instance %s of app %s: kill its task with --wipe, or remove the app", id, inst.id(), inst.rec.AppID)}
					}
				}
			}
		}
		if !a.layout.VolumeExists(id) {
			return nil, &NotFoundError{Msg: fmt.Sprintf("volume %s does not exist", id)}
		}
		if err := a.layout.DestroyVolume(id); err != nil {
			return nil, err
		}
		a.log.Info().Str("volume", id).Msg("orphan volume removed on request")
		return nil, nil
	})
	return dir, err
}

// Volume usage is measured every usageInterval. A volume at 90% of its
// declared size gets a warning and an event; beyond 100%, with
// Config.EnforceDiskQuota, its task is killed (TASK_FAILED), the data kept.
const (
	usageInterval = 30 * time.Second
	usageWarnAt   = 0.9
)

// volumeUsage is what the last measurement found for one volume.
type volumeUsage struct {
	used   int64
	warned bool
}

// startUsageScan measures the volumes of running instances on a worker.
func (a *Agent) startUsageScan() {
	if a.scanning {
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
	a.scanning = true
	a.goWork(func(context.Context) {
		used := make(map[string]int64, len(jobs))
		for _, j := range jobs {
			n, err := sandbox.DiskUsage(j.dir)
			if err == nil {
				used[j.persistenceID] = n
			}
		}
		a.post(func() {
			a.scanning = false
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
	if a.usage == nil {
		a.usage = map[string]*volumeUsage{}
	}
	u := a.usage[persistenceID]
	if u == nil {
		u = &volumeUsage{}
		a.usage[persistenceID] = u
	}
	if u.used != used {
		u.used = used
		inst.view = nil
		a.changed = true
	}
	limit := v.SizeMiB * (1 << 20)
	ratio := float64(used) / limit
	switch {
	case ratio >= usageWarnAt && !u.warned:
		u.warned = true
		a.log.Warn().Str("volume", persistenceID).Str("instance_id", inst.id()).
			Int64("used_mib", used>>20).Float64("size_mib", v.SizeMiB).Msg("volume nearly full")
		a.bus.publish("volume_usage_warning_event", map[string]any{
			"appId": inst.rec.AppID, "instanceId": inst.id(), "persistenceId": persistenceID,
			"usedBytes": used, "sizeMiB": v.SizeMiB,
		})
	case ratio < usageWarnAt:
		u.warned = false
	}
	t := inst.task()
	if ratio > 1 && a.cfg.EnforceDiskQuota && t != nil && t.State == TaskRunning && inst.busy == "" {
		reason := fmt.Sprintf("volume %s uses %d MiB of its %s MiB (over quota; the data is kept)", v.ContainerPath, used>>20, fmtNum(v.SizeMiB))
		a.log.Error().Str("volume", persistenceID).Str("task_id", t.ID).Msg("volume over quota; killing the task")
		t.KillFailed = true
		a.kill(inst, reason)
	}
}

// usedBytes returns the last measured usage of a volume, or -1.
func (a *Agent) usedBytes(persistenceID string) int64 {
	if u := a.usage[persistenceID]; u != nil {
		return u.used
	}
	return -1
}

func (a *Agent) tickUsage(ctx context.Context) {
	t := time.NewTicker(usageInterval)
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
