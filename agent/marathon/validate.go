package marathon

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Options are the agent's settings that validation depends on.
type Options struct {
	// HostPathRoots are the absolute host directories under which a host
	// volume may have an absolute hostPath. Empty: no absolute hostPath.
	HostPathRoots []string
	// AllowPrivileged lets container.docker.privileged be true.
	AllowPrivileged bool
	// CheckFetchURI checks a fetch entry's URI for the fetcher, which alone
	// knows the schemes it takes and where local files may come from
	// (host_path_roots, symlinks resolved). A refusal is reported at
	// /fetch(i)/uri. Nil accepts every URI.
	CheckFetchURI func(uri string) error
	// CheckUser checks that a command app's user exists on this machine.
	// A refusal is reported at /user. Nil accepts every user.
	CheckUser func(name string) error
	// CheckParameter checks one container.docker.parameters entry for the
	// container runtime, which alone knows its options; the agent sets it
	// to its runtime's checker. A refusal is reported at the entry's
	// value, or at its key when the error has a method UnknownKey() bool
	// that reports true. Nil accepts every entry.
	CheckParameter func(key, value string) error
	// CheckVIPs checks the VIP labels (VIP_<n>) of an app's ports: their
	// form, their addresses against the machine's, and clashes with other
	// apps' VIPs. The agent sets it to its network data plane's checks.
	// Its details carry paths of the app JSON, such as
	// /container/portMappings(0)/labels/VIP_0. Nil accepts every label.
	CheckVIPs func(appID string, ports []PortLabels) []Detail
	// PortMin and PortMax are the agent's host port range ([resources]
	// ports), which Mesos offers alone: a fixed host port must lie in it,
	// and an app may not need more host ports than it holds. Zero: not
	// checked.
	PortMin, PortMax int
}

// unknownKey is how a CheckParameter error says the key is what is wrong.
type unknownKey interface{ UnknownKey() bool }

var (
	idSegment   = regexp.MustCompile(`^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$`)
	portName    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelEnvKey = regexp.MustCompile(`[^A-Za-z0-9_]+`)
)

// Limits that keep every derived name (task id, container name, file name)
// well inside what Docker and file systems accept.
const (
	MaxIDLength       = 150 // persistence ids <safe-id>#<containerPath>#<uuid> must fit a 255-byte file name
	maxSegmentLength  = 63
	maxPathLength     = 255
	maxCommandLength  = 64 << 10
	maxInstances      = 1000
	maxHealthChecks   = 16
	maxVolumes        = 64
	maxPorts          = 64
	maxPortValue      = 65535
	maxPersistentSize = 16 << 20 // MiB: 16 TiB
)

type validator struct {
	details map[string][]string
}

func (v *validator) add(path, format string, args ...any) {
	if v.details == nil {
		v.details = map[string][]string{}
	}
	v.details[path] = append(v.details[path], fmt.Sprintf(format, args...))
}

// addOnce adds a message to a path unless the path has it already.
func (v *validator) addOnce(path, msg string) {
	for _, m := range v.details[path] {
		if m == msg {
			return
		}
	}
	v.add(path, "%s", msg)
}

