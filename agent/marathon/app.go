// Package marathon holds Marathon's app definition: its JSON types, the
// defaults Marathon fills in (normalization), and validation into the
// 422 details Marathon answers with.
//
// The package is pure: no I/O, no Docker, no store. Everything here is
// table- and fuzz-tested.
package marathon

import (
	"encoding/json"
	"fmt"
	"math"
)

// Network modes as they appear in "networks[].mode".
const (
	NetworkHost      = "host"
	NetworkBridge    = "container/bridge"
	NetworkContainer = "container"
)

// Health check protocols.
const (
	ProtoHTTP       = "HTTP"
	ProtoHTTPS      = "HTTPS"
	ProtoTCP        = "TCP"
	ProtoCommand    = "COMMAND"
	ProtoMesosHTTP  = "MESOS_HTTP"
	ProtoMesosHTTPS = "MESOS_HTTPS"
	ProtoMesosTCP   = "MESOS_TCP"
)

// App is a Marathon app definition after normalization. Fields that
// Marathon always renders are plain values; optional ones are pointers or
// carry omitempty.
type App struct {
	ID                         string                     `json:"id"`
	Cmd                        string                     `json:"cmd,omitempty"`
	Args                       []string                   `json:"args,omitempty"`
	User                       string                     `json:"user,omitempty"`
	Env                        map[string]EnvVar          `json:"env,omitempty"`
	Instances                  int                        `json:"instances"`
	Cpus                       float64                    `json:"cpus"`
	Mem                        float64                    `json:"mem"`
	Disk                       float64                    `json:"disk"`
	Gpus                       int                        `json:"gpus"`
	Executor                   string                     `json:"executor"`
	Constraints                [][]string                 `json:"constraints,omitempty"`
	URIs                       []string                   `json:"uris,omitempty"`
	Fetch                      []Fetch                    `json:"fetch,omitempty"`
	StoreUrls                  []string                   `json:"storeUrls,omitempty"`
	BackoffSeconds             float64                    `json:"backoffSeconds"`
	BackoffFactor              float64                    `json:"backoffFactor"`
	MaxLaunchDelaySeconds      float64                    `json:"maxLaunchDelaySeconds"`
	Container                  *Container                 `json:"container,omitempty"`
	HealthChecks               []HealthCheck              `json:"healthChecks,omitempty"`
	ReadinessChecks            []ReadinessCheck           `json:"readinessChecks,omitempty"`
	Dependencies               []string                   `json:"dependencies,omitempty"`
	UpgradeStrategy            UpgradeStrategy            `json:"upgradeStrategy"`
	Labels                     map[string]string          `json:"labels"`
	AcceptedResourceRoles      []string                   `json:"acceptedResourceRoles,omitempty"`
	Residency                  *Residency                 `json:"residency,omitempty"`
	Secrets                    map[string]json.RawMessage `json:"secrets,omitempty"`
	TaskKillGracePeriodSeconds *float64                   `json:"taskKillGracePeriodSeconds,omitempty"`
	UnreachableStrategy        json.RawMessage            `json:"unreachableStrategy,omitempty"`
	KillSelection              string                     `json:"killSelection"`
	Networks                   []Network                  `json:"networks"`
	PortDefinitions            []PortDefinition           `json:"portDefinitions,omitempty"`
	RequirePorts               bool                       `json:"requirePorts"`

	// Legacy input fields, folded into the fields above by Normalize and
	// never rendered.
	Ports     []int           `json:"ports,omitempty"`
	IPAddress json.RawMessage `json:"ipAddress,omitempty"`
}

// EnvVar is one value of "env": a plain string, or a reference to a secret
// ({"secret": "name"}), which mesolite does not support.
type EnvVar struct {
	Value  string
	Secret string
}

// UnmarshalJSON accepts a string or {"secret": "..."}.
func (e *EnvVar) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*e = EnvVar{Value: s}
		return nil
	}
	var ref struct {
		Secret *string `json:"secret"`
	}
	if err := json.Unmarshal(b, &ref); err != nil || ref.Secret == nil {
		return fmt.Errorf("env value must be a string or {\"secret\": name}")
	}
	*e = EnvVar{Secret: *ref.Secret}
	return nil
}

