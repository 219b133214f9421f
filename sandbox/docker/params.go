package docker

import (
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/docker/docker/api/types/container"

	"github.com/mesolite/mesolite/sandbox"
)

// parameter is one docker run option mesolite accepts in
// container.docker.parameters: how its value is checked (at validation,
// so a bad value is a 422 before anything runs) and how it is applied to
// Docker's create request.
type parameter struct {
	check func(v string) error
	apply func(cfg *container.Config, hc *container.HostConfig, v string)
}

// parameters are the accepted docker run options, the one list of them.
// Anything that would widen the container's privileges (cap-add, device,
// volume, pid, sysctl, security-opt, …) is left out on purpose.
var parameters = map[string]parameter{
	"label": {checkLabel, func(cfg *container.Config, _ *container.HostConfig, v string) {
		k, val, _ := strings.Cut(v, "=")
		cfg.Labels[k] = val
	}},
	"env":      {checkEnv, func(cfg *container.Config, _ *container.HostConfig, v string) { cfg.Env = append(cfg.Env, v) }},
	"user":     {checkUser, func(cfg *container.Config, _ *container.HostConfig, v string) { cfg.User = v }},
	"hostname": {checkHostname, func(cfg *container.Config, _ *container.HostConfig, v string) { cfg.Hostname = v }},
	"workdir":  {checkAbsPath, func(cfg *container.Config, _ *container.HostConfig, v string) { cfg.WorkingDir = v }},
	"init": {checkBool, func(_ *container.Config, hc *container.HostConfig, v string) {
		b := boolValue(v)
		hc.Init = &b
	}},
	"shm-size": {checkSize, func(_ *container.Config, hc *container.HostConfig, v string) { hc.ShmSize, _ = parseBytes(v) }},
	"memory-swap": {checkSwap, func(_ *container.Config, hc *container.HostConfig, v string) {
		if v == "-1" {
			hc.MemorySwap = -1
			return
		}
		hc.MemorySwap, _ = parseBytes(v)
	}},
	"ulimit": {checkUlimit, func(_ *container.Config, hc *container.HostConfig, v string) {
		ul, _ := parseUlimit(v)
		hc.Ulimits = append(hc.Ulimits, ul)
	}},
	"add-host": {checkAddHost, func(_ *container.Config, hc *container.HostConfig, v string) {
		hc.ExtraHosts = append(hc.ExtraHosts, v)
	}},
	"entrypoint":  {checkNonEmpty, func(cfg *container.Config, _ *container.HostConfig, v string) { cfg.Entrypoint = []string{v} }},
	"stop-signal": {checkSignal, func(cfg *container.Config, _ *container.HostConfig, v string) { cfg.StopSignal = v }},
	"stop-timeout": {checkStopTimeout, func(cfg *container.Config, _ *container.HostConfig, v string) {
		n, _ := strconv.Atoi(v)
		cfg.StopTimeout = &n
	}},
	"tmpfs": {checkTmpfs, func(_ *container.Config, hc *container.HostConfig, v string) {
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		dst, opts, _ := strings.Cut(v, ":")
		hc.Tmpfs[dst] = opts
	}},
	"read-only": {checkBool, func(_ *container.Config, hc *container.HostConfig, v string) { hc.ReadonlyRootfs = boolValue(v) }},
}

// ParameterError is a container.docker.parameters entry Docker's runtime
// refuses: an unknown key, or a value that key cannot take.
type ParameterError struct {
	Key, Value string
	Err        error
	unknown    bool
}

func (e *ParameterError) Error() string { return e.Err.Error() }

func (e *ParameterError) Unwrap() error { return e.Err }

// UnknownKey reports whether the key is what is wrong (rather than the
// value). Validation reads it to name the right path.
func (e *ParameterError) UnknownKey() bool { return e.unknown }

// CheckParameter checks one container.docker.parameters entry: the key
// must be an option mesolite accepts and the value one Docker would take,
// so a bad value is refused when the app is posted, not when its task
// starts. The error is a *ParameterError whose message says what to do.
func CheckParameter(key, value string) error {
	p, ok := parameters[key]
	if !ok {
		return &ParameterError{Key: key, Value: value, unknown: true, Err: fmt.Errorf(
			"docker parameter %q is not supported by mesolite; supported: %s", truncate(key, 40), strings.Join(SupportedParameters(), ", "))}
	}
	if strings.ContainsRune(value, 0) {
		return &ParameterError{Key: key, Value: value, Err: fmt.Errorf("docker parameter %s: the value may not contain a NUL byte", key)}
	}
	if err := p.check(value); err != nil {
		return &ParameterError{Key: key, Value: value, Err: fmt.Errorf("docker parameter %s: %w", key, err)}
	}
	return nil
}

