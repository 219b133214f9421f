package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/fetch"
	"github.com/mesolite/mesolite/sandbox/taskinit"
)

// commandCmd is what the command app of the launch benchmark runs.
const commandCmd = "while true; do sleep 1; done"

// commandBenchmarks runs commandLaunch on an agent of its own.
func (b *bench) commandBenchmarks() error {
	p, err := b.newAgent("command-agent", 31000, 31999)
	if err != nil {
		return err
	}
	defer func() { _ = p.stop() }()
	if _, err := p.start(); err != nil {
		return err
	}
	if _, err := p.waitReady(b.ctx, 60*time.Second); err != nil {
		return err
	}
	es, err := p.api.subscribe(b.ctx, "status_update_event", "app_terminated_event")
	if err != nil {
		return err
	}
	defer es.Close()
	return b.commandLaunch(p, es)
}

// commandLaunch: a command app (no image) from POST until TASK_RUNNING,
// against the same command started with the Docker client as `docker run
// -d` would: the same empty image, system directories, init, sandbox
// bind, host network and limits the agent gives it.
func (b *bench) commandLaunch(p *agentProc, es *eventStream) error {
	var mes, dock []float64
	for i := 0; i <= b.p.launchReps; i++ {
		warm := i == 0
		runMesolite := func() error {
			id := fmt.Sprintf("/bench-command-%d", i)
			t0 := time.Now()
			app := map[string]any{"id": id, "cmd": commandCmd, "cpus": 0.1, "mem": 32, "instances": 1}
			if err := p.api.do(b.ctx, "POST", "/v2/apps", app, nil); err != nil {
				return err
			}
			ev, err := es.waitFor(b.ctx, 60*time.Second, id+" running", statusIs(id, "TASK_RUNNING"))
			if err != nil {
				return err
			}
			if !warm {
				mes = append(mes, ms(ev.At.Sub(t0)))
			}
			return b.removeApp(p, es, id)
		}
		runDocker := func() error {
			t0 := time.Now()
			cid, err := b.base.runCommand(b.ctx, b.bin, fmt.Sprintf("command-%d", i))
			d := time.Since(t0)
			if cid != "" {
				defer func() { _ = b.base.remove(context.WithoutCancel(b.ctx), cid) }()
			}
			if err != nil {
				return err
			}
			if !warm {
				dock = append(dock, ms(d))
			}
			return nil
		}
		if err := alternate(i, runMesolite, runDocker); err != nil {
			return err
		}
	}
	b.ratioFigures("command apps", "command.launch", mes, dock, 1.10,
		"mesolite: command app (no image), POST until TASK_RUNNING", "docker: the same container, create + start (`docker run -d`)")
	return nil
}

// runCommand creates and starts the container a command task gets, with
// the Docker client, and returns when it runs.
func (b *baseline) runCommand(ctx context.Context, bin, name string) (string, error) {
	if err := b.ensureHostRoot(ctx); err != nil {
		return "", err
	}
	sandboxDir := filepath.Join(b.dir, name, "sandbox")
	if err := os.MkdirAll(sandboxDir, 0o755); err != nil {
		return "", err
	}
	stop := 10
	cfg := &container.Config{
		Image:       docker.HostRootImage,
		Entrypoint:  []string{"/" + taskinit.Name, "-w", sandboxDir, "--"},
		Cmd:         []string{"/bin/sh", "-c", commandCmd},
		Env:         []string{"MESOS_SANDBOX=" + sandboxDir, "HOME=" + sandboxDir},
		Labels:      map[string]string{benchLabel: b.run},
		StopTimeout: &stop,
	}
	hc := &container.HostConfig{
		NetworkMode: "host",
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "10m", "max-file": "3"},
		},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources:     container.Resources{CPUShares: 102, Memory: 32 << 20, MemorySwap: 32 << 20},
		Tmpfs:         map[string]string{"/tmp": "rw,exec,nosuid,nodev,mode=1777"},
	}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc", "/opt"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: d, Target: d, ReadOnly: true})
		}
	}
	hc.Mounts = append(hc.Mounts,
		mount.Mount{Type: mount.TypeBind, Source: bin, Target: "/" + taskinit.Name, ReadOnly: true},
		mount.Mount{Type: mount.TypeBind, Source: sandboxDir, Target: sandboxDir})
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r, err := b.dc.ContainerCreate(cctx, cfg, hc, &network.NetworkingConfig{}, nil, "mesolite-bench-"+b.run+"-"+name)
	if err != nil {
		return "", fmt.Errorf("docker create: %w", err)
	}
	if err := b.dc.ContainerStart(cctx, r.ID, container.StartOptions{}); err != nil {
		return r.ID, fmt.Errorf("docker start: %w", err)
	}
	return r.ID, nil
}