// MarshalJSON renders the value as it was given.
func (e EnvVar) MarshalJSON() ([]byte, error) {
	if e.Secret != "" {
		return json.Marshal(map[string]string{"secret": e.Secret})
	}
	return json.Marshal(e.Value)
}

// Fetch is one URI the fetcher downloads into the sandbox before the task
// starts ("fetch" entries; the legacy "uris" are folded into them).
type Fetch struct {
	URI        string `json:"uri"`
	Extract    bool   `json:"extract"`
	Executable bool   `json:"executable"`
	Cache      bool   `json:"cache"`
	DestPath   string `json:"destPath,omitempty"`
}

// UnmarshalJSON fills Mesos's default (extract true) before decoding.
func (f *Fetch) UnmarshalJSON(b []byte) error {
	type plain Fetch
	v := plain{Extract: true}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Fetch(v)
	return nil
}

// Container is "container".
type Container struct {
	Type         string        `json:"type"`
	Docker       *Docker       `json:"docker,omitempty"`
	Volumes      []Volume      `json:"volumes"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
}

// Docker is "container.docker".
type Docker struct {
	Image          string      `json:"image"`
	ForcePullImage bool        `json:"forcePullImage"`
	Privileged     bool        `json:"privileged"`
	Parameters     []Parameter `json:"parameters"`

	// Legacy (Marathon < 1.5) fields, folded into networks and
	// container.portMappings by Normalize.
	Network      string        `json:"network,omitempty"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
}

