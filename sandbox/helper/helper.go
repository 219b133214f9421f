// Package helper runs a long-lived helper container made from mesolite's
// own binary: the image is built with `docker import` of a one-file tar
// (no registry, no Dockerfile), the container is created once, adopted by
// a restarted agent, recreated when it died or its binary changed, and
// removed only on an explicit clean-up. The agent talks to it with docker
// exec, so no socket or file needs to be shared between a root process in
// the container and an unprivileged agent on the host.
//
// The network data plane uses it where the agent may not change nftables
// itself (a user in the docker group who is not root): the helper has host
// networking and NET_ADMIN. Other helpers (health checks from inside
// Docker's network, where the host cannot reach containers) use the same
// mechanism with their own Spec.
//
// Labels: every helper container carries LabelHelper=<kind>,
// LabelOwner=<owner> and LabelBinary=<digest>. It never carries the task
// labels (mesolite.agent_id, mesolite.task_id), so the agent's listing of
// task containers never sees it and it is never taken for an orphan task.
package helper

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rs/zerolog"
)

// Labels of helper containers and images.
const (
	LabelHelper = "mesolite.helper"        // the helper's kind, e.g. "netplane"
	LabelOwner  = "mesolite.helper.owner"  // who runs it (the agent's work directory or id)
	LabelBinary = "mesolite.helper.binary" // the digest of the binary it runs
)

// ImageRepository is the repository helper images are tagged in; the tag
// is the first 16 hex digits of the binary's SHA-256.
const ImageRepository = "mesolite/helper"

// binaryPath is where the binary lies in the image.
const binaryPath = "/mesolite"

// callTimeout bounds each Docker call but the exec (bounded by its ctx).
const callTimeout = 30 * time.Second

// Error classes.
var (
	// ErrDynamicBinary: the binary needs a dynamic loader, which an image
	// made of that one file does not have.
	ErrDynamicBinary = errors.New("the binary is dynamically linked")
	// ErrDocker: Docker refused or failed a call.
	ErrDocker = errors.New("docker")
)

// DockerAPI is the part of the Docker client the helper uses.
type DockerAPI interface {
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageImport(ctx context.Context, source image.ImportSource, ref string, options image.ImportOptions) (io.ReadCloser, error)
	ImageRemove(ctx context.Context, imageID string, options image.RemoveOptions) ([]image.DeleteResponse, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerExecCreate(ctx context.Context, containerID string, options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, config container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
}

var _ DockerAPI = (*client.Client)(nil)

// Spec describes one helper container.
type Spec struct {
	// Kind names the helper ("netplane"); it is the value of LabelHelper.
	Kind string
	// Name is the container's name; one per owner and kind.
	Name string
	// Owner is the value of LabelOwner.
	Owner string
	// Binary is the static binary the image is made of (usually
	// os.Executable()); it runs as /mesolite.
	Binary string
	// Cmd is the main process's arguments after the binary.
	Cmd []string
	Env []string
	// NetworkMode is "host" or a Docker network; empty: Docker's default.
	NetworkMode string
	// CapAdd are the capabilities the helper keeps; every other one is
	// dropped.
	CapAdd []string
	// Binds are bind mounts, Docker's "src:dst[:opts]".
	Binds []string
	// Publish are TCP ports of the container published on PublishIP (on
	// a host port Docker picks), for an agent that reaches the helper only
	// through published ports (Docker Desktop, rootless Docker).
	Publish   []int
	PublishIP string
}

// Helper creates, adopts, recreates and removes one helper container.
type Helper struct {
	api  DockerAPI
	spec Spec
	log  zerolog.Logger

	digest string // of spec.Binary, computed once
}

// New returns a Helper. It checks that the binary is static.
func New(api DockerAPI, spec Spec, log zerolog.Logger) (*Helper, error) {
	if err := CheckStatic(spec.Binary); err != nil {
		return nil, err
	}
	return newHelper(api, spec, log)
}

// newHelper is New without the check of the binary's linking.
func newHelper(api DockerAPI, spec Spec, log zerolog.Logger) (*Helper, error) {
	d, err := fileDigest(spec.Binary)
	if err != nil {
		return nil, err
	}
	return &Helper{api: api, spec: spec, log: log.With().Str("helper", spec.Name).Logger(), digest: d}, nil
}

// Name is the container's name.
func (h *Helper) Name() string { return h.spec.Name }

// ImageRef is the image the helper runs: ImageRepository:<digest prefix>.
func (h *Helper) ImageRef() string { return ImageRepository + ":" + h.digest[:16] }

// CheckStatic says whether the file at path can run alone in an empty
// image: an ELF executable without an interpreter (a Go binary built with
// CGO_ENABLED=0, as `make build` does). A dynamic one is ErrDynamicBinary.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read helper binary %s: %w", path, err)
	}
	defer func() { _ = f.Close() }() // only read
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("helper binary %s: %w: build it with CGO_ENABLED=0 (make build does)", path, ErrDynamicBinary)
		}
	}
	return nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read helper binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read helper binary %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w: %w", what, ErrDocker, err)
}

