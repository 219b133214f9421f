package sandbox

import "time"

// Labels every container of mesolite carries. LabelAgentID tells the
// containers of one agent (one work directory) from all others.
const (
	LabelAgentID    = "mesolite.agent_id"
	LabelAppID      = "mesolite.app_id"
	LabelInstanceID = "mesolite.instance_id"
	LabelTaskID     = "mesolite.task_id"
	LabelMesosTask  = "MESOS_TASK_ID"
)

// Files in a sandbox.
const (
	StdoutFile = "stdout"
	StderrFile = "stderr"
)

// TaskSpec is everything a runtime needs to run one task as a container.
// The agent builds it from the app definition and the reservation; it
// holds no runtime's vocabulary except Parameters, which the runtime's
// own checker has accepted at validation.
type TaskSpec struct {
	ContainerID string // Mesos container id; the container is named mesos-<ContainerID>
	TaskID      string
	AppID       string
	InstanceID  string

	Image      string
	ForcePull  bool
	Entrypoint []string // nil keeps the image's entrypoint
	Cmd        []string // nil keeps the image's command
	Env        []string // KEY=VALUE, in order; later ones win

	SandboxDir string  // host directory mounted at MountPoint
	Mounts     []Mount // what the task asks for; resolved into Binds by PrepareSandbox
	// Binds are Mounts resolved on the host (symlinks followed, containment
	// checked), set by Host.PrepareSandbox; the runtime binds exactly these.
	Binds []Bind

	NetworkMode string // "bridge", "host" or the name of a network
	Ports       []PortBinding

	CPUShares   int64
	CPUQuota    int64 // microseconds per 100ms period; 0 = no quota
	MemoryBytes int64
	MemorySwap  int64 // 0 = the runtime's default
	Privileged  bool
	StopTimeout int // seconds before SIGKILL

	// Parameters are runtime options given as they are
	// (container.docker.parameters), applied by the runtime last.
	Parameters []Parameter
}

// Parameter is one runtime option: {"key": "label", "value": "a=b"}.
type Parameter struct {
	Key   string
	Value string
}

// PortBinding publishes a container port on a host address.
type PortBinding struct {
	ContainerPort int
	HostPort      int
	Protocol      string // tcp, udp, or both as "udp,tcp"
	HostIP        string
}

// Name is the container name of the task: mesos-<container id>.
func (s *TaskSpec) Name() string { return ContainerName(s.ContainerID) }

// ContainerName is the container name for a Mesos container id.
func ContainerName(containerID string) string { return "mesos-" + containerID }

// Volume is a persistent volume to make: its id and declared size.
type Volume struct {
	PersistenceID string
	SizeMiB       float64
}

// Container is what mesolite reads of a container.
type Container struct {
	ID         string
	Name       string
	Image      string
	Labels     map[string]string
	State      string // created, running, paused, restarting, removing, exited, dead
	Running    bool
	ExitCode   int
	OOMKilled  bool
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
	IPAddress  string
	Detailed   bool // from an inspect: exit code and times are known
}

// TaskID is the task the container runs.
func (c Container) TaskID() string { return c.Labels[LabelTaskID] }

// Event is a container event of this agent's containers.
type Event struct {
	ContainerID string
	TaskID      string
	Action      string // start, die, oom, destroy
	ExitCode    int
	Time        time.Time
}
