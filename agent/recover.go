package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/sandbox"
)

// A record can go missing or be damaged (a disk error, a bad restore, a
// user's clean-up). The agent then prefers what the host shows over
// inventing new state, so that one lost file never means a second volume
// or a second container:
//
//	agent identity   recovered from the volumes' owner records, the
//	                 instances' sandbox paths or the sandbox directories
//	                 (slaves/<agent-id>/frameworks/<framework-id>); its
//	                 containers then are its own again
//	app              recovered from its newest version record when anything
//	                 refers to it (an instance, a volume, a deployment)
//	version          set aside when unreadable; the current one is written
//	                 again from the app record
//	instance         rebuilt from its volumes' owner records: the same
//	                 instance, on its own volumes, relaunched (its old
//	                 container, which no task owns now, is removed first)
//	deployment       started anew for an app that has not reached its goal
//	                 (the app record names its deployment)
//	volume owner     written again from the instance record
//
// A volume that no record names at all (instance record and owner record
// both lost) goes to the next instance of its app, instead of a new one.
// Each of these is a Finding: logged, and listed in /mesolite/v1/status.

// Finding is something the agent found damaged or missing in its work
// directory, and what it did about it.
type Finding struct {
	Kind    string // agent, apps, versions, instances, deployments, volume-owners
	Key     string // the record's key: its file name without .json
	AppID   string
	Problem string
	Action  string
}

// kindVolumeOwners names the volumes' owner records in findings.
const kindVolumeOwners = "volume-owners"

// report records and logs a finding.
func (a *Agent) report(f Finding) {
	a.findings = append(a.findings, f)
	a.changed = true
	a.log.Warn().Str("kind", f.Kind).Str("key", f.Key).Str("app_id", f.AppID).Str("problem", f.Problem).
		Str("action", f.Action).Msg("damaged or missing record")
}

// recordProblem says what happened to a record that did not load: set
// aside as unreadable, or missing.
func (a *Agent) recordProblem(kind, key string) string {
	for _, s := range a.aside {
		if s.Kind == kind && s.Key == key {
			return fmt.Sprintf("unreadable (%v); set aside as %s", s.Err, s.Path)
		}
	}
	return "missing"
}

// restoreIdentity reads the agent's identity, or recovers it when its
// record is lost or unreadable. Only a work directory that shows no
// earlier identity gets a new one.
func (a *Agent) restoreIdentity(owners []sandbox.VolumeOnDisk) error {
	found := false
	aside, err := a.store.Load(kindAgent, func(key string, _ int, data json.RawMessage) error {
		var id identity
		if err := json.Unmarshal(data, &id); err != nil {
			return err
		}
		if key != "agent" || id.AgentID == "" || id.FrameworkID == "" {
			return fmt.Errorf("record agent/%s holds no identity", key)
		}
		a.ident, found = id, true
		return nil
	})
	a.aside = append(a.aside, aside...)
	if err != nil {
		return fmt.Errorf("read agent identity: %w", err)
	}
	if found {
		return nil
	}
	id, from := a.recoverIdentity(owners)
	action := "recovered from " + from
	if id.AgentID == "" {
		id = identity{AgentID: newUUID() + "-S0", FrameworkID: newUUID() + "-0000"}
		action = "a new identity: nothing in the work directory names an earlier one"
	}
	id.Created = time.Now().UTC()
	a.ident = id
	if err := a.store.Put(kindAgent, "agent", id); err != nil {
		return err
	}
	if from != "" || len(aside) > 0 {
		a.report(Finding{Kind: kindAgent, Key: "agent", Problem: a.recordProblem(kindAgent, "agent"),
			Action: action + ": agent " + id.AgentID})
	}
	return nil
}