func (v *validator) err() error {
	if len(v.details) == 0 {
		return nil
	}
	paths := make([]string, 0, len(v.details))
	for p := range v.details {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	e := &ValidationError{}
	for _, p := range paths {
		e.Details = append(e.Details, Detail{Path: p, Errors: v.details[p]})
	}
	return e
}

// ValidateID checks an app id as given in a URL or a body. It returns the
// canonical id.
func ValidateID(id string) (string, error) {
	var v validator
	canon := v.id("/id", id)
	return canon, v.err()
}

func (v *validator) id(p, id string) string {
	if id == "" {
		v.add(p, "An app id is required: set \"id\", for example \"/my-app\"")
		return ""
	}
	if strings.ContainsRune(id, 0) || len(id) > MaxIDLength {
		v.add(p, "id must be at most %d characters of [a-z0-9-.] segments separated by \"/\"", MaxIDLength)
		return ""
	}
	canon := CanonicalID(id)
	if canon == "/" {
		v.add(p, "Path needs to be non-empty and may not be the root group")
		return ""
	}
	segs := strings.Split(strings.TrimPrefix(canon, "/"), "/")
	for _, s := range segs {
		if s == "." || s == ".." {
			v.add(p, "id may not contain \".\" or \"..\" segments")
			return ""
		}
		if !idSegment.MatchString(s) || len(s) > maxSegmentLength {
			v.add(p, "must fully match regular expression '^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])$' (segment %q); segments are at most %d characters", truncate(s, 40), maxSegmentLength)
			return ""
		}
	}
	switch segs[len(segs)-1] {
	case "restart", "tasks", "versions":
		v.add(p, "must not end with any of the following reserved keywords: restart, tasks, versions")
		return ""
	}
	return canon
}

// Validate checks a normalized app against Marathon's rules and mesolite's
// limits. It returns a *ValidationError with every detail found.
func Validate(app *App, opts Options) error {
	var v validator
	v.id("/id", app.ID)

	nonNeg := func(p string, x float64) {
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			v.add(p, "got %v, expected 0.0 or more", x)
		}
	}
	nonNeg("/cpus", app.Cpus)
	nonNeg("/mem", app.Mem)
	nonNeg("/disk", app.Disk)
	if app.Instances < 0 {
		v.add("/instances", "got %d, expected 0 or more", app.Instances)
	} else if app.Instances > maxInstances {
		v.add("/instances", "got %d, mesolite runs at most %d instances of one app", app.Instances, maxInstances)
	}
	if app.Gpus != 0 {
		v.add("/gpus", "GPUs are not supported by mesolite: set gpus to 0")
	}
	if app.Cmd != "" && len(app.Args) > 0 {
		v.add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'. Not both 'cmd' and 'args'")
	}
	if len(app.Cmd) > maxCommandLength {
		v.add("/cmd", "cmd is longer than %d bytes", maxCommandLength)
	}
	if app.Executor != "" && app.Executor != "//cmd" {
		v.add("/executor", "custom executors are not supported by mesolite: leave executor empty")
	}
	if app.BackoffSeconds < 0 || math.IsNaN(app.BackoffSeconds) {
		v.add("/backoffSeconds", "got %v, expected 0 or more", app.BackoffSeconds)
	}
	if app.BackoffFactor < 1 || math.IsNaN(app.BackoffFactor) {
		v.add("/backoffFactor", "got %v, expected 1.0 or more", app.BackoffFactor)
	}
	if app.MaxLaunchDelaySeconds < 0 || math.IsNaN(app.MaxLaunchDelaySeconds) {
		v.add("/maxLaunchDelaySeconds", "got %v, expected 0 or more", app.MaxLaunchDelaySeconds)
	}
	if app.TaskKillGracePeriodSeconds != nil && *app.TaskKillGracePeriodSeconds < 0 {
		v.add("/taskKillGracePeriodSeconds", "got %v, expected 0 or more", *app.TaskKillGracePeriodSeconds)
	}
	switch app.KillSelection {
	case "YOUNGEST_FIRST", "OLDEST_FIRST":
	default:
		v.add("/killSelection", "must be one of YOUNGEST_FIRST, OLDEST_FIRST")
	}
	if len(app.StoreUrls) > 0 {
		v.add("/storeUrls", "storeUrls are not supported by mesolite: use fetch")
	}
	v.fetch(app, opts)
	if len(app.Secrets) > 0 {
		v.add("/secrets", "secrets are not supported by mesolite: pass the value in env")
	}
	for k, e := range app.Env {
		p := "/env/" + k
		if !envName.MatchString(k) || len(k) > maxPathLength {
			v.add(p, "environment variable names must match [A-Za-z_][A-Za-z0-9_]*")
		}
		if e.Secret != "" {
			v.add(p, "secrets are not supported by mesolite: give the value as a string")
		}
		if strings.ContainsRune(e.Value, 0) {
			v.add(p, "value may not contain a NUL byte")
		}
	}
	for k := range app.Labels {
		if k == "" || strings.ContainsRune(k, 0) {
			v.add("/labels", "label keys must be non-empty and may not contain a NUL byte")
		}
	}
	v.constraints("/constraints", app.Constraints)
	v.upgradeStrategy(app)
	v.container(app, opts)
	v.networks(app)
	v.ports(app)
	if opts.CheckVIPs != nil {
		for _, d := range opts.CheckVIPs(app.ID, app.LabelledPorts()) {
			for _, e := range d.Errors {
				v.add(d.Path, "%s", e)
			}
		}
	}
	v.portRange(app, opts)
	v.healthChecks(app)
	v.readinessChecks(app)
	v.residency(app)
	v.wholeSeconds(app)
	if len(app.IPAddress) > 0 {
		v.add("/ipAddress", "must be an object such as {\"networkName\": \"my-net\"}; better, use networks")
	}
	return v.err()
}