// EnsureImage makes the helper's image unless it exists: a tar holding the
// binary, imported with its entry point. Importing twice is harmless (the
// same tag points at an image of the same file).
func (h *Helper) EnsureImage(ctx context.Context) error {
	ref := h.ImageRef()
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	_, err := h.api.ImageInspect(ictx, ref)
	cancel()
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return classify(err, "inspect image "+ref)
	}
	start := time.Now()
	bin, err := os.ReadFile(h.spec.Binary)
	if err != nil {
		return fmt.Errorf("read helper binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: strings.TrimPrefix(binaryPath, "/"), Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("make helper image: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return fmt.Errorf("make helper image: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("make helper image: %w", err)
	}
	entry, _ := json.Marshal([]string{binaryPath})
	ictx, cancel = context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	rc, err := h.api.ImageImport(ictx, image.ImportSource{Source: &buf, SourceName: "-"}, ref, image.ImportOptions{
		Changes: []string{"ENTRYPOINT " + string(entry), "LABEL " + LabelHelper + "=" + h.spec.Kind},
		Message: "mesolite helper, imported from " + h.spec.Binary,
	})
	if err != nil {
		return classify(err, "import image "+ref)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return classify(err, "import image "+ref)
		}
		if m.Error != "" {
			return classify(errors.New(m.Error), "import image "+ref)
		}
	}
	h.log.Info().Str("image", ref).Dur("took", time.Since(start)).Msg("helper image imported")
	return nil
}

// State is what Ensure found and did.
type State struct {
	ID      string
	Created bool // a new container was made (none, or an old one replaced)
	Started bool // an existing one was started again
}

// Ensure makes sure the helper container runs the current binary: a
// running container of this spec is adopted as it is; a stopped one is
// started; one of another binary, or one that cannot start, is replaced;
// a missing one is created. A container of the same name that is no
// helper of this owner and kind is left alone and reported.
func (h *Helper) Ensure(ctx context.Context) (State, error) {
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	c, err := h.api.ContainerInspect(ictx, h.spec.Name)
	cancel()
	switch {
	case err == nil:
		labels := map[string]string{}
		if c.Config != nil {
			labels = c.Config.Labels
		}
		if labels[LabelHelper] != h.spec.Kind || labels[LabelOwner] != h.spec.Owner {
			return State{}, fmt.Errorf("helper container %s: the name is taken by a container that is not this agent's %s helper (labels %s=%q, %s=%q): remove it or change the name", h.spec.Name, h.spec.Kind, LabelHelper, labels[LabelHelper], LabelOwner, labels[LabelOwner])
		}
		if labels[LabelBinary] == h.digest {
			if c.State != nil && c.State.Running {
				return State{ID: c.ID}, nil
			}
			sctx, cancel := context.WithTimeout(ctx, callTimeout)
			err := h.api.ContainerStart(sctx, c.ID, container.StartOptions{})
			cancel()
			if err == nil {
				h.log.Info().Str("container_id", short(c.ID)).Msg("helper container started again")
				return State{ID: c.ID, Started: true}, nil
			}
			h.log.Warn().Err(err).Str("container_id", short(c.ID)).Msg("helper container does not start; replacing it")
		} else {
			h.log.Info().Str("container_id", short(c.ID)).Msg("helper container runs another binary; replacing it")
		}
		if err := h.remove(ctx, c.ID); err != nil {
			return State{}, err
		}
		if c.Config != nil {
			h.removeOldImage(ctx, c.Config.Image)
		}
	case !cerrdefs.IsNotFound(err):
		return State{}, classify(err, "inspect helper container "+h.spec.Name)
	}
	id, err := h.create(ctx)
	if err != nil {
		return State{}, err
	}
	return State{ID: id, Created: true}, nil
}

func (h *Helper) create(ctx context.Context) (string, error) {
	if err := h.EnsureImage(ctx); err != nil {
		return "", err
	}
	cfg := &container.Config{
		Image: h.ImageRef(),
		Cmd:   h.spec.Cmd,
		Env:   h.spec.Env,
		Labels: map[string]string{
			LabelHelper: h.spec.Kind,
			LabelOwner:  h.spec.Owner,
			LabelBinary: h.digest,
		},
	}
	var bindings nat.PortMap
	for _, p := range h.spec.Publish {
		port := nat.Port(strconv.Itoa(p) + "/tcp")
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts, bindings = nat.PortSet{}, nat.PortMap{}
		}
		cfg.ExposedPorts[port] = struct{}{}
		bindings[port] = []nat.PortBinding{{HostIP: h.spec.PublishIP}}
	}
	hc := &container.HostConfig{
		PortBindings:  bindings,
		NetworkMode:   container.NetworkMode(h.spec.NetworkMode),
		CapDrop:       []string{"ALL"},
		CapAdd:        h.spec.CapAdd,
		Binds:         h.spec.Binds,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		LogConfig:     container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "2"}},
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	r, err := h.api.ContainerCreate(cctx, cfg, hc, nil, nil, h.spec.Name)
	cancel()
	if err != nil {
		return "", classify(err, "create helper container "+h.spec.Name)
	}
	sctx, cancel := context.WithTimeout(ctx, callTimeout)
	err = h.api.ContainerStart(sctx, r.ID, container.StartOptions{})
	cancel()
	if err != nil {
		// Not left behind half-made: the next Ensure creates it again.
		_ = h.remove(context.WithoutCancel(ctx), r.ID)
		return "", classify(err, "start helper container "+h.spec.Name)
	}
	h.log.Info().Str("container_id", short(r.ID)).Str("image", h.ImageRef()).Msg("helper container created")
	return r.ID, nil
}