// recoverIdentity finds the identity a work directory was used with: the
// one the volumes' owner records name (they sit beside the data), else
// the newest task's sandbox path, else the newest sandbox directory.
func (a *Agent) recoverIdentity(owners []sandbox.VolumeOnDisk) (identity, string) {
	var best *sandbox.VolumeOwner
	for _, v := range owners {
		if o := v.Owner; o != nil && o.AgentID != "" && o.FrameworkID != "" && (best == nil || o.Created.After(best.Created)) {
			best = o
		}
	}
	if best != nil {
		return identity{AgentID: best.AgentID, FrameworkID: best.FrameworkID}, "the owner record of volume " + best.PersistenceID
	}
	layout := sandbox.Layout{WorkDir: a.store.WorkDir(), Role: a.cfg.Role}
	var newest *Task
	for _, inst := range a.instances {
		if t := inst.task(); t != nil && t.SandboxDir != "" && (newest == nil || t.StagedAt.After(newest.StagedAt)) {
			newest = t
		}
	}
	if newest != nil {
		if agentID, fwID, ok := layout.ParseSandboxDir(newest.SandboxDir); ok {
			return identity{AgentID: agentID, FrameworkID: fwID}, "the sandbox of task " + newest.ID
		}
	}
	if dirs, _ := layout.AgentDirs(); len(dirs) > 0 { // none listed: nothing to recover from
		return identity{AgentID: dirs[0].AgentID, FrameworkID: dirs[0].FrameworkID}, "the sandbox directory slaves/" + dirs[0].AgentID
	}
	return identity{}, ""
}

// recoverApps brings back apps whose record is lost or unreadable but
// that something refers to: an instance, a volume's owner record or a
// deployment. The newest readable version holds the app as it was at its
// last change. An app being removed is removed on.
func (a *Agent) recoverApps(deps []*deployment, owners []sandbox.VolumeOnDisk) error {
	wanted := map[string]bool{}
	for _, inst := range a.instances {
		wanted[inst.rec.AppID] = true
	}
	for _, v := range owners {
		if v.Owner != nil && !v.Owner.Released {
			wanted[v.Owner.AppID] = true
		}
	}
	// A deployment's apps are wanted, but for those it writes itself
	// (targets: its apply writes them again, attachDeployments). An app it
	// stops is being removed: deleted when a single app's, removing (its
	// volumes kept until the change succeeds) when a group change's.
	deleting, removing := map[string]bool{}, map[string]bool{}
	for _, d := range deps {
		for _, id := range d.affected() {
			if d.Targets[id] != nil {
				continue
			}
			wanted[id] = true
			if d.actionOf(id) == ActionStop {
				if slices.Contains(d.Removed, id) {
					removing[id] = true
				} else {
					deleting[id] = true
				}
			}
		}
	}
	keys, err := a.store.Keys(kindVersions)
	if err != nil {
		return err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys))) // newest version of each app first
	for _, id := range sortedKeys(wanted) {
		if a.apps[id] != nil {
			continue
		}
		prefix := versionKeyPrefix(id)
		for _, k := range keys {
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			var rec appRecord
			if ok, err := a.store.Get(kindVersions, k, &rec); err != nil || !ok || rec.ID != id {
				continue // unreadable: an older version may do
			}
			ap, err := appFromRecord(rec)
			if err != nil {
				continue
			}
			ap.rec.Deleting = deleting[id] || a.allDecommissioned(id)
			ap.rec.Removing = removing[id] && !ap.rec.Deleting
			if err := a.saveApp(ap); err != nil {
				return fmt.Errorf("recover app %s: %w", id, err)
			}
			a.apps[id] = ap
			if rec.Version.After(a.lastVersion) {
				a.lastVersion = rec.Version
			}
			a.report(Finding{Kind: kindApps, Key: safeKey(id), AppID: id, Problem: a.recordProblem(kindApps, safeKey(id)),
				Action: "recovered from its version " + formatTime(rec.Version)})
			break
		}
	}
	return nil
}

// allDecommissioned reports whether an app has instances, all of them
// being decommissioned (its removal was under way).
func (a *Agent) allDecommissioned(appID string) bool {
	n := 0
	for _, inst := range a.instances {
		if inst.rec.AppID == appID {
			if inst.rec.Goal != GoalDecommissioned {
				return false
			}
			n++
		}
	}
	return n > 0
}

