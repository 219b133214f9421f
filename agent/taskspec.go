package agent

import (
	"fmt"
	"math"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/sandbox"
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
		Labels:      map[string]string{},
		CPUShares:   max(2, int64(math.Round(spec.Cpus*1024))),
		MemoryBytes: int64(max(32, spec.Mem)) << 20,
		StopTimeout: int(math.Ceil(a.killGrace(spec).Seconds())),
	}
	ts.MemorySwap = ts.MemoryBytes
	if a.cfg.CPUQuota && spec.Cpus > 0 {
		ts.CPUQuota = max(1000, int64(spec.Cpus*100000))
	}
	if d := spec.Container.Docker; d != nil {
		ts.ForcePull = d.ForcePullImage
		ts.Privileged = d.Privileged && a.cfg.AllowPrivileged
	}
	switch {
	case spec.Cmd != "":
		ts.Entrypoint = []string{"/bin/sh", "-c"}
		ts.Cmd = []string{spec.Cmd}
	case len(spec.Args) > 0:
		ts.Cmd = spec.Args
	}

	ports, env := a.portsAndEnv(ap, inst, t)
	ts.Ports = ports
	ts.Env = env
	switch spec.NetworkMode() {
	case marathon.NetworkHost:
		ts.NetworkMode = "host"
	case marathon.NetworkBridge:
		ts.NetworkMode = "bridge"
	default:
		ts.NetworkMode = spec.Networks[0].Name
	}

	mounts, err := a.mounts(spec, r, t.SandboxDir)
	if err != nil {
		return nil, err
	}
	ts.Mounts = mounts

	if spec.Container.Docker != nil {
		if err := applyParameters(ts, spec.Container.Docker.Parameters); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// portsAndEnv builds the port bindings and the environment of a task,
// Marathon's and Mesos's variables first and the app's env last, so the
// app's values win.
func (a *Agent) portsAndEnv(ap *app, inst *instance, t *Task) ([]sandbox.PortBinding, []string) {
	spec := ap.spec
	r := inst.rec.Reservation
	env := []string{
		"MESOS_SANDBOX=" + sandbox.MountPoint,
		"MESOS_TASK_ID=" + t.ID,
		"MESOS_CONTAINER_NAME=" + sandbox.ContainerName(t.ContainerID),
		"MESOS_AGENT_ID=" + a.ident.AgentID,
		"MESOS_FRAMEWORK_ID=" + a.ident.FrameworkID,
		"MARATHON_APP_ID=" + spec.ID,
		"MARATHON_APP_VERSION=" + formatTime(ap.rec.Version),
		"MARATHON_APP_DOCKER_IMAGE=" + spec.Image(),
		"MARATHON_APP_RESOURCE_CPUS=" + scalaDouble(spec.Cpus),
		"MARATHON_APP_RESOURCE_MEM=" + scalaDouble(spec.Mem),
		"MARATHON_APP_RESOURCE_DISK=" + scalaDouble(spec.Disk),
		"MARATHON_APP_RESOURCE_GPUS=" + strconv.Itoa(spec.Gpus),
		"HOST=" + a.cfg.Hostname,
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
		for _, pm := range spec.PortMappings() {
			b := sandbox.PortBinding{ContainerPort: pm.ContainerPort, Protocol: pm.Protocol, HostIP: a.cfg.PublishAddress}
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

// scalaDouble renders a number as Marathon (Scala) prints a Double: 1.0,
// 0.5, 1024.0.
func scalaDouble(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// mounts lists the bind mounts of a task: each persistent volume under the
// sandbox mount point, and each host volume where the app asks. A relative
// hostPath is resolved in the sandbox; when it names a persistent volume,
// the volume's host directory is used (Marathon's recipe for exposing a
// persistent volume at an absolute path).
func (a *Agent) mounts(spec *marathon.App, r *Reservation, sandboxDir string) ([]sandbox.Mount, error) {
	volDirs := map[string]string{}
	for _, v := range r.Volumes {
		dir, err := a.layout.VolumeDir(v.PersistenceID)
		if err != nil {
			return nil, err
		}
		volDirs[v.ContainerPath] = dir
	}
	var out []sandbox.Mount
	for _, v := range spec.Container.Volumes {
		target := v.ContainerPath
		if !path.IsAbs(target) {
			target = path.Join(sandbox.MountPoint, target)
		}
		ro := v.Mode == "RO"
		switch {
		case v.Persistent != nil:
			dir, ok := volDirs[v.ContainerPath]
			if !ok {
				return nil, fmt.Errorf("persistent volume %s has no reservation", v.ContainerPath)
			}
			out = append(out, sandbox.Mount{Source: dir, Target: target, Within: dir})
		case path.IsAbs(v.HostPath):
			src := path.Clean(v.HostPath)
			root := rootOf(src, a.cfg.HostPathRoots)
			if root == "" {
				return nil, fmt.Errorf("%w: hostPath %s is outside host_path_roots", sandbox.ErrUnsafePath, src)
			}
			out = append(out, sandbox.Mount{Source: src, Target: target, ReadOnly: ro, Within: root})
		default:
			rel := path.Clean(v.HostPath)
			first, rest, _ := strings.Cut(rel, "/")
			m := sandbox.Mount{Source: filepath.Join(sandboxDir, rel), Target: target, ReadOnly: ro, Within: sandboxDir, Create: true}
			if dir, ok := volDirs[first]; ok {
				m = sandbox.Mount{Source: filepath.Join(dir, rest), Target: target, ReadOnly: ro, Within: dir}
			}
			out = append(out, m)
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

// applyParameters maps the supported docker run options onto the spec.
func applyParameters(ts *sandbox.TaskSpec, params []marathon.Parameter) error {
	for _, p := range params {
		switch p.Key {
		case "label":
			k, v, _ := strings.Cut(p.Value, "=")
			if strings.HasPrefix(k, "mesolite.") || k == sandbox.LabelMesosTask {
				return fmt.Errorf("docker parameter label %q: the mesolite.* and MESOS_TASK_ID labels are reserved", k)
			}
			ts.Labels[k] = v
		case "env":
			ts.Env = append(ts.Env, p.Value)
		case "user":
			ts.User = p.Value
		case "hostname":
			ts.Hostname = p.Value
		case "workdir":
			ts.WorkingDir = p.Value
		case "init":
			b := p.Value == "" || p.Value == "true"
			ts.Init = &b
		case "shm-size":
			n, err := parseBytes(p.Value)
			if err != nil {
				return fmt.Errorf("docker parameter shm-size: %w", err)
			}
			ts.ShmSize = n
		case "memory-swap":
			n, err := parseBytes(p.Value)
			if err != nil && p.Value != "-1" {
				return fmt.Errorf("docker parameter memory-swap: %w", err)
			}
			if p.Value == "-1" {
				n = -1
			}
			ts.MemorySwap = n
		case "ulimit":
			ts.Ulimits = append(ts.Ulimits, p.Value)
		case "add-host":
			ts.ExtraHosts = append(ts.ExtraHosts, p.Value)
		case "entrypoint":
			ts.Entrypoint = []string{p.Value}
		case "stop-signal":
			ts.StopSignal = p.Value
		case "stop-timeout":
			n, err := strconv.Atoi(p.Value)
			if err != nil {
				return fmt.Errorf("docker parameter stop-timeout: %w", err)
			}
			ts.StopTimeout = n
		case "tmpfs":
			if ts.Tmpfs == nil {
				ts.Tmpfs = map[string]string{}
			}
			dst, opts, _ := strings.Cut(p.Value, ":")
			ts.Tmpfs[dst] = opts
		case "read-only":
			ts.ReadOnly = p.Value == "" || p.Value == "true"
		default:
			return fmt.Errorf("docker parameter %q is not supported", p.Key)
		}
	}
	return nil
}

// parseBytes reads sizes such as 64m, 1g, 512k or 1024.
func parseBytes(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "kb"):
		mult, s = 1<<10, strings.TrimRight(s, "kb")
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "mb"):
		mult, s = 1<<20, strings.TrimRight(s, "mb")
	case strings.HasSuffix(s, "g"), strings.HasSuffix(s, "gb"):
		mult, s = 1<<30, strings.TrimRight(s, "gb")
	case strings.HasSuffix(s, "b"):
		s = strings.TrimSuffix(s, "b")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}