func (h *Helper) remove(ctx context.Context, id string) error {
	rctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := h.api.ContainerRemove(rctx, id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return classify(err, "remove helper container "+h.spec.Name)
	}
	return nil
}

// removeOldImage removes the image of a helper replaced by one of another
// binary (an upgraded mesolite), so images do not pile up one per version.
// An image another container still uses (another helper not yet replaced)
// is kept; it goes when that one is replaced. A failure is only logged:
// the image costs disk, not correctness.
func (h *Helper) removeOldImage(ctx context.Context, ref string) {
	if ref == h.ImageRef() || !strings.HasPrefix(ref, ImageRepository+":") {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := h.api.ImageRemove(rctx, ref, image.RemoveOptions{})
	switch {
	case err == nil:
		h.log.Info().Str("image", ref).Msg("old helper image removed")
	case cerrdefs.IsNotFound(err), cerrdefs.IsConflict(err):
	default:
		h.log.Warn().Err(err).Str("image", ref).Msg("old helper image not removed")
	}
}

// Running reports whether the helper container runs (and is this
// owner's). Errors other than "not found" are returned.
func (h *Helper) Running(ctx context.Context) (bool, error) {
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	c, err := h.api.ContainerInspect(ictx, h.spec.Name)
	cancel()
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, classify(err, "inspect helper container "+h.spec.Name)
	}
	return c.State != nil && c.State.Running && c.Config != nil && c.Config.Labels[LabelOwner] == h.spec.Owner, nil
}

// Remove removes the helper container and its image (explicit clean-up
// only). Missing ones are not an error; an image another container still
// uses is kept.
func (h *Helper) Remove(ctx context.Context) error {
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	c, err := h.api.ContainerInspect(ictx, h.spec.Name)
	cancel()
	if err == nil && c.Config != nil && c.Config.Labels[LabelOwner] == h.spec.Owner {
		if err := h.remove(ctx, c.ID); err != nil {
			return err
		}
	} else if err != nil && !cerrdefs.IsNotFound(err) {
		return classify(err, "inspect helper container "+h.spec.Name)
	}
	rctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := h.api.ImageRemove(rctx, h.ImageRef(), image.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return classify(err, "remove helper image "+h.ImageRef())
	}
	return nil
}

// ExitError is a command in the helper that ran and exited non-zero.
type ExitError struct {
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("exit status %d: %s", e.Code, strings.TrimSpace(e.Stderr))
}

// maxOutput bounds what Exec keeps of a command's stdout and stderr.
const maxOutput = 4 << 20

// Exec runs the binary with args in the helper container, with stdin as
// its input, and returns its stdout. A non-zero exit is an *ExitError with
// the command's stderr. ctx bounds the whole run.
func (h *Helper) Exec(ctx context.Context, args []string, stdin []byte) ([]byte, error) {
	cmd := append([]string{binaryPath}, args...)
	r, err := h.api.ContainerExecCreate(ctx, h.spec.Name, container.ExecOptions{Cmd: cmd, AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return nil, classify(err, "exec in helper "+h.spec.Name)
	}
	hj, err := h.api.ContainerExecAttach(ctx, r.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, classify(err, "attach exec in helper "+h.spec.Name)
	}
	defer hj.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			hj.Close()
		case <-done:
		}
	}()
	if stdin != nil {
		if _, err := hj.Conn.Write(stdin); err != nil {
			return nil, fmt.Errorf("exec in helper %s: write input: %w", h.spec.Name, err)
		}
		if err := hj.CloseWrite(); err != nil {
			return nil, fmt.Errorf("exec in helper %s: close input: %w", h.spec.Name, err)
		}
	}
	var stdout, stderr limited
	stdout.max, stderr.max = maxOutput, 64<<10
	if _, err := stdcopy.StdCopy(&stdout, &stderr, hj.Reader); err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("exec in helper %s: read output: %w", h.spec.Name, err)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("exec in helper %s: %w", h.spec.Name, ctx.Err())
	}
	for i := 0; ; i++ {
		in, err := h.api.ContainerExecInspect(ctx, r.ID)
		if err != nil {
			return nil, classify(err, "inspect exec in helper "+h.spec.Name)
		}
		if !in.Running {
			if in.ExitCode != 0 {
				return stdout.Bytes(), &ExitError{Code: in.ExitCode, Stderr: stderr.String()}
			}
			return stdout.Bytes(), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("exec in helper %s: %w", h.spec.Name, ctx.Err())
		case <-time.After(time.Duration(min(i+1, 20)) * 5 * time.Millisecond):
		}
	}
}

// limited keeps the first max bytes written to it.
type limited struct {
	bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
