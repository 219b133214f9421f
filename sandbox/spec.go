package sandbox

import (
	"time"

	"github.com/mesolite/mesolite/sandbox/fetch"
)

// Labels every container of mesolite carries. LabelAgentID tells the
// containers of one agent (one work directory) from all others;
// LabelWorkDir and LabelFrameworkID find them again, with the agent's
// identity, when the agent's own record of it is lost.
const (
	LabelAgentID     = "mesolite.agent_id"
	LabelWorkDir     = "mesolite.work_dir"
	LabelFrameworkID = "mesolite.framework_id"
	LabelAppID       = "mesolite.app_id"
	LabelInstanceID  = "mesolite.instance_id"
	LabelTaskID      = "mesolite.task_id"
	LabelMesosTask   = "MESOS_TASK_ID"
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

	SandboxDir string  // host directory mounted at SandboxPath()
	Mounts     []Mount // what the task asks for; resolved into Binds by PrepareSandbox
	// Binds are Mounts resolved on the host (symlinks followed, containment
	// checked), set by Host.PrepareSandbox; the runtime binds exactly these.
	Binds []Bind

	NetworkMode string // "bridge", "host" or the name of a network
	Ports       []PortBinding
	// DNS are the nameservers the task resolves names with (mesolite's
	// DNS server when the network data plane is on); nil keeps the
	// runtime's default.
	DNS []string

	CPUShares   int64
	CPUQuota    int64 // microseconds per 100ms period; 0 = no quota
	MemoryBytes int64
	MemorySwap  int64 // 0 = the runtime's default
	Privileged  bool
	StopTimeout int // seconds before SIGKILL

	// HostRoot marks a command task (an app without an image): the
	// container's root is the host's file system, its system directories
	// read-only, and the sandbox is at its own host path (SandboxPath),
	// which is the working directory and $MESOS_SANDBOX. Image is empty.
	HostRoot bool
	// User is the host account a command task runs as; "" runs it as the
	// agent's user, as Marathon's default user is the one it runs as.
	User string
	// Fetch are the URIs Host.Fetch puts in the sandbox before the task
	// runs.
	Fetch []fetch.Item

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

// SandboxPath is where the task sees its sandbox: MountPoint in an image,
// its own host path in a command task.
func (s *TaskSpec) SandboxPath() string {
	if s.HostRoot {
		return s.SandboxDir
	}
	return MountPoint
}

// Name is the container name of the task: mesos-<container id>.
func (s *TaskSpec) Name() string { return ContainerName(s.ContainerID) }

// ContainerName is the container name for a Mesos container id.
func ContainerName(containerID string) string { return "mesos-" + containerID }

// Volume is a persistent volume to make: its id and declared size, and
// its owner, recorded beside it (see VolumeOwner) when Owner.AppID is set.
type Volume struct {
	PersistenceID string
	SizeMiB       float64
	Owner         VolumeOwner
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
	// Mounts are the host directories the container mounts.
	Mounts []string
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