// wholeSeconds checks the durations Marathon's RAML types as integers
// (int32 seconds): a fraction would be written back as Marathon never
// writes it.
func (v *validator) wholeSeconds(app *App) {
	for _, f := range []struct {
		path string
		x    float64
	}{{"/backoffSeconds", app.BackoffSeconds}, {"/maxLaunchDelaySeconds", app.MaxLaunchDelaySeconds}} {
		if f.x != math.Trunc(f.x) && !math.IsNaN(f.x) {
			v.add(f.path, "got %v, expected a whole number of seconds", f.x)
		}
	}
	if g := app.TaskKillGracePeriodSeconds; g != nil && *g != math.Trunc(*g) {
		v.add("/taskKillGracePeriodSeconds", "got %v, expected a whole number of seconds", *g)
	}
}

// readinessChecks checks "readinessChecks" as Marathon's validation does:
// at most one (ReadinessBehavior assumes one per app), HTTP or HTTPS, a
// path, the name of one of the app's ports, an interval longer than the
// timeout, and at least one status code for ready.
func (v *validator) readinessChecks(app *App) {
	if len(app.ReadinessChecks) > 1 {
		v.add("/readinessChecks", "only one readiness check per app is supported")
	}
	names := map[string]bool{}
	for _, pd := range app.PortDefinitions {
		if pd.Name != "" {
			names[pd.Name] = true
		}
	}
	for _, pm := range app.PortMappings() {
		if pm.Name != "" {
			names[pm.Name] = true
		}
	}
	for i, rc := range app.ReadinessChecks {
		p := fmt.Sprintf("/readinessChecks(%d)", i)
		if rc.Name == "" {
			v.add(p+"/name", "must not be empty")
		}
		if rc.Protocol != ProtoHTTP && rc.Protocol != ProtoHTTPS {
			v.add(p+"/protocol", "must be HTTP or HTTPS")
		}
		if !strings.HasPrefix(rc.Path, "/") {
			v.add(p+"/path", "must start with /")
		}
		if !names[rc.PortName] {
			v.add(p+"/portName", "no port of the app is named %q: name a port in portDefinitions (host networking) or container.portMappings", rc.PortName)
		}
		if rc.IntervalSeconds < 1 {
			v.add(p+"/intervalSeconds", "got %d, expected 1 or more", rc.IntervalSeconds)
		}
		if rc.TimeoutSeconds < 1 || rc.TimeoutSeconds >= rc.IntervalSeconds {
			v.add(p+"/timeoutSeconds", "got %d, expected 1 or more and less than intervalSeconds (%d)", rc.TimeoutSeconds, rc.IntervalSeconds)
		}
		if len(rc.HTTPStatusCodesForReady) == 0 {
			v.add(p+"/httpStatusCodesForReady", "must name at least one status code")
		}
		for j, c := range rc.HTTPStatusCodesForReady {
			if c < 100 || c > 999 {
				v.add(fmt.Sprintf("%s/httpStatusCodesForReady(%d)", p, j), "got %d, expected an HTTP status code (100 to 999)", c)
			}
		}
	}
}

func (v *validator) upgradeStrategy(app *App) {
	us := app.UpgradeStrategy
	between := func(p string, x float64) {
		if !(x >= 0 && x <= 1) { // also NaN
			v.add(p, "got %v, expected between 0.0 and 1.0", x)
		}
	}
	between("/upgradeStrategy/minimumHealthCapacity", us.MinimumHealthCapacity)
	between("/upgradeStrategy/maximumOverCapacity", us.MaximumOverCapacity)
	if app.HasPersistentVolumes() && us.MaximumOverCapacity != 0 {
		v.add("/upgradeStrategy/maximumOverCapacity", "got %v, expected 0.0: an app with persistent volumes never runs more instances than it has reservations", us.MaximumOverCapacity)
	}
}

// residency checks residency and unreachableStrategy, which go with
// persistent volumes.
func (v *validator) residency(app *App) {
	resident := app.HasPersistentVolumes()
	if app.Residency != nil && !resident {
		v.add("/", "AppDefinition must contain persistent volumes and define residency")
	}
	if len(app.UnreachableStrategy) == 0 {
		return
	}
	var disabled string
	var obj map[string]json.RawMessage
	switch {
	case json.Unmarshal(app.UnreachableStrategy, &disabled) == nil && disabled == "disabled":
	case resident:
		v.add("/", "unreachableStrategy must be disabled for resident tasks")
	case json.Unmarshal(app.UnreachableStrategy, &obj) != nil:
		v.add("/unreachableStrategy", "must be \"disabled\" or {\"inactiveAfterSeconds\": n, \"expungeAfterSeconds\": m}")
	}
}

