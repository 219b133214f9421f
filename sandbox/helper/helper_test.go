package helper

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rs/zerolog"
)

// fakeDocker keeps containers and images in maps and counts calls.
type fakeDocker struct {
	images     map[string]bool
	containers map[string]*container.InspectResponse
	imports    int
	creates    int
	starts     int
	removes    int
	startErr   error
}

func newFake() *fakeDocker {
	return &fakeDocker{images: map[string]bool{}, containers: map[string]*container.InspectResponse{}}
}

func (f *fakeDocker) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	if f.images[ref] {
		return image.InspectResponse{ID: ref}, nil
	}
	return image.InspectResponse{}, cerrdefs.ErrNotFound
}

func (f *fakeDocker) ImageImport(_ context.Context, src image.ImportSource, ref string, o image.ImportOptions) (io.ReadCloser, error) {
	b, _ := io.ReadAll(src.Source)
	if len(b) == 0 || !strings.Contains(strings.Join(o.Changes, " "), `ENTRYPOINT ["/mesolite"]`) {
		return nil, errors.New("bad import")
	}
	f.imports++
	f.images[ref] = true
	return io.NopCloser(strings.NewReader(`{"status":"sha256:abc"}`)), nil
}

func (f *fakeDocker) ImageRemove(_ context.Context, ref string, _ image.RemoveOptions) ([]image.DeleteResponse, error) {
	if !f.images[ref] {
		return nil, cerrdefs.ErrNotFound
	}
	for _, c := range f.containers {
		if c.Config.Image == ref {
			return nil, cerrdefs.ErrConflict // in use, as Docker answers without force
		}
	}
	delete(f.images, ref)
	return nil, nil
}

func (f *fakeDocker) ContainerCreate(_ context.Context, cfg *container.Config, hc *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	if _, ok := f.containers[name]; ok {
		return container.CreateResponse{}, cerrdefs.ErrConflict
	}
	if !f.images[cfg.Image] {
		return container.CreateResponse{}, cerrdefs.ErrNotFound
	}
	f.creates++
	id := strings.Repeat(string(rune('a'+f.creates)), 64)
	f.containers[name] = &container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/" + name, State: &container.State{}, HostConfig: hc},
		Config:            cfg,
	}
	return container.CreateResponse{ID: id}, nil
}

func (f *fakeDocker) find(idOrName string) (string, *container.InspectResponse) {
	for name, c := range f.containers {
		if name == idOrName || c.ID == idOrName {
			return name, c
		}
	}
	return "", nil
}

func (f *fakeDocker) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	_, c := f.find(id)
	if c == nil {
		return cerrdefs.ErrNotFound
	}
	if f.startErr != nil {
		return f.startErr
	}
	f.starts++
	c.State.Running = true
	return nil
}

func (f *fakeDocker) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	name, c := f.find(id)
	if c == nil {
		return cerrdefs.ErrNotFound
	}
	f.removes++
	delete(f.containers, name)
	return nil
}

func (f *fakeDocker) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	_, c := f.find(id)
	if c == nil {
		return container.InspectResponse{}, cerrdefs.ErrNotFound
	}
	return *c, nil
}

func (f *fakeDocker) ContainerExecCreate(context.Context, string, container.ExecOptions) (container.ExecCreateResponse, error) {
	return container.ExecCreateResponse{}, errors.New("no exec in the fake")
}

func (f *fakeDocker) ContainerExecAttach(context.Context, string, container.ExecAttachOptions) (types.HijackedResponse, error) {
	return types.HijackedResponse{}, errors.New("no exec in the fake")
}

func (f *fakeDocker) ContainerExecInspect(context.Context, string) (container.ExecInspect, error) {
	return container.ExecInspect{}, errors.New("no exec in the fake")
}

