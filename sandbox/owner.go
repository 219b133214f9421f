package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Every persistent volume has an owner record beside its directory, in
// <work_dir>/volumes/owners/<role>/<persistence-id>: which app,
// instance and container path it belongs to, and of which agent. It is
// written (atomically, fsynced) before the directory is made and removed
// after the directory is gone, so a volume directory without a readable
// record is one a crash, an older version or a damaged disk left. The
// agent's store says the same; the record is what is left when a store
// record is lost, so that the volume is found and given back to its
// instance instead of a new, empty one being made. It lives beside the
// volume, not in it: the container sees the volume, and a database's
// initdb wants it empty.

// OwnerSchema is the version of the owner record's format.
const OwnerSchema = 1

// OwnersRoot is the directory of the role's owner records, beside the
// volumes' (roles/<role>), so that nothing listing the volumes sees them.
func (l Layout) OwnersRoot() string {
	return filepath.Join(l.WorkDir, "volumes", "owners", l.Role)
}

// VolumeOwner is the owner record of a persistent volume.
type VolumeOwner struct {
	Schema        int       `json:"schema"`
	PersistenceID string    `json:"persistenceId"`
	AppID         string    `json:"appId"`
	InstanceID    string    `json:"instanceId"`
	ContainerPath string    `json:"containerPath"`
	SizeMiB       float64   `json:"sizeMiB"`
	AgentID       string    `json:"agentId"`
	FrameworkID   string    `json:"frameworkId"`
	Created       time.Time `json:"created"`
	// Released: the user let go of the volume (mesolite volume release);
	// it is never given to an instance again, only kept until removed.
	Released bool `json:"released,omitempty"`
}

// ErrOwnerUnreadable: an owner record exists but cannot be read.
var ErrOwnerUnreadable = errors.New("volume owner record unreadable")

// OwnerPath is where the owner record of a volume is.
func (l Layout) OwnerPath(persistenceID string) (string, error) {
	if !safeName(persistenceID) || strings.HasPrefix(persistenceID, ".") {
		return "", fmt.Errorf("%w: persistence id %q", ErrUnsafePath, persistenceID)
	}
	return filepath.Join(l.OwnersRoot(), persistenceID), nil
}

// WriteOwner replaces a volume's owner record atomically and durably:
// a temporary file, fsynced, renamed over the record, the directory
// fsynced.
func (l Layout) WriteOwner(o VolumeOwner) error {
	path, err := l.OwnerPath(o.PersistenceID)
	if err != nil {
		return err
	}
	o.Schema = OwnerSchema
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return fmt.Errorf("encode owner of %s: %w", o.PersistenceID, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write owner of %s: %w", o.PersistenceID, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-owner-*")
	if err != nil {
		return fmt.Errorf("write owner of %s: %w", o.PersistenceID, err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write owner of %s: %w", o.PersistenceID, werr)
	}
	return syncDir(dir)
}

// ReadOwner reads a volume's owner record. Errors: fs.ErrNotExist when
// there is none, ErrOwnerUnreadable when it cannot be read or names
// another volume.
func (l Layout) ReadOwner(persistenceID string) (VolumeOwner, error) {
	path, err := l.OwnerPath(persistenceID)
	if err != nil {
		return VolumeOwner{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return VolumeOwner{}, fmt.Errorf("owner of %s: %w", persistenceID, fs.ErrNotExist)
		}
		return VolumeOwner{}, fmt.Errorf("read owner of %s: %w: %v", persistenceID, ErrOwnerUnreadable, err)
	}
	var o VolumeOwner
	if err := json.Unmarshal(b, &o); err != nil {
		return VolumeOwner{}, fmt.Errorf("read owner of %s: %w: %v", persistenceID, ErrOwnerUnreadable, err)
	}
	if o.PersistenceID != persistenceID || o.AppID == "" || o.InstanceID == "" || o.Schema < 1 || o.Schema > OwnerSchema {
		return VolumeOwner{}, fmt.Errorf("read owner of %s: %w: it names volume %q of app %q, schema %d", persistenceID, ErrOwnerUnreadable, o.PersistenceID, o.AppID, o.Schema)
	}
	return o, nil
}

// RemoveOwner deletes a volume's owner record; a missing one is fine.
func (l Layout) RemoveOwner(persistenceID string) error {
	path, err := l.OwnerPath(persistenceID)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove owner of %s: %w", persistenceID, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// VolumeOnDisk is a persistent volume as the disk shows it: its
// directory, its owner record, or both.
type VolumeOnDisk struct {
	PersistenceID string
	Dir           bool         // the directory exists
	Owner         *VolumeOwner // nil when OwnerErr is set
	// OwnerErr is fs.ErrNotExist (no record) or ErrOwnerUnreadable.
	OwnerErr error
}

// VolumesOnDisk lists every volume directory and every owner record,
// with what each record says.
func (l Layout) VolumesOnDisk() ([]VolumeOnDisk, error) {
	dirs, err := l.ListVolumes()
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, id := range dirs {
		ids[id] = true
	}
	var records []string
	entries, err := os.ReadDir(l.OwnersRoot())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list volume owners: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
			records = append(records, e.Name())
		}
	}
	all := append([]string(nil), dirs...)
	for _, id := range records {
		if !ids[id] {
			all = append(all, id)
		}
	}
	out := make([]VolumeOnDisk, 0, len(all))
	for _, id := range all {
		v := VolumeOnDisk{PersistenceID: id, Dir: ids[id]}
		o, err := l.ReadOwner(id)
		if err != nil {
			v.OwnerErr = err
		} else {
			v.Owner = &o
		}
		out = append(out, v)
	}
	return out, nil
}