// checkVersions reads every version record, setting aside those that
// cannot be read, and writes an app's current version again from its
// record when it is missing or was set aside.
func (a *Agent) checkVersions() error {
	aside, err := a.store.Load(kindVersions, func(_ string, _ int, data json.RawMessage) error {
		var rec appRecord
		return json.Unmarshal(data, &rec)
	})
	a.aside = append(a.aside, aside...)
	if err != nil {
		return err
	}
	keys, err := a.store.Keys(kindVersions)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, k := range keys {
		have[k] = true
	}
	for _, s := range aside {
		app, _, _ := strings.Cut(s.Key, "@")
		if ap := a.apps[a.appOfSafeID(app)]; ap == nil || versionKey(ap.id(), ap.rec.Version) != s.Key {
			a.report(Finding{Kind: kindVersions, Key: s.Key, AppID: a.appOfSafeID(app), Problem: a.recordProblem(kindVersions, s.Key),
				Action: "that version of the app can no longer be read; the others can"})
		}
	}
	for _, id := range sortedAppIDs(a.apps) {
		ap := a.apps[id]
		k := versionKey(id, ap.rec.Version)
		if have[k] || ap.rec.Deleting {
			continue
		}
		if err := a.saveVersion(ap.rec); err != nil {
			return fmt.Errorf("write version %s again: %w", k, err)
		}
		a.report(Finding{Kind: kindVersions, Key: k, AppID: id, Problem: a.recordProblem(kindVersions, k),
			Action: "the current version written again from the app record"})
	}
	return nil
}

// appOfSafeID returns the id of the app whose safe id is given, or "".
func (a *Agent) appOfSafeID(safe string) string {
	for id := range a.apps {
		if safeKey(id) == safe {
			return id
		}
	}
	return ""
}

func sortedAppIDs(m map[string]*app) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// attachDeployments gives each app its deployment in progress and finishes
// what a crash interrupted: a deployment's records are applied again
// (apply is idempotent), so a change whose record was written resumes at
// its step. A record of a deployment whose apps are all gone is deleted
// (the deployment is over). An app left removing without a deployment (the
// crash came between the writes of finishDeployment) is deleted, as the
// deployment that removed it wanted. An app whose record names a
// deployment that did not load lost it: noted, and redone at the first
// sync if the app has not reached its goal.
func (a *Agent) attachDeployments(deps []*deployment) error {
	for _, d := range deps {
		live := false
		for _, id := range d.affected() {
			if a.apps[id] != nil || d.Targets[id] != nil {
				live = true
			}
		}
		if !live {
			if err := a.store.Delete(kindDeployments, d.ID); err != nil {
				return err
			}
			continue
		}
		if err := a.apply(d); err != nil {
			return fmt.Errorf("resume deployment %s: %w", d.ID, err)
		}
		a.deployments[d.ID] = d
		for _, id := range d.affected() {
			if ap := a.apps[id]; ap != nil {
				ap.deployID = d.ID
			}
		}
		a.dirtyDeployments[d.ID] = true
	}
	for _, id := range sortedAppIDs(a.apps) {
		ap := a.apps[id]
		if ap.rec.Removing && !ap.rec.Deleting && ap.deployID == "" {
			ap.rec.Deleting = true
			if err := a.saveApp(ap); err != nil {
				return err
			}
		}
	}
	claimed := map[string]bool{}
	for _, id := range sortedAppIDs(a.apps) {
		ap := a.apps[id]
		if ap.rec.Deployment == "" || ap.rec.Deployment == ap.deployID {
			continue
		}
		claimed[ap.rec.Deployment] = true
		if ap.deployID == "" {
			a.lostDeployments[id] = ap.rec.Deployment
		}
	}
	for _, s := range a.aside {
		if s.Kind == kindDeployments && !claimed[s.Key] {
			a.report(Finding{Kind: kindDeployments, Key: s.Key, Problem: a.recordProblem(kindDeployments, s.Key),
				Action: "set aside; no app names it, so its deployment is over"})
		}
	}
	return nil
}