// testBinary is a file to make the image of; the fake imports anything.
func testBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mesolite")
	if err := os.WriteFile(p, []byte("not really a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func spec(bin string) Spec {
	return Spec{Kind: "netplane", Name: "mesolite-netplane-x", Owner: "agent-1", Binary: bin, Cmd: []string{"netplane-helper", "serve"}, NetworkMode: "host", CapAdd: []string{"NET_ADMIN"}}
}

func TestEnsureCreatesAdoptsAndReplaces(t *testing.T) {
	f := newFake()
	h, err := newHelper(f, spec(testBinary(t)), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	st, err := h.Ensure(ctx)
	if err != nil || !st.Created || f.imports != 1 || f.creates != 1 {
		t.Fatalf("first Ensure: %+v, %v (imports %d, creates %d)", st, err, f.imports, f.creates)
	}
	c := f.containers["mesolite-netplane-x"]
	if c.Config.Labels[LabelHelper] != "netplane" || c.Config.Labels[LabelOwner] != "agent-1" || c.Config.Labels[LabelBinary] == "" {
		t.Errorf("labels %v", c.Config.Labels)
	}
	if _, ok := c.Config.Labels["mesolite.agent_id"]; ok {
		t.Error("the helper carries a task label: it would be taken for an orphan task")
	}
	if c.HostConfig.NetworkMode != "host" || c.HostConfig.CapDrop[0] != "ALL" || c.HostConfig.CapAdd[0] != "NET_ADMIN" || c.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("host config %+v", c.HostConfig)
	}

	// Running: adopted as it is.
	st, err = h.Ensure(ctx)
	if err != nil || st.Created || st.Started || f.creates != 1 || f.imports != 1 {
		t.Fatalf("adopt: %+v, %v", st, err)
	}
	// Stopped: started again, not recreated.
	c.State.Running = false
	st, err = h.Ensure(ctx)
	if err != nil || !st.Started || f.creates != 1 {
		t.Fatalf("restart: %+v, %v", st, err)
	}
	// Another binary (an older mesolite's): replaced, and its image goes
	// unless another container still uses it.
	const oldRef = ImageRepository + ":0123456789abcdef"
	f.images[oldRef] = true
	c.Config.Labels[LabelBinary] = "old"
	c.Config.Image = oldRef
	f.containers["other-helper"] = &container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: strings.Repeat("z", 64), State: &container.State{}},
		Config:            &container.Config{Image: oldRef},
	}
	st, err = h.Ensure(ctx)
	if err != nil || !st.Created || f.creates != 2 || f.removes != 1 {
		t.Fatalf("replace: %+v, %v (creates %d removes %d)", st, err, f.creates, f.removes)
	}
	if !f.images[oldRef] {
		t.Fatal("an old image another container uses was removed")
	}
	delete(f.containers, "other-helper")
	c = f.containers["mesolite-netplane-x"]
	c.Config.Labels[LabelBinary] = "old"
	c.Config.Image = oldRef
	if st, err = h.Ensure(ctx); err != nil || !st.Created || f.creates != 3 {
		t.Fatalf("replace again: %+v, %v", st, err)
	}
	if f.images[oldRef] {
		t.Fatal("the replaced helper's old image was left behind")
	}
	if !f.images[h.ImageRef()] {
		t.Fatal("the current image was removed")
	}
	// Gone: recreated.
	delete(f.containers, "mesolite-netplane-x")
	if st, err = h.Ensure(ctx); err != nil || !st.Created || f.creates != 4 {
		t.Fatalf("recreate: %+v, %v", st, err)
	}
	// Stopped and cannot start: replaced.
	f.containers["mesolite-netplane-x"].State.Running = false
	f.startErr = errors.New("boom")
	if _, err = h.Ensure(ctx); err == nil {
		t.Fatal("a helper that cannot start: no error")
	}
	f.startErr = nil
	if _, ok := f.containers["mesolite-netplane-x"]; ok {
		t.Fatal("a container that could not start was left behind")
	}

	// Remove: container and image.
	if _, err := h.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.containers) != 0 || len(f.images) != 0 {
		t.Fatalf("left after Remove: %v %v", f.containers, f.images)
	}
	if err := h.Remove(ctx); err != nil {
		t.Fatalf("Remove twice: %v", err)
	}
}

func TestEnsureLeavesForeignContainers(t *testing.T) {
	f := newFake()
	h, err := newHelper(f, spec(testBinary(t)), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	f.images["x"] = true
	f.containers["mesolite-netplane-x"] = &container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: strings.Repeat("f", 64), State: &container.State{Running: true}},
		Config:            &container.Config{Image: "x", Labels: map[string]string{LabelHelper: "netplane", LabelOwner: "someone-else"}},
	}
	if _, err := h.Ensure(context.Background()); err == nil || !strings.Contains(err.Error(), "not this agent's netplane helper") {
		t.Fatalf("Ensure over a foreign container: %v", err)
	}
	if f.removes != 0 {
		t.Fatal("a foreign container was removed")
	}
	if err := h.Remove(context.Background()); err != nil || len(f.containers) != 1 {
		t.Fatalf("Remove touched a foreign container: %v", err)
	}
}

func TestCheckStatic(t *testing.T) {
	for _, p := range []string{"/bin/sh", "/usr/bin/env"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := CheckStatic(p); !errors.Is(err, ErrDynamicBinary) {
			t.Errorf("CheckStatic(%s) = %v, want ErrDynamicBinary", p, err)
		}
	}
	if err := CheckStatic("/etc/hostname"); err == nil {
		t.Error("CheckStatic of a text file: no error")
	}
	if _, err := New(newFake(), spec("/bin/sh"), zerolog.Nop()); !errors.Is(err, ErrDynamicBinary) {
		t.Errorf("New with a dynamic binary: %v", err)
	}
}