// SupportedParameters lists the accepted keys, sorted.
func SupportedParameters() []string {
	out := make([]string, 0, len(parameters))
	for k := range parameters {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// applyParameter checks a parameter again (a record written by an older
// mesolite was never checked) and applies it.
func applyParameter(cfg *container.Config, hc *container.HostConfig, p sandbox.Parameter) error {
	if err := CheckParameter(p.Key, p.Value); err != nil {
		return err
	}
	parameters[p.Key].apply(cfg, hc, p.Value)
	return nil
}

// reservedLabel reports whether a label key is one mesolite sets itself.
func reservedLabel(k string) bool {
	return strings.HasPrefix(k, "mesolite.") || k == sandbox.LabelMesosTask
}

func checkLabel(v string) error {
	k, _, _ := strings.Cut(v, "=")
	switch {
	case k == "":
		return fmt.Errorf("%q: want key=value", truncate(v, 60))
	case reservedLabel(k):
		return fmt.Errorf("label %q: the mesolite.* and %s labels are reserved; choose another key", truncate(k, 60), sandbox.LabelMesosTask)
	}
	return nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkEnv(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || !envName.MatchString(k) {
		return fmt.Errorf("%q: want NAME=value, NAME of [A-Za-z0-9_] not starting with a digit", truncate(v, 60))
	}
	return nil
}

var userName = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$`)

func checkUser(v string) error {
	if len(v) > 256 || !userName.MatchString(v) {
		return fmt.Errorf("%q: want a user name or uid, optionally :group", truncate(v, 60))
	}
	return nil
}

var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func checkHostname(v string) error {
	if v == "" || len(v) > 253 {
		return fmt.Errorf("%q: want a host name of at most 253 characters", truncate(v, 60))
	}
	for _, l := range strings.Split(v, ".") {
		if !hostLabel.MatchString(l) {
			return fmt.Errorf("%q is not a valid host name", truncate(v, 60))
		}
	}
	return nil
}

func checkAbsPath(v string) error {
	if !path.IsAbs(v) {
		return fmt.Errorf("%q: want an absolute path", truncate(v, 60))
	}
	return nil
}

func checkNonEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("the value may not be empty")
	}
	return nil
}

// checkBool accepts what docker run's boolean flags take: "" (as the bare
// flag), true or false.
func checkBool(v string) error {
	switch v {
	case "", "true", "false":
		return nil
	}
	return fmt.Errorf("%q: want true or false", truncate(v, 60))
}

func boolValue(v string) bool { return v == "" || v == "true" }

func checkSize(v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	if n <= 0 {
		return fmt.Errorf("%q: want a size above 0, e.g. 64m or 1g", v)
	}
	return nil
}

func checkSwap(v string) error {
	if v == "-1" {
		return nil
	}
	if _, err := parseBytes(v); err != nil {
		return fmt.Errorf("%w, or -1 for unlimited swap", err)
	}
	return nil
}

// ulimitNames are the resource names docker run --ulimit knows.
var ulimitNames = map[string]bool{
	"core": true, "cpu": true, "data": true, "fsize": true, "locks": true, "memlock": true, "msgqueue": true,
	"nice": true, "nofile": true, "nproc": true, "rss": true, "rtprio": true, "rttime": true,
	"sigpending": true, "stack": true,
}

func checkUlimit(v string) error {
	ul, err := parseUlimit(v)
	if err != nil {
		return err
	}
	if !ulimitNames[ul.Name] {
		return fmt.Errorf("ulimit %q: unknown resource %q", truncate(v, 60), truncate(ul.Name, 20))
	}
	if ul.Soft < -1 || ul.Hard < -1 || (ul.Hard != -1 && ul.Soft > ul.Hard) {
		return fmt.Errorf("ulimit %q: want soft <= hard, -1 for unlimited", truncate(v, 60))
	}
	return nil
}

// parseUlimit reads "nofile=1024:2048" or "nofile=1024".
func parseUlimit(s string) (*container.Ulimit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return nil, fmt.Errorf("ulimit %q: want name=soft[:hard]", truncate(s, 60))
	}
	softS, hardS, hasHard := strings.Cut(val, ":")
	soft, err := strconv.ParseInt(softS, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("ulimit %q: %w", truncate(s, 60), err)
	}
	hard := soft
	if hasHard {
		if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil {
			return nil, fmt.Errorf("ulimit %q: %w", truncate(s, 60), err)
		}
	}
	return &container.Ulimit{Name: name, Soft: soft, Hard: hard}, nil
}

func checkAddHost(v string) error {
	host, ip, ok := strings.Cut(v, ":")
	if !ok || checkHostname(host) != nil || (ip != "host-gateway" && net.ParseIP(ip) == nil) {
		return fmt.Errorf("%q: want host:ip (or host:host-gateway)", truncate(v, 60))
	}
	return nil
}

var signalName = regexp.MustCompile(`^(SIG)?[A-Z][A-Z0-9+-]*$`)

func checkSignal(v string) error {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > 64 {
			return fmt.Errorf("signal %d: want 1 to 64", n)
		}
		return nil
	}
	if !signalName.MatchString(v) || len(v) > 16 {
		return fmt.Errorf("%q: want a signal name such as SIGTERM, or its number", truncate(v, 60))
	}
	return nil
}

func checkStopTimeout(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("%q: want whole seconds, 0 or more", truncate(v, 60))
	}
	return nil
}

func checkTmpfs(v string) error {
	dst, _, _ := strings.Cut(v, ":")
	if !path.IsAbs(dst) || dst == "/" {
		return fmt.Errorf("%q: want /path[:options], the path absolute and not /", truncate(v, 60))
	}
	return nil
}

// parseBytes reads sizes such as 64m, 1g, 512k or 1024.
func parseBytes(s string) (int64, error) {
	in := s
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
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: want a number with an optional unit, e.g. 64m or 1g", truncate(in, 60))
	}
	return n * mult, nil
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