// Parameter is one "docker run" option: {"key": "label", "value": "a=b"}.
type Parameter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Volume is one entry of "container.volumes": a persistent volume (Persistent
// set) or a host volume (HostPath set).
type Volume struct {
	ContainerPath string            `json:"containerPath"`
	HostPath      string            `json:"hostPath,omitempty"`
	Mode          string            `json:"mode"`
	Persistent    *PersistentVolume `json:"persistent,omitempty"`
	External      json.RawMessage   `json:"external,omitempty"`
	Secret        string            `json:"secret,omitempty"`
}

// PersistentVolume is "persistent" of a volume. Size is in MiB.
type PersistentVolume struct {
	Type        string     `json:"type"`
	Size        float64    `json:"size"`
	MaxSize     *float64   `json:"maxSize,omitempty"`
	ProfileName string     `json:"profileName,omitempty"`
	Constraints [][]string `json:"constraints"`
}

// PortMapping is one entry of "container.portMappings". HostPort nil means
// the port is not published on the host (only possible on container
// networks); 0 means "pick one from the agent's range".
type PortMapping struct {
	ContainerPort int               `json:"containerPort"`
	HostPort      *int              `json:"hostPort,omitempty"`
	ServicePort   int               `json:"servicePort"`
	Protocol      string            `json:"protocol"`
	Name          string            `json:"name,omitempty"`
	Labels        map[string]string `json:"labels"`
	NetworkNames  []string          `json:"networkNames,omitempty"`
}

// PortDefinition is one entry of "portDefinitions" (host networking).
type PortDefinition struct {
	Port     int               `json:"port"`
	Protocol string            `json:"protocol"`
	Name     string            `json:"name,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Network is one entry of "networks".
type Network struct {
	Mode   string            `json:"mode"`
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// HealthCheck is one entry of "healthChecks".
type HealthCheck struct {
	Protocol               string   `json:"protocol"`
	Path                   string   `json:"path,omitempty"`
	PortIndex              *int     `json:"portIndex,omitempty"`
	Port                   *int     `json:"port,omitempty"`
	Command                *Command `json:"command,omitempty"`
	GracePeriodSeconds     int      `json:"gracePeriodSeconds"`
	IntervalSeconds        int      `json:"intervalSeconds"`
	TimeoutSeconds         int      `json:"timeoutSeconds"`
	MaxConsecutiveFailures int      `json:"maxConsecutiveFailures"`
	DelaySeconds           int      `json:"delaySeconds"`
	IgnoreHTTP1xx          *bool    `json:"ignoreHttp1xx,omitempty"`
	IPProtocol             string   `json:"ipProtocol,omitempty"`
}

// ReadinessCheck is one entry of "readinessChecks" (readinessCheck.raml):
// an HTTP(S) GET that a deployment waits for, for every new task, before
// it goes on. Marathon writes every field, its defaults included.
type ReadinessCheck struct {
	Name                    string `json:"name"`
	Protocol                string `json:"protocol"`
	Path                    string `json:"path"`
	PortName                string `json:"portName"`
	IntervalSeconds         int    `json:"intervalSeconds"`
	TimeoutSeconds          int    `json:"timeoutSeconds"`
	HTTPStatusCodesForReady []int  `json:"httpStatusCodesForReady"`
	PreserveLastResponse    bool   `json:"preserveLastResponse"`
}

// UnmarshalJSON fills Marathon's readiness check defaults before decoding
// (ReadinessCheck.Default*: name readinessCheck, HTTP, path /, port name
// http-api, every 30 s, timeout 10 s, ready on 200).
func (r *ReadinessCheck) UnmarshalJSON(b []byte) error {
	type plain ReadinessCheck
	v := plain{
		Name: "readinessCheck", Protocol: "HTTP", Path: "/", PortName: "http-api",
		IntervalSeconds: 30, TimeoutSeconds: 10,
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.HTTPStatusCodesForReady == nil {
		v.HTTPStatusCodesForReady = []int{200}
	}
	*r = ReadinessCheck(v)
	return nil
}

// Command is the command of a COMMAND health check.
type Command struct {
	Value string `json:"value"`
}

// UpgradeStrategy is "upgradeStrategy".
type UpgradeStrategy struct {
	MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
	MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
}

// Residency is "residency", present for apps with persistent volumes.
type Residency struct {
	RelaunchEscalationTimeoutSeconds int    `json:"relaunchEscalationTimeoutSeconds"`
	TaskLostBehavior                 string `json:"taskLostBehavior"`
}

// UnmarshalJSON fills the health check defaults before decoding, so fields
// the user left out keep Marathon's defaults.
func (h *HealthCheck) UnmarshalJSON(b []byte) error {
	type plain HealthCheck
	p := plain{
		Protocol:               ProtoHTTP,
		GracePeriodSeconds:     300,
		IntervalSeconds:        60,
		TimeoutSeconds:         20,
		MaxConsecutiveFailures: 3,
		DelaySeconds:           15,
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*h = HealthCheck(p)
	return nil
}

// UnmarshalJSON fills the port mapping defaults before decoding.
func (p *PortMapping) UnmarshalJSON(b []byte) error {
	type plain PortMapping
	v := plain{Protocol: "tcp"}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = PortMapping(v)
	return nil
}

// UnmarshalJSON fills the port definition defaults before decoding.
func (p *PortDefinition) UnmarshalJSON(b []byte) error {
	type plain PortDefinition
	v := plain{Protocol: "tcp"}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = PortDefinition(v)
	return nil
}

// UnmarshalJSON fills the volume defaults before decoding.
func (v *Volume) UnmarshalJSON(b []byte) error {
	type plain Volume
	p := plain{Mode: "RW"}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*v = Volume(p)
	return nil
}

// UnmarshalJSON fills the persistent volume defaults before decoding.
func (p *PersistentVolume) UnmarshalJSON(b []byte) error {
	type plain PersistentVolume
	v := plain{Type: "root"}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = PersistentVolume(v)
	return nil
}

// UnmarshalJSON fills the container defaults before decoding.
func (c *Container) UnmarshalJSON(b []byte) error {
	type plain Container
	v := plain{Type: "DOCKER"}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = Container(v)
	return nil
}

// unset marks an upgradeStrategy field the definition leaves out. JSON
// cannot carry NaN, so it never collides with a value the user gave (a
// negative one must reach Validate, not be replaced by the default).
var unset = math.NaN()

// defaultApp is what an empty definition normalizes from. The fields of
// UpgradeStrategy are unset here and filled by Normalize, because their
// defaults depend on persistent volumes.
func defaultApp() App {
	return App{
		Instances:             1,
		Cpus:                  1,
		Mem:                   128,
		Executor:              "",
		BackoffSeconds:        1,
		BackoffFactor:         1.15,
		MaxLaunchDelaySeconds: 300,
		KillSelection:         "YOUNGEST_FIRST",
		UpgradeStrategy:       UpgradeStrategy{MinimumHealthCapacity: unset, MaximumOverCapacity: unset},
	}
}

// HasPersistentVolumes reports whether the app is resident: it has at
// least one persistent volume, so its instances hold reservations.
func (a *App) HasPersistentVolumes() bool {
	return len(a.PersistentVolumes()) > 0
}

// PersistentVolumes returns the persistent volumes of the app, in order.
func (a *App) PersistentVolumes() []Volume {
	if a.Container == nil {
		return nil
	}
	var out []Volume
	for _, v := range a.Container.Volumes {
		if v.Persistent != nil {
			out = append(out, v)
		}
	}
	return out
}

// NetworkMode returns the mode of the app's first network.
func (a *App) NetworkMode() string {
	if len(a.Networks) == 0 {
		return NetworkHost
	}
	return a.Networks[0].Mode
}

// IsCommand reports whether the app runs without an image: a Marathon
// command app (cmd or args, no container or a MESOS container without an
// image), which mesolite runs on the host's file system.
func (a *App) IsCommand() bool {
	return a.Image() == ""
}

// DockerSection returns container.docker, or nil.
func (a *App) DockerSection() *Docker {
	if a.Container == nil {
		return nil
	}
	return a.Container.Docker
}

// Volumes returns container.volumes, or nil (a command app may have no
// container).
func (a *App) Volumes() []Volume {
	if a.Container == nil {
		return nil
	}
	return a.Container.Volumes
}

// Image returns the Docker image, or "" when none is set.
func (a *App) Image() string {
	if a.Container == nil || a.Container.Docker == nil {
		return ""
	}
	return a.Container.Docker.Image
}

// PortLabels is one port of an app with its labels and its path in the
// app JSON.
type PortLabels struct {
	Path     string // "/container/portMappings(0)" or "/portDefinitions(0)"
	Protocol string
	Name     string
	// ContainerPort is the port inside the container; 0 with host
	// networking, where the task's host port is the port.
	ContainerPort int
	Labels        map[string]string
}

// LabelledPorts returns the app's ports with their labels: its portDefinitions
// with host networking, its container.portMappings otherwise.
func (a *App) LabelledPorts() []PortLabels {
	var out []PortLabels
	if a.NetworkMode() == NetworkHost {
		for i, pd := range a.PortDefinitions {
			out = append(out, PortLabels{Path: fmt.Sprintf("/portDefinitions(%d)", i), Protocol: pd.Protocol, Name: pd.Name, Labels: pd.Labels})
		}
		return out
	}
	for i, pm := range a.PortMappings() {
		out = append(out, PortLabels{Path: fmt.Sprintf("/container/portMappings(%d)", i), Protocol: pm.Protocol, Name: pm.Name, ContainerPort: pm.ContainerPort, Labels: pm.Labels})
	}
	return out
}

// PortMappings returns container.portMappings, or nil.
func (a *App) PortMappings() []PortMapping {
	if a.Container == nil {
		return nil
	}
	return a.Container.PortMappings
}

// HostPortCount returns how many host ports an instance of the app needs:
// one per port definition (host networking) or per port mapping that
// publishes a host port.
func (a *App) HostPortCount() int {
	if a.NetworkMode() == NetworkHost {
		return len(a.PortDefinitions)
	}
	n := 0
	for _, pm := range a.PortMappings() {
		if pm.HostPort != nil {
			n++
		}
	}
	return n
}

// PersistentDisk returns the MiB all persistent volumes of the app declare.
func (a *App) PersistentDisk() float64 {
	var sum float64
	for _, v := range a.PersistentVolumes() {
		sum += v.Persistent.Size
	}
	return sum
}

// Clone returns a deep copy of a normalized app, through JSON. (Before
// Normalize, upgradeStrategy holds NaN, which JSON cannot encode.)
func (a *App) Clone() *App {
	b, err := json.Marshal(a)
	if err != nil {
		panic(fmt.Sprintf("marshal app: %v", err))
	}
	out := defaultApp()
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("unmarshal app: %v", err))
	}
	return &out
}
