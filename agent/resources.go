package agent

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
)

// Service ports come from Marathon's local port range.
const (
	servicePortMin = 10000
	servicePortMax = 20000
)

// Mesos's smallest task (MIN_CPUS, MIN_MEMORY): a container is never
// given less, so an instance never reserves less either; an app of mem 0
// or cpus 0 cannot run beyond what the agent offers (issue 10).
const (
	minTaskCpus   = 0.01
	minTaskMemMiB = 32
)

// taskCpus and taskMem are what a task of the app's cpus and mem is
// given, and what its instance reserves.
func taskCpus(cpus float64) float64 { return max(cpus, minTaskCpus) }
func taskMem(mem float64) float64   { return max(mem, minTaskMemMiB) }

// reserved sums what the instances hold, and lists their host ports.
// Reservations written before the minimums count with them.
func (a *Agent) reserved() (cpus, mem, disk float64, ports map[int]string) {
	ports = map[int]string{}
	for _, inst := range a.instances {
		r := inst.rec.Reservation
		if r == nil {
			continue
		}
		cpus += taskCpus(r.Cpus)
		mem += taskMem(r.Mem)
		disk += r.Disk
		for _, p := range r.HostPorts {
			ports[p] = inst.id()
		}
	}
	return cpus, mem, disk, ports
}

// reserve picks the resources, host ports and volume ids for an instance.
// It returns a reason instead when the agent cannot hold them; the
// instance then waits.
func (a *Agent) reserve(ap *app, inst *instance) (*Reservation, string) {
	spec := ap.spec
	if reason := a.checkConstraints(ap, inst); reason != "" {
		return nil, reason
	}
	cpus, mem, disk, used := a.reserved()
	needCpus, needMem := taskCpus(spec.Cpus), taskMem(spec.Mem)
	needDisk := spec.Disk + spec.PersistentDisk()
	switch {
	case cpus+needCpus > a.cfg.Cpus+1e-9:
		return nil, fmt.Sprintf("insufficient cpus: need %s, %s unreserved", fmtNum(needCpus), fmtNum(max(0, a.cfg.Cpus-cpus)))
	case mem+needMem > a.cfg.MemMiB+1e-9:
		return nil, fmt.Sprintf("insufficient mem: need %s MiB, %s MiB unreserved", fmtNum(needMem), fmtNum(max(0, a.cfg.MemMiB-mem)))
	case disk+needDisk > a.cfg.DiskMiB+1e-9:
		return nil, fmt.Sprintf("insufficient disk: need %s MiB, %s MiB unreserved", fmtNum(needDisk), fmtNum(max(0, a.cfg.DiskMiB-disk)))
	}
	ports, reason := a.pickHostPorts(spec, used)
	if reason != "" {
		return nil, reason
	}
	r := &Reservation{Cpus: needCpus, Mem: needMem, Disk: needDisk, HostPorts: ports, Created: time.Now().UTC()}
	for _, v := range spec.PersistentVolumes() {
		// A volume of the app that no record names (its instance record
		// and owner record were lost) is taken before a new one is made.
		if pid := a.peekUnowned(spec.ID, v.ContainerPath); pid != "" {
			r.Volumes = append(r.Volumes, ReservedVolume{
				ContainerPath: v.ContainerPath, PersistenceID: pid,
				UUID: pid[strings.LastIndex(pid, "#")+1:], SizeMiB: v.Persistent.Size,
			})
			continue
		}
		u := newUUID()
		r.Volumes = append(r.Volumes, ReservedVolume{
			ContainerPath: v.ContainerPath,
			PersistenceID: marathon.SafeID(spec.ID) + "#" + v.ContainerPath + "#" + u,
			UUID:          u,
			SizeMiB:       v.Persistent.Size,
		})
	}
	return r, ""
}

// pickHostPorts chooses the host ports of a new reservation: fixed ones as
// asked, dynamic ones from the agent's range, skipping ports other
// reservations hold and ports something else on the machine listens on.
func (a *Agent) pickHostPorts(spec *marathon.App, used map[int]string) ([]int, string) {
	var want []int // 0 = dynamic
	if spec.NetworkMode() == marathon.NetworkHost {
		for _, pd := range spec.PortDefinitions {
			if spec.RequirePorts {
				want = append(want, pd.Port)
			} else {
				want = append(want, 0)
			}
		}
	} else {
		for _, pm := range spec.PortMappings() {
			if pm.HostPort != nil {
				want = append(want, *pm.HostPort)
			}
		}
	}
	out := make([]int, len(want))
	taken := map[int]bool{}
	for p := range used {
		taken[p] = true
	}
	for i, p := range want {
		if p == 0 {
			continue
		}
		if p < a.cfg.PortMin || p > a.cfg.PortMax {
			// Validation refuses it; an app stored before that rule waits.
			return nil, fmt.Sprintf("insufficient ports: host port %d is outside the agent's port range %d-%d ([resources] ports)", p, a.cfg.PortMin, a.cfg.PortMax)
		}
		if owner, ok := used[p]; ok {
			return nil, fmt.Sprintf("insufficient ports: host port %d is reserved by %s", p, owner)
		}
		if !a.portFree(p) {
			return nil, fmt.Sprintf("insufficient ports: host port %d is in use by another process on %s", p, a.cfg.PublishAddress)
		}
		out[i] = p
		taken[p] = true
	}
	next := a.cfg.PortMin
	for i, p := range want {
		if p != 0 {
			continue
		}
		for ; next <= a.cfg.PortMax; next++ {
			if !taken[next] && a.portFree(next) {
				break
			}
		}
		if next > a.cfg.PortMax {
			return nil, fmt.Sprintf("insufficient ports: no free host port left in %d-%d", a.cfg.PortMin, a.cfg.PortMax)
		}
		out[i] = next
		taken[next] = true
		next++
	}
	return out, ""
}