// constraintOps maps each operator to whether it takes a value: 0 never,
// 1 always, -1 optionally.
var constraintOps = map[string]int{
	"UNIQUE": 0, "CLUSTER": -1, "GROUP_BY": -1, "LIKE": 1, "UNLIKE": 1, "MAX_PER": 1, "IS": 1,
}

func (v *validator) constraints(p string, cs [][]string) {
	for i, c := range cs {
		cp := fmt.Sprintf("%s(%d)", p, i)
		if len(c) < 2 || len(c) > 3 {
			v.add(cp, "Each constraint must have either 2 or 3 fields")
			continue
		}
		if c[0] == "" || c[1] == "" {
			v.add(cp, "Missing field and operator")
			continue
		}
		op := strings.ToUpper(c[1])
		want, ok := constraintOps[op]
		if !ok {
			v.add(cp, "Constraint operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS")
			continue
		}
		switch {
		case want == 0 && len(c) != 2:
			v.add(cp, "Value specified but not used: %s takes no value", op)
			continue
		case want == 1 && len(c) != 3:
			v.add(cp, "Missing value: %s requires a value", op)
			continue
		case len(c) == 2:
			continue
		}
		switch op {
		case "LIKE", "UNLIKE":
			if _, err := regexp.Compile(c[2]); err != nil {
				v.add(cp, "'%s' is not a valid regular expression", truncate(c[2], 60))
			}
		case "MAX_PER", "GROUP_BY":
			if n, err := strconv.Atoi(c[2]); err != nil || n < 1 {
				v.add(cp, "Value was specified but is not a number: %s takes a positive integer", op)
			}
		}
	}
}

// fetch checks the fetch entries (the legacy uris are among them).
func (v *validator) fetch(app *App, opts Options) {
	for i, f := range app.Fetch {
		fp := fmt.Sprintf("/fetch(%d)", i)
		switch {
		case strings.TrimSpace(f.URI) == "":
			v.add(fp+"/uri", "is empty: give an http(s) URL, a file:// URI or an absolute path")
		case len(f.URI) > maxCommandLength:
			v.add(fp+"/uri", "is longer than %d bytes", maxCommandLength)
		case opts.CheckFetchURI != nil:
			if err := opts.CheckFetchURI(f.URI); err != nil {
				v.add(fp+"/uri", "%s", err.Error())
			}
		}
		if f.DestPath == "" {
			continue
		}
		switch dp := f.DestPath; {
		case badPath(dp) != "":
			v.add(fp+"/destPath", "%s", badPath(dp))
		case path.IsAbs(dp):
			v.add(fp+"/destPath", "must be relative to the sandbox")
		case hasDotDot(dp):
			v.add(fp+"/destPath", "may not contain \"..\"")
		case path.Clean(dp) == ".":
			v.add(fp+"/destPath", "names the sandbox itself: give a file name")
		}
	}
}

// command checks what only a command app (no image) has to satisfy: a
// command to run, host networking, a user of this machine.
func (v *validator) command(app *App, opts Options) {
	if app.Cmd == "" && len(app.Args) == 0 {
		v.add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container': set cmd, or container.docker.image")
	}
	if app.NetworkMode() != NetworkHost {
		v.add("/networks", "an app without an image runs on the host's network: use networks [{\"mode\": \"host\"}] and portDefinitions, or set container.docker.image")
	}
	if app.User != "" && opts.CheckUser != nil {
		if err := opts.CheckUser(app.User); err != nil {
			v.add("/user", "%s", err.Error())
		}
	}
}

