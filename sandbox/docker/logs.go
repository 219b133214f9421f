package docker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/mesolite/mesolite/sandbox"
)

const (
	// logPosFile holds the Docker timestamp of the last log line copied, so
	// a copy resumed after an agent restart neither repeats nor skips lines
	// (lines copied less than a second before a crash may repeat once).
	logPosFile = ".mesolite-logpos"
)

// frameHeader is the 8-byte header Docker puts before each chunk of a
// multiplexed (non-TTY) stream: stream type, three zero bytes, size.
const frameHeader = 8

// demux reads Docker's multiplexed stream and writes stdout and stderr
// frames to the given writers (stderr frames to stdout when stderr is nil).
// frame, when set, sees every payload instead.
func demux(r io.Reader, stdout, stderr io.Writer, frame func(stream byte, payload []byte) error) error {
	var hdr [frameHeader]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		size := int(binary.BigEndian.Uint32(hdr[4:]))
		if size > 1<<24 {
			return fmt.Errorf("log frame of %d bytes: stream corrupt", size)
		}
		if size > len(buf) {
			buf = make([]byte, size)
		}
		p := buf[:size]
		if _, err := io.ReadFull(r, p); err != nil {
			return err
		}
		if frame != nil {
			if err := frame(hdr[0], p); err != nil {
				return err
			}
			continue
		}
		w := stdout
		if hdr[0] == 2 && stderr != nil {
			w = stderr
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
}

// CopyLogs appends the container's stdout and stderr to the files stdout
// and stderr of the sandbox, following the container until it stops or ctx
// ends. It resumes after the last line a previous copy wrote, so it can be
// called again after an agent restart or for a container that has already
// stopped.
func (d *Runtime) CopyLogs(ctx context.Context, id, sandboxDir string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	// O_NOFOLLOW: the task owns its sandbox and could plant a link named
	// stdout that would make the agent append to a file of its choosing.
	stdout, err := os.OpenFile(filepath.Join(sandboxDir, sandbox.StdoutFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("open stdout of %s: %w", id, err)
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(sandboxDir, sandbox.StderrFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("open stderr of %s: %w", id, err)
	}
	defer stderr.Close()

	posPath := filepath.Join(sandboxDir, logPosFile)
	var last time.Time
	if b, err := os.ReadFile(posPath); err == nil {
		last, _ = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read log position: %w", err)
	}
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true}
	if !last.IsZero() {
		next := last.Add(time.Nanosecond)
		opts.Since = fmt.Sprintf("%d.%09d", next.Unix(), next.Nanosecond())
	}
	rc, err := d.api.ContainerLogs(ctx, id, opts)
	if err != nil {
		return classify(err, "logs of "+id)
	}
	defer rc.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			rc.Close()
		case <-done:
		}
	}()

	saved := last
	var savedAt time.Time
	save := func() {
		if last.Equal(saved) {
			return
		}
		tmp := posPath + ".tmp"
		if err := writeNew(tmp, []byte(last.Format(time.RFC3339Nano)+"\n")); err == nil {
			if os.Rename(tmp, posPath) == nil {
				saved = last
			}
		}
		savedAt = time.Now()
	}
	defer save()

	err = demux(rc, nil, nil, func(stream byte, p []byte) error {
		ts, msg := splitTimestamp(p)
		w := stdout
		if stream == 2 {
			w = stderr
		}
		if _, err := w.Write(msg); err != nil {
			return fmt.Errorf("write log of %s: %w", id, err)
		}
		// The newest timestamp, not the last one: stdout and stderr lines
		// may reach the log slightly out of order, and resuming after an
		// older one would repeat the newer.
		if ts.After(last) {
			last = ts
		}
		if time.Since(savedAt) >= time.Second {
			save()
		}
		return nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return classify(err, "follow logs of "+id)
	}
	return nil
}

// splitTimestamp separates the RFC 3339 timestamp Docker puts before each
// line when asked to.
func splitTimestamp(p []byte) (time.Time, []byte) {
	i := bytes.IndexByte(p, ' ')
	if i <= 0 || i > 40 {
		return time.Time{}, p
	}
	ts, err := time.Parse(time.RFC3339Nano, string(p[:i]))
	if err != nil {
		return time.Time{}, p
	}
	return ts, p[i+1:]
}

// writeNew writes a file of the sandbox afresh: whatever had its name (a
// link the task planted, say) is removed, never written through.
func writeNew(path string, data []byte) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
