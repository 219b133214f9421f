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

	"github.com/docker/docker/api/types"
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

// A task's output reaches its sandbox exactly once, in order, with the
// last lines before it dies: Run attaches to the container's stdout and
// stderr between creating and starting it, and a copier writes what comes
// to the sandbox's rotated files (sandbox.LogWriter). Docker hands an
// attached client every byte the process writes and makes the process
// wait when the client is behind (its attach pipes block at 1 MB), and
// the stream ends only after the last byte, when the process has exited.
// Following Docker's log instead (docker logs --follow) lost and repeated
// lines under a flood: the follower fell behind, Docker rotated its own
// log file away under it and re-read across rotations, and the follow
// ended when the container stopped, before the follower had caught up.
//
// A container the agent did not start in this run (adopted after a
// restart) has no attached copier: CopyLogs follows Docker's log from the
// time of the last line copied (logPosFile), so what the task wrote while
// the agent was down is kept, as far as Docker's own log kept it; the
// lines of the second around the agent's stop may repeat.

// copier copies one container's attached output into its sandbox.
type copier struct {
	done chan struct{}
	err  error
	hj   types.HijackedResponse
}

// attachOutput attaches to a created container's output and starts its
// copier. It returns nil when the attach fails (logged); CopyLogs then
// follows the container's log instead.
func (d *Runtime) attachOutput(ctx context.Context, id, name, sandboxDir string) *copier {
	actx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	hj, err := d.api.ContainerAttach(actx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		d.log.Warn().Err(err).Str("container_id", shortID(id)).Msg("attach to the container's output; following its log instead")
		return nil
	}
	sink, err := d.openSink(sandboxDir)
	if err != nil {
		hj.Close()
		d.log.Warn().Err(err).Str("container_id", shortID(id)).Msg("open the sandbox's output files; following the log instead")
		return nil
	}
	c := &copier{done: make(chan struct{}), hj: hj}
	d.copiersMu.Lock()
	d.copiers[id], d.copiers[name] = c, c
	d.copiersMu.Unlock()
	go func() {
		defer close(c.done)
		err := demux(hj.Reader, nil, nil, sink.frame(false))
		hj.Close()
		if err == nil {
			sink.complete = true // the process exited and its last byte is written
		} else {
			err = fmt.Errorf("copy the output of %s: %w", shortID(id), err)
		}
		if cerr := sink.close(); err == nil {
			err = cerr
		}
		c.err = err
		d.copiersMu.Lock()
		delete(d.copiers, id)
		delete(d.copiers, name)
		d.copiersMu.Unlock()
	}()
	return c
}

// abort ends a copier whose container will not run.
func (c *copier) abort() {
	c.hj.Close()
	<-c.done
}

// CopyLogs brings the container's stdout and stderr into the files of its
// sandbox until the container stops or ctx ends: it waits for the copier
// Run attached, or, for a container no copier is attached to, follows the
// container's log from where a previous copy ended (also when the
// attached stream broke early). A copy that saw the container's end is
// not repeated.
func (d *Runtime) CopyLogs(ctx context.Context, id, sandboxDir string) error {
	d.copiersMu.Lock()
	c := d.copiers[id]
	d.copiersMu.Unlock()
	if c != nil {
		select {
		case <-c.done:
			if c.err == nil {
				return nil
			}
			// The stream broke before the container's end (the daemon
			// restarted): follow the log from the last line copied.
			d.log.Warn().Err(c.err).Str("container_id", shortID(id)).Msg("output stream broke; following the log")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := d.ready(ctx); err != nil {
		return err
	}
	posPath := filepath.Join(sandboxDir, logPosFile)
	var last time.Time
	if b, err := os.ReadFile(posPath); err == nil {
		pos := strings.TrimSpace(string(b))
		if pos == posComplete {
			return nil
		}
		last, _ = time.Parse(time.RFC3339Nano, pos)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read log position: %w", err)
	}
	sink, err := d.openSink(sandboxDir)
	if err != nil {
		return err
	}
	sink.last, sink.saved = last, last
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true}
	if !last.IsZero() {
		next := last.Add(time.Nanosecond)
		opts.Since = fmt.Sprintf("%d.%09d", next.Unix(), next.Nanosecond())
	}
	rc, err := d.api.ContainerLogs(ctx, id, opts)
	if err != nil {
		_ = sink.close() // the error that matters is Docker's
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
	err = demux(rc, nil, nil, sink.frame(true))
	cerr := sink.close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return classify(err, "follow logs of "+id)
	}
	return cerr
}

// posComplete in logPosFile: the copy saw the container's end.
const posComplete = "complete"

// sink writes a container's two streams into a sandbox and remembers the
// time of the last line written (Docker's timestamp when following its
// log, the time it came when attached), saved at most once a second.
type sink struct {
	stdout, stderr *sandbox.LogWriter
	posPath        string
	last, saved    time.Time
	savedAt        time.Time
	complete       bool
}

func (d *Runtime) openSink(sandboxDir string) (*sink, error) {
	out, err := sandbox.OpenLog(sandboxDir, sandbox.StdoutFile, d.logMaxSize, d.logMaxFiles)
	if err != nil {
		return nil, err
	}
	errw, err := sandbox.OpenLog(sandboxDir, sandbox.StderrFile, d.logMaxSize, d.logMaxFiles)
	if err != nil {
		_ = out.Close() // the error that matters is the open's
		return nil, err
	}
	return &sink{stdout: out, stderr: errw, posPath: filepath.Join(sandboxDir, logPosFile)}, nil
}

// frame returns demux's frame callback. Frames of Docker's log start
// with their timestamp (timestamped), which is dropped; an attached
// stream's frames are the output as it is, stamped with the time they
// came.
func (s *sink) frame(timestamped bool) func(stream byte, p []byte) error {
	return func(stream byte, p []byte) error {
		ts := time.Now()
		if timestamped {
			ts, p = splitTimestamp(p)
		}
		w := s.stdout
		if stream == 2 {
			w = s.stderr
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
		// The newest time, not the last one: stdout and stderr lines may
		// reach the log slightly out of order, and resuming after an older
		// one would repeat the newer.
		if ts.After(s.last) {
			s.last = ts
		}
		if time.Since(s.savedAt) >= time.Second {
			s.save()
		}
		return nil
	}
}

func (s *sink) save() {
	s.savedAt = time.Now()
	pos := s.last.Format(time.RFC3339Nano)
	if s.complete {
		pos = posComplete
	} else if s.last.Equal(s.saved) {
		return
	}
	tmp := s.posPath + ".tmp"
	if err := writeNew(tmp, []byte(pos+"\n")); err == nil {
		if os.Rename(tmp, s.posPath) == nil {
			s.saved = s.last
		}
	}
}

func (s *sink) close() error {
	s.save()
	err := s.stdout.Close()
	if cerr := s.stderr.Close(); err == nil {
		err = cerr
	}
	return err
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

// shortID is the 12-character form of a container id, as Docker shows it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