func (v *validator) container(app *App, opts Options) {
	c := app.Container
	if app.IsCommand() {
		v.command(app, opts)
	}
	if c == nil {
		return
	}
	switch c.Type {
	case "DOCKER", "MESOS":
	default:
		v.add("/container/type", "container type must be DOCKER or MESOS, got %q", c.Type)
	}
	if c.Docker == nil || strings.TrimSpace(c.Docker.Image) == "" {
		if c.Type == "DOCKER" {
			v.add("/container/docker/image", "a Docker image is required: set container.docker.image, or use container type MESOS (or no container) to run cmd on the host")
		}
	} else {
		d := c.Docker
		if d.Network != "" {
			v.add("/container/docker/network", "unsupported docker network type %s: use networks [{\"mode\": \"host\"}] or [{\"mode\": \"container/bridge\"}]", truncate(d.Network, 20))
		}
		if len(d.Image) > maxPathLength || strings.ContainsAny(d.Image, " \t\n\x00") {
			v.add("/container/docker/image", "%q is not a valid image reference", truncate(d.Image, 60))
		}
		if d.Privileged && !opts.AllowPrivileged {
			v.add("/container/docker/privileged", "privileged containers are disabled: set allow_privileged = true in agent.toml to allow them")
		}
		v.parameters(d.Parameters, opts)
	}
	if len(c.Volumes) > maxVolumes {
		v.add("/container/volumes", "at most %d volumes", maxVolumes)
		return
	}
	seen := map[string]bool{}
	for i, vol := range c.Volumes {
		vp := fmt.Sprintf("/container/volumes(%d)", i)
		cp := vol.ContainerPath
		switch target := mountTarget(cp); {
		case cp == "":
		case target == sandboxPath || target == "/":
			v.add(vp+"/containerPath", "containerPath %q would cover %s: mount the volume below it", truncate(cp, 60), target)
		case seen[target]:
			v.add(vp+"/containerPath", "containerPath %q is used by another volume", truncate(cp, 60))
		}
		seen[mountTarget(cp)] = true
		switch {
		case vol.Persistent != nil:
			v.persistentVolume(vp, vol)
		case vol.External != nil:
			v.add(vp+"/external", "external volumes are not supported by mesolite: use a persistent volume")
		case vol.Secret != "":
			v.add(vp+"/secret", "secret volumes are not supported by mesolite")
		default:
			v.hostVolume(vp, vol, opts)
		}
	}
}

// parameters asks the runtime's checker about each docker parameter.
func (v *validator) parameters(params []Parameter, opts Options) {
	if opts.CheckParameter == nil {
		return
	}
	for i, prm := range params {
		err := opts.CheckParameter(prm.Key, prm.Value)
		if err == nil {
			continue
		}
		p := fmt.Sprintf("/container/docker/parameters(%d)/value", i)
		var uk unknownKey
		if errors.As(err, &uk) && uk.UnknownKey() {
			p = fmt.Sprintf("/container/docker/parameters(%d)/key", i)
		}
		v.add(p, "%s", err.Error())
	}
}

func (v *validator) persistentVolume(vp string, vol Volume) {
	cp := vol.ContainerPath
	switch {
	case cp == "":
		v.add(vp+"/containerPath", "is empty")
	case strings.Contains(cp, "/"):
		v.add(vp+"/containerPath", "value must not contain \"/\"")
	case cp == "." || cp == "..":
		v.add(vp+"/containerPath", "can not be one of (.,..)")
	case strings.ContainsRune(cp, 0) || len(cp) > maxSegmentLength || strings.ContainsAny(cp, "#\\"):
		v.add(vp+"/containerPath", "must be at most %d characters, without NUL, \"#\" or \"\\\"", maxSegmentLength)
	}
	if vol.Mode != "RW" {
		v.add(vp+"/mode", "Persistent volumes can only be mounted read-write (mode RW)")
	}
	p := vol.Persistent
	if math.IsNaN(p.Size) || p.Size <= 0 {
		v.add(vp+"/persistent/size", "got %v, expected more than 0 MiB", p.Size)
	} else if p.Size > maxPersistentSize {
		v.add(vp+"/persistent/size", "got %v, expected at most %d MiB", p.Size, maxPersistentSize)
	}
	switch p.Type {
	case "root":
	case "path", "mount":
		v.add(vp+"/persistent/type", "persistent volume type %q is not supported by mesolite: use \"root\" (a directory on the agent)", p.Type)
	default:
		v.add(vp+"/persistent/type", "must be one of root, path, mount")
	}
	// maxSize and constraints belong to path and mount volumes, refused
	// above by their type: on a root volume they are an error of their own.
	if p.MaxSize != nil && p.Type == "root" {
		v.add(vp+"/persistent/maxSize", "maxSize is only meaningful for mount volumes, which mesolite does not support")
	}
	if len(p.Constraints) > 0 && p.Type == "root" {
		v.add(vp+"/persistent", "Constraints on root volumes are not supported")
	}
	if p.ProfileName != "" {
		v.add(vp+"/persistent/profileName", "disk profiles are not supported by mesolite")
	}
}

