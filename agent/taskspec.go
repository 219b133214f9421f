package agent

import (
	"fmt"
	"math"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/fetch"
)

// taskSpec turns an app, its instance's reservation and a task into what
// the runtime needs to run the container. It does no I/O.
func (a *Agent) taskSpec(ap *app, inst *instance, t *Task) (*sandbox.TaskSpec, error) {
	spec := ap.spec
	r := inst.rec.Reservation
	if r == nil {
		return nil, fmt.Errorf("instance %s has no reservation", inst.id())
	}
	ts := &sandbox.TaskSpec{
		ContainerID: t.ContainerID,
		TaskID:      t.ID,
		AppID:       spec.ID,
		InstanceID:  inst.id(),
		Image:       spec.Image(),
		SandboxDir:  t.SandboxDir,
		CPUShares:   max(2, int64(math.Round(taskCpus(spec.Cpus)*1024))),
		MemoryBytes: int64(taskMem(spec.Mem)) << 20,
		StopTimeout: int(math.Ceil(a.cfg.killGrace(spec).Seconds())),
	}
	ts.MemorySwap = ts.MemoryBytes
	if a.cfg.CPUQuota {
		ts.CPUQuota = max(1000, int64(taskCpus(spec.Cpus)*100000))
	}
	if d := spec.DockerSection(); d != nil {
		ts.ForcePull = d.ForcePullImage
		ts.Privileged = d.Privileged && a.cfg.AllowPrivileged
	}
	switch {
	case spec.IsCommand():
		// Mesos's command executor: cmd through /bin/sh -c, or args as
		// they are, on the host's file system, as the app's user.
		ts.HostRoot, ts.User = true, spec.User
		if spec.Cmd != "" {
			ts.Cmd = []string{"/bin/sh", "-c", spec.Cmd}
		} else {
			ts.Cmd = spec.Args
		}
	case spec.Cmd != "":
		ts.Entrypoint = []string{"/bin/sh", "-c"}
		ts.Cmd = []string{spec.Cmd}
	case len(spec.Args) > 0:
		ts.Cmd = spec.Args
	}
	for _, f := range spec.Fetch {
		ts.Fetch = append(ts.Fetch, fetch.Item{URI: f.URI, Extract: f.Extract, Executable: f.Executable, Cache: f.Cache, DestPath: f.DestPath})
	}

	ports, env := a.portsAndEnv(ap, inst, t, ts.SandboxPath())
	ts.Ports = ports
	ts.DNS = slices.Clone(a.cfg.Network.TaskDNS)
	ts.Env = env
	switch spec.NetworkMode() {
	case marathon.NetworkHost:
		ts.NetworkMode = "host"
	case marathon.NetworkBridge:
		ts.NetworkMode = "bridge"
	default:
		ts.NetworkMode = spec.Networks[0].Name
	}

	mounts, err := a.mounts(spec, r, ts.SandboxPath())
	if err != nil {
		return nil, err
	}
	ts.Mounts = mounts

	if d := spec.DockerSection(); d != nil {
		for _, p := range d.Parameters {
			ts.Parameters = append(ts.Parameters, sandbox.Parameter{Key: p.Key, Value: p.Value})
		}
	}
	return ts, nil
}