// portFree reports whether nothing listens on the port at the publish
// address (TCP).
func (a *Agent) portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(a.cfg.PublishAddress, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// checkConstraints evaluates an app's constraints against this one agent.
// The agent's only attribute is its hostname.
func (a *Agent) checkConstraints(ap *app, inst *instance) string {
	others := 0
	for _, o := range a.appInstances(ap.id()) {
		if o != inst && o.rec.Reservation != nil && o.rec.Goal == GoalRunning {
			others++
		}
	}
	for _, c := range ap.spec.Constraints {
		if len(c) < 2 {
			continue
		}
		field, op := c[0], strings.ToUpper(c[1])
		value := ""
		if len(c) > 2 {
			value = c[2]
		}
		attr, has := "", false
		if field == "hostname" || field == "@hostname" {
			attr, has = a.cfg.Hostname, true
		}
		desc := fmt.Sprintf("constraint %q not satisfied", strings.Join(c, ":"))
		switch op {
		case "UNIQUE":
			if others > 0 {
				return desc + ": this single-machine agent can run only one instance"
			}
		case "CLUSTER", "IS":
			if !has || (value != "" && attr != value) {
				return desc + ": the agent's " + field + " is " + describeAttr(attr, has)
			}
		case "LIKE":
			if !has || !fullMatch(value, attr) {
				return desc + ": the agent's " + field + " is " + describeAttr(attr, has)
			}
		case "UNLIKE":
			if has && fullMatch(value, attr) {
				return desc + ": the agent's " + field + " is " + describeAttr(attr, has)
			}
		case "MAX_PER":
			n, _ := strconv.Atoi(value)
			if others >= n {
				return fmt.Sprintf("%s: at most %d instances per %s", desc, n, field)
			}
		}
	}
	return ""
}

func describeAttr(v string, has bool) string {
	if !has {
		return "not set"
	}
	return strconv.Quote(v)
}

func fullMatch(expr, s string) bool {
	re, err := regexp.Compile("^(?:" + expr + ")$")
	return err == nil && re.MatchString(s)
}

// assignServicePorts gives every service port 0 of an app a port of
// Marathon's local range that no other app uses, and refuses a fixed one
// another app has. An app being removed, or removed by the same change,
// has given its ports back: the API no longer shows it, as in Marathon,
// where a deleted app leaves the group tree at once.
func (a *Agent) assignServicePorts(spec *marathon.App, pending []*marathon.App, removed map[string]bool) error {
	used := map[int]string{}
	for _, ap := range a.apps {
		if ap.id() == spec.ID || ap.rec.Deleting || ap.rec.Removing || removed[ap.id()] {
			continue
		}
		for _, p := range servicePorts(ap.spec) {
			used[p] = ap.id()
		}
	}
	// The apps of the same change, already given their ports.
	for _, other := range pending {
		for _, p := range servicePorts(other) {
			used[p] = other.ID
		}
	}
	refs := servicePortRefs(spec)
	for _, ref := range refs {
		if p := *ref; p != 0 {
			if owner, ok := used[p]; ok {
				return &marathon.ValidationError{Details: []marathon.Detail{{Path: "/", Errors: []string{
					fmt.Sprintf("Requested service port %d conflicts with a service port in app %s", p, owner)}}}}
			}
			used[p] = spec.ID
		}
	}
	next := servicePortMin
	for _, ref := range refs {
		if *ref != 0 {
			continue
		}
		for ; next < servicePortMax; next++ {
			if _, ok := used[next]; !ok {
				break
			}
		}
		if next >= servicePortMax {
			return &marathon.ValidationError{Details: []marathon.Detail{{Path: "/", Errors: []string{"no service port left in 10000-20000"}}}}
		}
		*ref = next
		used[next] = spec.ID
		next++
	}
	return nil
}

func servicePortRefs(spec *marathon.App) []*int {
	var out []*int
	if spec.NetworkMode() == marathon.NetworkHost {
		for i := range spec.PortDefinitions {
			out = append(out, &spec.PortDefinitions[i].Port)
		}
		return out
	}
	if spec.Container != nil {
		for i := range spec.Container.PortMappings {
			out = append(out, &spec.Container.PortMappings[i].ServicePort)
		}
	}
	return out
}

// servicePorts lists an app's service ports.
func servicePorts(spec *marathon.App) []int {
	out := []int{}
	for _, r := range servicePortRefs(spec) {
		out = append(out, *r)
	}
	return out
}

func fmtNum(x float64) string {
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// sortInstancesForStart orders stopped instances for reuse on scale up:
// oldest reservation first, then instance id. Documented in the README.
func sortInstancesForStart(list []*instance) {
	sort.SliceStable(list, func(i, j int) bool {
		ri, rj := list[i].rec.Reservation, list[j].rec.Reservation
		ti, tj := list[i].rec.Created, list[j].rec.Created
		if ri != nil {
			ti = ri.Created
		}
		if rj != nil {
			tj = rj.Created
		}
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return list[i].id() < list[j].id()
	})
}