func (v *validator) hostVolume(vp string, vol Volume, opts Options) {
	cp := vol.ContainerPath
	if cp == "" {
		v.add(vp+"/containerPath", "is empty")
	} else if bad := badPath(cp); bad != "" {
		v.add(vp+"/containerPath", "%s", bad)
	} else if !path.IsAbs(cp) && hasDotDot(cp) {
		v.add(vp+"/containerPath", "a relative containerPath may not contain \"..\"")
	}
	switch vol.Mode {
	case "RW", "RO":
	default:
		v.add(vp+"/mode", "must be RW or RO")
	}
	hp := vol.HostPath
	switch {
	case hp == "":
		v.add(vp+"/hostPath", "a volume needs hostPath or persistent: set one of them")
	case badPath(hp) != "":
		v.add(vp+"/hostPath", "%s", badPath(hp))
	case hasDotDot(hp):
		v.add(vp+"/hostPath", "hostPath may not contain \"..\"")
	case path.IsAbs(hp):
		if !underAny(path.Clean(hp), opts.HostPathRoots) {
			if len(opts.HostPathRoots) == 0 {
				v.add(vp+"/hostPath", "absolute host paths are disabled: add a root to host_path_roots in agent.toml, or use a relative hostPath (inside the sandbox)")
			} else {
				v.add(vp+"/hostPath", "%q is outside the allowed roots %s (host_path_roots in agent.toml)", hp, strings.Join(opts.HostPathRoots, ", "))
			}
		}
	}
}

func (v *validator) networks(app *App) {
	if len(app.Networks) > 1 {
		v.add("/networks", "mesolite supports one network per app")
	}
	for i, n := range app.Networks {
		np := fmt.Sprintf("/networks(%d)", i)
		switch n.Mode {
		case NetworkHost, NetworkBridge:
			if n.Name != "" {
				v.add(np+"/name", "a %s network has no name", n.Mode)
			}
		case NetworkContainer:
			if n.Name == "" {
				v.add(np+"/name", "a container network needs the name of a Docker network")
			} else if !dockerNetworkName(n.Name) {
				v.add(np+"/name", "%q is not a valid Docker network name", truncate(n.Name, 40))
			}
		default:
			v.add(np+"/mode", "must be one of host, container/bridge, container")
		}
	}
	mode := app.NetworkMode()
	if mode == NetworkHost && len(app.PortMappings()) > 0 {
		v.add("/container/portMappings", "portMappings are not allowed with host-networking: use portDefinitions, or networks [{\"mode\": \"container/bridge\"}]")
	}
	if mode != NetworkHost && len(app.PortDefinitions) > 0 {
		v.add("/portDefinitions", "portDefinitions are only allowed with host-networking: use container.portMappings")
	}
}

func (v *validator) ports(app *App) {
	names := map[string]bool{}
	checkName := func(list, p, name string) {
		if name == "" {
			return
		}
		if !portName.MatchString(name) || len(name) > maxSegmentLength {
			v.add(p+"/name", "must fully match regular expression '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'")
		}
		if names[name] {
			v.addOnce(list, "Port names must be unique.")
		}
		names[name] = true
	}
	checkProto := func(p, proto string) {
		switch proto {
		case "tcp", "udp", "udp,tcp", "tcp,udp":
		default:
			v.add(p+"/protocol", "must be one of tcp, udp, udp,tcp")
		}
	}
	inRange := func(p string, port int) {
		if port < 0 || port > maxPortValue {
			v.add(p, "got %d, expected 0 to %d", port, maxPortValue)
		}
	}
	pms := app.PortMappings()
	if len(pms) > maxPorts || len(app.PortDefinitions) > maxPorts {
		v.add("/", "at most %d ports per app", maxPorts)
		return
	}
	fixed := map[int]bool{}
	for i, pm := range pms {
		p := fmt.Sprintf("/container/portMappings(%d)", i)
		inRange(p+"/containerPort", pm.ContainerPort)
		inRange(p+"/servicePort", pm.ServicePort)
		if pm.HostPort != nil {
			inRange(p+"/hostPort", *pm.HostPort)
			if *pm.HostPort > 0 {
				if fixed[*pm.HostPort] {
					v.add(p+"/hostPort", "host port %d is used twice", *pm.HostPort)
				}
				fixed[*pm.HostPort] = true
			}
		}
		// A bridge containerPort 0 is the host port the instance gets (its
		// hostPort, null, is 0 in bridge mode), as Marathon assigns it.
		checkProto(p, pm.Protocol)
		checkName("/container/portMappings", p, pm.Name)
	}
	for i, pd := range app.PortDefinitions {
		p := fmt.Sprintf("/portDefinitions(%d)", i)
		inRange(p+"/port", pd.Port)
		if pd.Port > 0 {
			if fixed[pd.Port] {
				v.addOnce("/portDefinitions", "Ports must be unique.")
			}
			fixed[pd.Port] = true
		}
		checkProto(p, pd.Protocol)
		checkName("/portDefinitions", p, pd.Name)
	}
}