// portsAndEnv builds the port bindings and the environment of a task,
// Marathon's and Mesos's variables first and the app's env last, so the
// app's values win.
func (a *Agent) portsAndEnv(ap *app, inst *instance, t *Task, sandboxPath string) ([]sandbox.PortBinding, []string) {
	spec := ap.spec
	r := inst.rec.Reservation
	env := []string{
		"MESOS_SANDBOX=" + sandboxPath,
		"MESOS_TASK_ID=" + t.ID,
		"MESOS_CONTAINER_NAME=" + sandbox.ContainerName(t.ContainerID),
		"MESOS_AGENT_ID=" + a.ident.AgentID,
		"MESOS_FRAMEWORK_ID=" + a.ident.FrameworkID,
		"MARATHON_APP_ID=" + spec.ID,
		"MARATHON_APP_VERSION=" + formatTime(ap.rec.Version),
		"MARATHON_APP_RESOURCE_CPUS=" + scalaDouble(spec.Cpus),
		"MARATHON_APP_RESOURCE_MEM=" + scalaDouble(spec.Mem),
		"MARATHON_APP_RESOURCE_DISK=" + scalaDouble(spec.Disk),
		"MARATHON_APP_RESOURCE_GPUS=" + strconv.Itoa(spec.Gpus),
		"HOST=" + a.cfg.Hostname,
	}
	if spec.IsCommand() {
		// The host's home directories are not in a command task's
		// container: caches and dotfiles go to the sandbox.
		env = append(env, "HOME="+sandboxPath)
	} else {
		env = append(env, "MARATHON_APP_DOCKER_IMAGE="+spec.Image())
	}
	keys := make([]string, 0, len(spec.Labels))
	for k := range spec.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var labelNames []string
	for _, k := range keys {
		name := marathon.LabelEnvName(k)
		labelNames = append(labelNames, strings.TrimPrefix(name, "MARATHON_APP_LABEL_"))
		env = append(env, name+"="+spec.Labels[k])
	}
	env = append(env, "MARATHON_APP_LABELS="+strings.Join(labelNames, " "))

	var binds []sandbox.PortBinding
	var hostPorts []string
	portEnv := func(i, hostPort int, name string, containerPort int) {
		hp := strconv.Itoa(hostPort)
		hostPorts = append(hostPorts, hp)
		env = append(env, "PORT"+strconv.Itoa(i)+"="+hp)
		if name != "" {
			env = append(env, "PORT_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+"="+hp)
		}
		if containerPort > 0 {
			env = append(env, "PORT_"+strconv.Itoa(containerPort)+"="+hp)
		}
	}
	if spec.NetworkMode() == marathon.NetworkHost {
		for i, pd := range spec.PortDefinitions {
			if i < len(r.HostPorts) {
				portEnv(i, r.HostPorts[i], pd.Name, 0)
				binds = append(binds, sandbox.PortBinding{ContainerPort: r.HostPorts[i], HostPort: r.HostPorts[i], Protocol: pd.Protocol})
			}
		}
	} else {
		j := 0
		for i, pm := range spec.PortMappings() {
			b := sandbox.PortBinding{ContainerPort: containerPort(spec, r, i), Protocol: pm.Protocol, HostIP: a.cfg.PublishAddress}
			if pm.HostPort != nil && j < len(r.HostPorts) {
				b.HostPort = r.HostPorts[j]
				portEnv(j, b.HostPort, pm.Name, pm.ContainerPort)
				j++
			}
			binds = append(binds, b)
		}
	}
	if len(hostPorts) > 0 {
		env = append(env, "PORT="+hostPorts[0], "PORTS="+strings.Join(hostPorts, ","))
	}

	keys = keys[:0]
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+spec.Env[k].Value)
	}
	return binds, env
}

// containerPort is the container port of an app's port mapping i for an
// instance: the mapping's, or, for containerPort 0, the host port the
// instance was given for it, as Marathon assigns it (0 when it has none).
func containerPort(spec *marathon.App, r *Reservation, i int) int {
	pms := spec.PortMappings()
	if i < 0 || i >= len(pms) {
		return 0
	}
	if pms[i].ContainerPort != 0 || pms[i].HostPort == nil || r == nil {
		return pms[i].ContainerPort
	}
	j := 0
	for _, pm := range pms[:i] {
		if pm.HostPort != nil {
			j++
		}
	}
	if j < len(r.HostPorts) {
		return r.HostPorts[j]
	}
	return 0
}

// scalaDouble renders a number as Marathon (Scala) prints a Double: 1.0,
// 0.5, 1024.0.
func scalaDouble(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// mounts lists the mounts of a task: each persistent volume under the
// sandbox as the task sees it (sandboxPath), and each host volume where
// the app asks. A relative
// hostPath is a directory of the sandbox; when its first segment names a
// persistent volume, it is that volume's directory (Marathon's recipe for
// exposing a persistent volume at an absolute path). It does no I/O.
func (a *Agent) mounts(spec *marathon.App, r *Reservation, sandboxPath string) ([]sandbox.Mount, error) {
	volIDs := map[string]string{}
	for _, v := range r.Volumes {
		volIDs[v.ContainerPath] = v.PersistenceID
	}
	var out []sandbox.Mount
	for _, v := range spec.Volumes() {
		target := v.ContainerPath
		if !path.IsAbs(target) {
			target = path.Join(sandboxPath, target)
		}
		ro := v.Mode == "RO"
		switch {
		case v.Persistent != nil:
			id, ok := volIDs[v.ContainerPath]
			if !ok {
				return nil, fmt.Errorf("persistent volume %s has no reservation", v.ContainerPath)
			}
			out = append(out, sandbox.VolumeMount{PersistenceID: id, Target: target})
		case path.IsAbs(v.HostPath):
			src := path.Clean(v.HostPath)
			root := rootOf(src, a.cfg.HostPathRoots)
			if root == "" {
				return nil, fmt.Errorf("%w: hostPath %s is outside host_path_roots", sandbox.ErrUnsafePath, src)
			}
			out = append(out, sandbox.HostMount{Path: src, Root: root, Target: target, ReadOnly: ro})
		default:
			rel := path.Clean(v.HostPath)
			first, rest, _ := strings.Cut(rel, "/")
			if id, ok := volIDs[first]; ok {
				out = append(out, sandbox.VolumeMount{PersistenceID: id, Path: rest, Target: target, ReadOnly: ro})
			} else {
				out = append(out, sandbox.SandboxMount{Path: rel, Target: target, ReadOnly: ro})
			}
		}
	}
	return out, nil
}

// rootOf returns the allowed root that holds p, or "".
func rootOf(p string, roots []string) string {
	for _, r := range roots {
		r = path.Clean(r)
		if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, "/")+"/") {
			return r
		}
	}
	return ""
}