// ensureHostRoot imports the empty image as the agent does, when missing.
func (b *baseline) ensureHostRoot(ctx context.Context) error {
	if _, err := b.dc.ImageInspect(ctx, docker.HostRootImage); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return err
	}
	rc, err := b.dc.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(make([]byte, 1024)), SourceName: "-"}, docker.HostRootImage,
		image.ImportOptions{Changes: []string{"LABEL mesolite.hostroot=1"}})
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// fetchBench: the fetcher downloading and unpacking a 50 MiB tarball from
// a local HTTP server, against curl piped to tar on the same URL; and a
// cache hit.
func (b *bench) fetchBench() error {
	if _, err := exec.LookPath("curl"); err != nil {
		return fmt.Errorf("curl is needed for the fetch baseline: %w", err)
	}
	dir := filepath.Join(b.root, "fetch")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	body, unpacked, err := benchTarball(50 << 20)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	uri := "http://" + ln.Addr().String() + "/app-1.0.tar.gz"
	f, err := fetch.New(fetch.Config{CacheDir: filepath.Join(dir, "cache"), CacheSize: fetch.DefaultCacheSize,
		MaxSize: fetch.DefaultMaxSize, Timeout: fetch.DefaultTimeout})
	if err != nil {
		return err
	}
	b.step("fetch: a %.1f MiB tarball (%.1f MiB unpacked) from %s", float64(len(body))/(1<<20), float64(unpacked)/(1<<20), uri)

	reps := b.p.launchReps
	var mes, curl []float64
	for i := 0; i <= reps; i++ {
		warm := i == 0
		runMesolite := func() error {
			d, err := b.timedFetch(f, dir, fetch.Item{URI: uri, Extract: true})
			if err == nil && !warm {
				mes = append(mes, d)
			}
			return err
		}
		runCurl := func() error {
			sb, err := os.MkdirTemp(dir, "curl-")
			if err != nil {
				return err
			}
			defer func() { _ = os.RemoveAll(sb) }()
			t0 := time.Now()
			out, err := exec.CommandContext(b.ctx, "sh", "-c", "curl -sf "+uri+" | tar xz -C "+sb).CombinedOutput()
			if err != nil {
				return fmt.Errorf("curl | tar: %v: %s", err, out)
			}
			if !warm {
				curl = append(curl, ms(time.Since(t0)))
			}
			return nil
		}
		if err := alternate(i, runMesolite, runCurl); err != nil {
			return err
		}
	}
	b.ratioFigures("fetcher", "fetch.extract", mes, curl, 1.20,
		"mesolite: fetch + extract a 50 MiB .tar.gz over HTTP (no cache)", "curl | tar xz of the same URL")
	if f := b.rep.Figures[len(b.rep.Figures)-1]; f.Key == "fetch.extract.ratio" {
		f.Name = "fetcher ratio mesolite / curl | tar"
	}

	// Cache hits: the download is in the cache; the sandbox gets a copy.
	if _, err := b.timedFetch(f, dir, fetch.Item{URI: uri, Cache: true, Extract: false}); err != nil {
		return err
	}
	var hit, hitExtract []float64
	for i := 0; i < reps; i++ {
		d, err := b.timedFetch(f, dir, fetch.Item{URI: uri, Cache: true, Extract: false})
		if err != nil {
			return err
		}
		hit = append(hit, d)
		d, err = b.timedFetch(f, dir, fetch.Item{URI: uri, Cache: true, Extract: true})
		if err != nil {
			return err
		}
		hitExtract = append(hitExtract, d)
	}
	hd := dist(hit, true)
	b.rep.add(&Figure{Key: "fetch.cache_hit", Section: "fetcher", Name: "mesolite: cache hit of the 50 MiB file, copied into the sandbox (no request)",
		Unit: "ms", Value: hd.P50, Dist: hd, Target: &Target{"<=", 50}})
	hx := dist(hitExtract, true)
	b.rep.add(&Figure{Key: "fetch.cache_hit_extract", Section: "fetcher", Name: "mesolite: cache hit of the 50 MiB tarball, unpacked into the sandbox, for reference",
		Unit: "ms", Value: hx.P50, Dist: hx})
	return nil
}

// timedFetch fetches one item into a new sandbox and returns the time it
// took, in ms; the sandbox is removed afterwards.
func (b *bench) timedFetch(f *fetch.Fetcher, dir string, it fetch.Item) (float64, error) {
	sb, err := os.MkdirTemp(dir, "sandbox-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(sb) }()
	t0 := time.Now()
	if err := f.Fetch(b.ctx, sb, []fetch.Item{it}, nil); err != nil {
		return 0, err
	}
	return ms(time.Since(t0)), nil
}

// benchTarball makes a .tar.gz of about size bytes, like an application's
// release: half incompressible files (binaries, jars), half text that
// compresses about 4:1. It returns the archive and its unpacked size.
func benchTarball(size int) ([]byte, int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	words := []string{"alpha ", "beta ", "gamma ", "delta ", "mesos ", "marathon ", "sandbox ", "fetcher ", "7 "}
	var unpacked int64
	add := func(name string, data []byte) error {
		unpacked += int64(len(data))
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for i := 0; buf.Len() < size; i++ {
		data := make([]byte, 1<<20)
		if i%2 == 0 {
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			if err := add(fmt.Sprintf("lib/part-%03d.bin", i), data); err != nil {
				return nil, 0, err
			}
		} else {
			var text bytes.Buffer
			for text.Len() < 3<<20 {
				text.WriteString(words[rng.IntN(len(words))])
			}
			if err := add(fmt.Sprintf("doc/part-%03d.txt", i), text.Bytes()); err != nil {
				return nil, 0, err
			}
		}
		if err := zw.Flush(); err != nil {
			return nil, 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), unpacked, nil
}