// portRange refuses what the agent's host port range can never give: a
// fixed host port outside it, a fixed host port for more than one
// instance (one machine has each port once), and more host ports than the
// range holds. Such an app would wait for resources forever.
func (v *validator) portRange(app *App, opts Options) {
	if opts.PortMax <= 0 || opts.PortMax < opts.PortMin {
		return
	}
	where := fmt.Sprintf("the agent's port range %d-%d ([resources] ports in agent.toml)", opts.PortMin, opts.PortMax)
	outside := func(p string, port int, dynamic string) {
		if port > 0 && (port < opts.PortMin || port > opts.PortMax) {
			v.add(p, "host port %d is outside %s: use a port inside it, or %s for one the agent picks", port, where, dynamic)
		}
	}
	ports := hostPorts(app)
	fixed := 0
	if app.NetworkMode() == NetworkHost {
		if app.RequirePorts {
			for i, pd := range app.PortDefinitions {
				outside(fmt.Sprintf("/portDefinitions(%d)/port", i), pd.Port, "port 0 or requirePorts false")
			}
		}
	} else {
		for i, pm := range app.PortMappings() {
			if pm.HostPort != nil {
				outside(fmt.Sprintf("/container/portMappings(%d)/hostPort", i), *pm.HostPort, "hostPort 0")
			}
		}
	}
	for _, p := range ports {
		if p > 0 {
			fixed++
		}
	}
	size := opts.PortMax - opts.PortMin + 1
	switch {
	case len(ports) > size:
		v.add("/", "an instance needs %d host ports, more than the %d of %s: use fewer ports, or widen the range", len(ports), size, where)
	case len(ports)*app.Instances > size:
		v.add("/instances", "%d instances need %d host ports (%d each), more than the %d of %s: run fewer instances, or widen the range", app.Instances, len(ports)*app.Instances, len(ports), size, where)
	case fixed > 0 && app.Instances > 1:
		v.add("/instances", "every instance needs the same fixed host port, which this one machine has once: run 1 instance, or use port 0 for ports the agent picks from %s", where)
	}
}

func (v *validator) healthChecks(app *App) {
	if len(app.HealthChecks) > maxHealthChecks {
		v.add("/healthChecks", "at most %d health checks", maxHealthChecks)
		return
	}
	nports := app.HostPortCount()
	if app.NetworkMode() != NetworkHost {
		nports = len(app.PortMappings())
	}
	for i, hc := range app.HealthChecks {
		p := fmt.Sprintf("/healthChecks(%d)", i)
		switch hc.Protocol {
		case ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoMesosHTTP, ProtoMesosHTTPS, ProtoMesosTCP:
			switch {
			case hc.PortIndex != nil && hc.Port != nil:
				v.add(p, "Health check must specify either portIndex or port, not both")
			case hc.PortIndex != nil && (*hc.PortIndex < 0 || *hc.PortIndex >= nports):
				v.add(p, "Health check port indices must address an element of the ports array or container port mappings.")
			case hc.Port != nil && (*hc.Port < 1 || *hc.Port > maxPortValue):
				v.add(p+"/port", "got %d, expected 1 to %d", *hc.Port, maxPortValue)
			}
			if hc.Command != nil {
				v.add(p+"/command", "command is only allowed with protocol COMMAND")
			}
		case ProtoCommand:
			if hc.Command == nil || strings.TrimSpace(hc.Command.Value) == "" {
				v.add(p+"/command", "A COMMAND health check needs command.value")
			}
		default:
			v.add(p+"/protocol", "must be one of HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP")
		}
		switch hc.IPProtocol {
		case "", "IPv4":
		case "IPv6":
			if hc.Protocol != ProtoMesosHTTP && hc.Protocol != ProtoMesosHTTPS && hc.Protocol != ProtoMesosTCP {
				v.add(p, "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks")
			}
		default:
			v.add(p+"/ipProtocol", "must be IPv4 or IPv6")
		}
		if hc.Path != "" && (!strings.HasPrefix(hc.Path, "/") || strings.ContainsAny(hc.Path, " \r\n\x00")) {
			v.add(p+"/path", "must be an absolute URL path such as /health")
		}
		if hc.IntervalSeconds < 1 {
			v.add(p+"/intervalSeconds", "got %d, expected 1 or more", hc.IntervalSeconds)
		}
		if hc.TimeoutSeconds < 1 {
			v.add(p+"/timeoutSeconds", "got %d, expected 1 or more", hc.TimeoutSeconds)
		}
		if hc.GracePeriodSeconds < 0 {
			v.add(p+"/gracePeriodSeconds", "got %d, expected 0 or more", hc.GracePeriodSeconds)
		}
		if hc.MaxConsecutiveFailures < 0 {
			v.add(p+"/maxConsecutiveFailures", "got %d, expected 0 or more", hc.MaxConsecutiveFailures)
		}
		if hc.DelaySeconds < 0 {
			v.add(p+"/delaySeconds", "got %d, expected 0 or more", hc.DelaySeconds)
		}
	}
}