// redoLostDeployments starts anew, at the first sync, the deployments
// whose records were lost, for the apps that have not reached their goal.
func (a *Agent) redoLostDeployments() {
	for _, id := range sortedKeys(boolKeys(a.lostDeployments)) {
		old := a.lostDeployments[id]
		delete(a.lostDeployments, id)
		ap := a.apps[id]
		if ap == nil || ap.deployID != "" {
			continue
		}
		problem := a.recordProblem(kindDeployments, old)
		if a.appSettled(ap) {
			ap.rec.Deployment = ""
			_ = a.saveApp(ap) // a pointer left behind is cleared again next time
			a.report(Finding{Kind: kindDeployments, Key: old, AppID: id, Problem: problem, Action: "the app has reached its goal: nothing to redo"})
			continue
		}
		action := ActionScale
		if ap.rec.Deleting {
			action = ActionStop
		}
		d := a.startDeployment(ap, [][]string{{action}}, nil, time.Time{})
		a.report(Finding{Kind: kindDeployments, Key: old, AppID: id, Problem: problem, Action: "deployment " + d.ID + " started in its place"})
	}
}

func boolKeys(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// recoverInstances compares the volumes on disk with the instances'
// reservations:
//   - the owner record of a reserved volume that is missing, unreadable or
//     names another instance is written again (after the runtime exists);
//   - unreserved volumes whose owner records name an instance of an app
//     with persistent volumes bring that instance back, stopped, with its
//     volumes (the app's scaling starts it again if it wants it);
//   - an unreserved volume without a usable owner record, of an app that
//     declares its container path, waits for the app's next instance;
//   - an owner record whose volume is gone is removed.
func (a *Agent) recoverInstances(owners []sandbox.VolumeOnDisk) error {
	reserved := map[string]*instance{}
	for _, inst := range a.instances {
		if r := inst.rec.Reservation; r != nil {
			for _, v := range r.Volumes {
				reserved[v.PersistenceID] = inst
			}
		}
	}
	byInstance := map[string][]sandbox.VolumeOwner{}
	for _, v := range owners {
		if inst := reserved[v.PersistenceID]; inst != nil {
			a.checkOwner(inst, v)
			continue
		}
		switch {
		case !v.Dir:
			a.staleOwners = append(a.staleOwners, v.PersistenceID)
		case v.Owner != nil && v.Owner.Released:
		case v.Owner != nil:
			byInstance[v.Owner.InstanceID] = append(byInstance[v.Owner.InstanceID], *v.Owner)
		default:
			a.unownedVolume(v)
		}
	}
	for _, id := range sortedKeys(boolKeysOf(byInstance)) {
		if err := a.rebuildInstance(id, byInstance[id]); err != nil {
			return err
		}
	}
	return nil
}

func boolKeysOf(m map[string][]sandbox.VolumeOwner) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// checkOwner notes the owner record of a reserved volume for rewriting
// when it is missing, unreadable or names another instance.
func (a *Agent) checkOwner(inst *instance, v sandbox.VolumeOnDisk) {
	var rv ReservedVolume
	for _, x := range inst.rec.Reservation.Volumes {
		if x.PersistenceID == v.PersistenceID {
			rv = x
		}
	}
	want := a.volumeOwner(inst, rv)
	problem := ""
	switch {
	case errors.Is(v.OwnerErr, fs.ErrNotExist):
		problem = "missing"
	case v.OwnerErr != nil:
		problem = "unreadable: " + v.OwnerErr.Error()
	case v.Owner.InstanceID != want.InstanceID || v.Owner.AppID != want.AppID:
		problem = fmt.Sprintf("names instance %s of app %s", v.Owner.InstanceID, v.Owner.AppID)
	default:
		return
	}
	if !v.Dir && problem == "missing" {
		return // a volume still to be made: its record comes with it
	}
	a.ownerFixes = append(a.ownerFixes, want)
	a.report(Finding{Kind: kindVolumeOwners, Key: v.PersistenceID, AppID: inst.rec.AppID, Problem: problem,
		Action: "written again from instance record " + inst.id()})
}

// volumeOwner is the owner record of one of an instance's volumes.
func (a *Agent) volumeOwner(inst *instance, v ReservedVolume) sandbox.VolumeOwner {
	created := inst.rec.Created
	if r := inst.rec.Reservation; r != nil && !r.Created.IsZero() {
		created = r.Created
	}
	return sandbox.VolumeOwner{
		PersistenceID: v.PersistenceID, AppID: inst.rec.AppID, InstanceID: inst.id(), ContainerPath: v.ContainerPath,
		SizeMiB: v.SizeMiB, AgentID: a.ident.AgentID, FrameworkID: a.ident.FrameworkID, Created: created,
	}
}

// unownedVolume files a volume no record names under the app and
// container path its persistence id says, for the app's next instance.
func (a *Agent) unownedVolume(v sandbox.VolumeOnDisk) {
	safe, cp, ok := parsePersistenceID(v.PersistenceID)
	appID := a.appOfSafeID(safe)
	problem := "no owner record"
	if v.OwnerErr != nil && !errors.Is(v.OwnerErr, fs.ErrNotExist) {
		problem = "owner record unreadable: " + v.OwnerErr.Error()
	}
	ap := a.apps[appID]
	if !ok || ap == nil || !declaresVolume(ap.spec, cp) {
		a.report(Finding{Kind: kindVolumeOwners, Key: v.PersistenceID, Problem: problem + ", and no app declares it",
			Action: "kept as an orphan (mesolite volume list --orphans); remove or release it"})
		return
	}
	a.unowned[unownedKey(appID, cp)] = append(a.unowned[unownedKey(appID, cp)], v.PersistenceID)
	a.report(Finding{Kind: kindInstances, Key: v.PersistenceID, AppID: appID,
		Problem: "volume " + v.PersistenceID + " belongs to no instance (" + problem + ", and no instance record names it)",
		Action:  "it goes to the app's next instance instead of a new volume"})
}

func unownedKey(appID, containerPath string) string { return appID + "#" + containerPath }

// parsePersistenceID splits <safe-app-id>#<containerPath>#<uuid>.
func parsePersistenceID(pid string) (safe, containerPath string, ok bool) {
	parts := strings.Split(pid, "#")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func declaresVolume(spec *marathon.App, containerPath string) bool {
	for _, v := range spec.PersistentVolumes() {
		if v.ContainerPath == containerPath {
			return true
		}
	}
	return false
}

// rebuildInstance brings back an instance whose record is lost, from the
// owner records of its volumes: stopped, holding the app's resources and
// those volumes, its host ports picked again before its next launch, its
// incarnations counted on from its sandboxes.
func (a *Agent) rebuildInstance(id string, owned []sandbox.VolumeOwner) error {
	appID := owned[0].AppID
	ap := a.apps[appID]
	if ap == nil || !ap.spec.HasPersistentVolumes() || ap.rec.Deleting || !strings.HasPrefix(id, marathon.SafeID(appID)+".instance-") {
		for _, o := range owned {
			a.unowned[unownedKey(appID, o.ContainerPath)] = append(a.unowned[unownedKey(appID, o.ContainerPath)], o.PersistenceID)
			a.report(Finding{Kind: kindVolumeOwners, Key: o.PersistenceID, AppID: appID,
				Problem: "belongs to instance " + id + " of app " + appID + ", which has no record",
				Action:  "kept; it goes to the app's next instance if the app is created again"})
		}
		return nil
	}
	spec := ap.spec
	r := &Reservation{Cpus: taskCpus(spec.Cpus), Mem: taskMem(spec.Mem), Disk: spec.Disk + spec.PersistentDisk(),
		VolumesCreated: true, PortsPending: spec.HostPortCount() > 0, Created: owned[0].Created}
	for _, o := range owned {
		if o.Created.Before(r.Created) {
			r.Created = o.Created
		}
		uuid := o.PersistenceID[strings.LastIndex(o.PersistenceID, "#")+1:]
		r.Volumes = append(r.Volumes, ReservedVolume{ContainerPath: o.ContainerPath, PersistenceID: o.PersistenceID, UUID: uuid, SizeMiB: o.SizeMiB})
	}
	sort.Slice(r.Volumes, func(i, j int) bool { return r.Volumes[i].ContainerPath < r.Volumes[j].ContainerPath })
	layout := sandbox.Layout{WorkDir: a.store.WorkDir(), Role: a.cfg.Role}
	inst := &instance{rec: instanceRecord{
		ID: id, AppID: appID, Goal: GoalStopped, Created: r.Created, Reservation: r,
		Incarnation: layout.MaxIncarnation(id),
	}}
	if err := a.saveInstance(inst); err != nil {
		return fmt.Errorf("recover instance %s: %w", id, err)
	}
	a.instances[id] = inst
	vols := make([]string, len(r.Volumes))
	for i, v := range r.Volumes {
		vols[i] = v.PersistenceID
	}
	a.report(Finding{Kind: kindInstances, Key: id, AppID: appID, Problem: a.recordProblem(kindInstances, id),
		Action: "rebuilt from the owner records of its volumes (" + strings.Join(vols, ", ") + "); it runs on them again"})
	return nil
}

// repairOwners writes the owner records restore found wrong, and removes
// those left without their volume. It runs once the runtime exists.
func (a *Agent) repairOwners(ctx context.Context) error {
	for _, o := range a.ownerFixes {
		if err := a.rt.WriteVolumeOwner(ctx, o); err != nil {
			return fmt.Errorf("write the owner record of %s again: %w", o.PersistenceID, err)
		}
	}
	a.ownerFixes = nil
	for _, id := range a.staleOwners {
		if err := a.layout.RemoveOwner(id); err != nil {
			a.log.Warn().Err(err).Str("volume", id).Msg("remove the owner record of a volume that is gone")
		}
	}
	a.staleOwners = nil
	return nil
}

// peekUnowned returns the volume of an app's container path that no
// record names, if there is one, for a new reservation: a volume is never
// made anew while such a one exists (see unownedVolume). claimUnowned
// takes it once the reservation is saved.
func (a *Agent) peekUnowned(appID, containerPath string) string {
	if list := a.unowned[unownedKey(appID, containerPath)]; len(list) > 0 {
		return list[0]
	}
	return ""
}

// claimUnowned takes a saved reservation's volumes out of the unowned.
func (a *Agent) claimUnowned(inst *instance) {
	for _, v := range inst.rec.Reservation.Volumes {
		for _, list := range a.unowned {
			for _, id := range list {
				if id == v.PersistenceID {
					a.log.Warn().Str("instance_id", inst.id()).Str("volume", id).Msg("a volume no record named goes to a new instance of its app")
				}
			}
		}
		a.dropUnowned(v.PersistenceID)
	}
}

// dropUnowned forgets a volume that was removed or released.
func (a *Agent) dropUnowned(pid string) {
	for k, list := range a.unowned {
		for i, id := range list {
			if id == pid {
				a.unowned[k] = append(list[:i:i], list[i+1:]...)
			}
		}
		if len(a.unowned[k]) == 0 {
			delete(a.unowned, k)
		}
	}
}

// pickPendingPorts gives a rebuilt reservation its host ports before its
// first launch; it reports false (the instance waits) when none are free.
func (a *Agent) pickPendingPorts(ap *app, inst *instance) bool {
	r := inst.rec.Reservation
	_, _, _, used := a.reserved()
	ports, reason := a.pickHostPorts(ap.spec, used)
	if reason != "" {
		a.waitFor(ap, reason)
		return false
	}
	r.HostPorts, r.PortsPending = ports, false
	if err := a.saveInstance(inst); err != nil {
		r.HostPorts, r.PortsPending = nil, true
		a.retryLater(inst, 2*time.Second)
		return false
	}
	a.log.Info().Str("instance_id", inst.id()).Ints("host_ports", ports).Msg("host ports of a rebuilt reservation picked")
	return true
}

// waitFor sets why an app's instance waits, logging it once.
func (a *Agent) waitFor(ap *app, reason string) {
	if ap.waiting != reason {
		a.log.Warn().Str("app_id", ap.id()).Str("reason", reason).Msg("instance waits")
		ap.waiting = reason
		a.changed = true
	}
}
