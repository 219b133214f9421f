package agent

import (
	"sort"

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