// ValidateUpdate checks the rules that compare an app with its previous
// version, as Marathon's residentUpdateIsValid does: when either version
// has persistent volumes, the volumes (matched by containerPath), cpus,
// mem, disk and host ports stay as they are. Anything else may change.
func ValidateUpdate(old, updated *App) error {
	if !old.HasPersistentVolumes() && !updated.HasPersistentVolumes() {
		return nil
	}
	var v validator
	if !sameVolumes(old.PersistentVolumes(), updated.PersistentVolumes()) {
		v.add("/", "Persistent volumes can not be changed!")
	}
	if old.Cpus != updated.Cpus || old.Mem != updated.Mem || old.Disk != updated.Disk || old.Gpus != updated.Gpus || !sameHostPorts(old, updated) {
		v.add("/", "Services with persistent volumes configured may not change resource requirements. If you need to make this change, please create a new service.")
	}
	return v.err()
}

// sameVolumes reports whether every volume of a has an equal one in b with
// the same containerPath, and both have as many.
func sameVolumes(a, b []Volume) bool {
	if len(a) != len(b) {
		return false
	}
	byPath := make(map[string]Volume, len(b))
	for _, vol := range b {
		byPath[vol.ContainerPath] = vol
	}
	for _, x := range a {
		y, ok := byPath[x.ContainerPath]
		if !ok || x.Mode != y.Mode || x.Persistent.Size != y.Persistent.Size || x.Persistent.Type != y.Persistent.Type {
			return false
		}
	}
	return true
}

func sameHostPorts(a, b *App) bool {
	pa, pb := hostPorts(a), hostPorts(b)
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		if pa[i] != pb[i] {
			return false
		}
	}
	return true
}

// hostPorts lists the host ports an instance of the app reserves, 0 for a
// dynamic one. With host networking a port definition is a host port only
// with requirePorts; otherwise its port is the service port and the host
// port is dynamic.
func hostPorts(a *App) []int {
	var out []int
	if a.NetworkMode() == NetworkHost {
		for _, pd := range a.PortDefinitions {
			if a.RequirePorts {
				out = append(out, pd.Port)
			} else {
				out = append(out, 0)
			}
		}
		return out
	}
	for _, pm := range a.PortMappings() {
		if pm.HostPort != nil {
			out = append(out, *pm.HostPort)
		}
	}
	return out
}

// sandboxPath is where the task's sandbox is mounted in the container.
const sandboxPath = "/mnt/mesos/sandbox"

// mountTarget is where a volume lands in the container.
func mountTarget(cp string) string {
	if path.IsAbs(cp) {
		return path.Clean(cp)
	}
	return path.Join(sandboxPath, cp)
}

func badPath(p string) string {
	switch {
	case strings.ContainsRune(p, 0):
		return "may not contain a NUL byte"
	case len(p) > 4096:
		return "is longer than 4096 characters"
	case strings.ContainsAny(p, ":,\n"):
		return "may not contain \":\", \",\" or a newline"
	}
	return ""
}

func hasDotDot(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == ".." {
			return true
		}
	}
	return false
}

func underAny(p string, roots []string) bool {
	for _, r := range roots {
		r = path.Clean(r)
		if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, "/")+"/") {
			return true
		}
	}
	return false
}

func dockerNetworkName(n string) bool {
	if len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// truncate shortens s to at most n bytes for a message, without cutting a
// UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// LabelEnvName is the environment variable name Marathon gives a label:
// MARATHON_APP_LABEL_<KEY>, each run of characters other than [A-Za-z0-9_]
// in the key replaced by one "_", upper-cased (Marathon's
// EnvironmentHelper.labelsToEnvVars).
func LabelEnvName(key string) string {
	return "MARATHON_APP_LABEL_" + strings.ToUpper(labelEnvKey.ReplaceAllString(key, "_"))
}
