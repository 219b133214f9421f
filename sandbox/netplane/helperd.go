package netplane

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// The helper container's side. Its main process is
//
//	mesolite netplane-helper serve --table T
//
// which serves DNS from the last state applied, and the agent runs, with
// docker exec, one of
//
//	mesolite netplane-helper apply  --table T   < state JSON
//	mesolite netplane-helper read   --table T   > state JSON
//	mesolite netplane-helper remove --table T
//
// apply puts the state in the kernel (one batch), then writes it to the
// container's state file and signals the main process (SIGHUP), which
// reloads its DNS records. The state file lies in the container's own
// writable layer: it survives a restart of the container (DNS answers at
// once), and goes with the container.

// DefaultHelperStateFile is where the helper keeps the last state applied.
const DefaultHelperStateFile = "/netplane-state.json"

// HelperCommand is the subcommand of mesolite that runs the helper.
const HelperCommand = "netplane-helper"

// RunHelper runs one helper command (serve, apply, read, remove) with its
// flags. cmd/mesolite calls it for `mesolite netplane-helper …`.
func RunHelper(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer, log zerolog.Logger) error {
	if len(args) == 0 {
		return errors.New("netplane-helper: a command is needed: serve, apply, read or remove")
	}
	fs := flag.NewFlagSet(HelperCommand+" "+args[0], flag.ContinueOnError)
	table := fs.String("table", "mesolite", "the nftables table")
	stateFile := fs.String("state", DefaultHelperStateFile, "where the last state applied is kept")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	k := NewKernel(*table)
	switch args[0] {
	case "serve":
		return serveHelper(ctx, *stateFile, log)
	case "apply":
		var s State
		if err := json.NewDecoder(io.LimitReader(stdin, 64<<20)).Decode(&s); err != nil {
			return fmt.Errorf("netplane-helper apply: read state: %w", err)
		}
		if err := k.Apply(s); err != nil {
			return err
		}
		if err := writeFileAtomic(*stateFile, s); err != nil {
			return err
		}
		notifyServer()
		return nil
	case "read":
		s, err := k.Read()
		if err != nil && !errors.Is(err, ErrNoTable) {
			return err
		}
		out := HelperReadout{State: s, Table: err == nil}
		if saved, err := readStateFile(*stateFile); err == nil {
			out.State.DNS = saved.DNS
		}
		return json.NewEncoder(stdout).Encode(out)
	case "remove":
		if err := k.Remove(); err != nil {
			return err
		}
		if err := os.Remove(*stateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("netplane-helper remove: %w", err)
		}
		notifyServer()
		return nil
	}
	return fmt.Errorf("netplane-helper: unknown command %q: serve, apply, read or remove", args[0])
}

// HelperReadout is what `netplane-helper read` prints.
type HelperReadout struct {
	State State `json:"state"`
	Table bool  `json:"table"` // the table exists
}

// notifyServer tells the main process (pid 1 of the container) to reload.
func notifyServer() {
	if os.Getpid() != 1 {
		_ = syscall.Kill(1, syscall.SIGHUP) // outside a container, or pid 1 gone: nothing to tell
	}
}

func serveHelper(ctx context.Context, stateFile string, log zerolog.Logger) error {
	srv := NewDNSServer(log)
	defer srv.Close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var mtime time.Time
	reload := func() {
		fi, err := os.Stat(stateFile)
		if err != nil {
			if mtime.IsZero() {
				return
			}
			mtime = time.Time{}
			if err := srv.Update(nil); err != nil {
				log.Error().Err(err).Msg("dns stopped")
			}
			return
		}
		if fi.ModTime().Equal(mtime) {
			return
		}
		s, err := readStateFile(stateFile)
		if err != nil {
			log.Error().Err(err).Msg("read state")
			return
		}
		mtime = fi.ModTime()
		if err := srv.Update(s.DNS); err != nil {
			log.Error().Err(err).Msg("dns update")
			mtime = time.Time{} // try again
			return
		}
		log.Info().Int("vips", len(s.VIPs)).Msg("state loaded")
	}
	reload()
	// The signal says at once; the tick is the safety net for a signal
	// sent before this process listened.
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			reload()
		case <-tick.C:
			reload()
		}
	}
}

func readStateFile(path string) (State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// writeFileAtomic writes v as JSON to path: temporary file, fsync,
// rename, fsync of the directory.
func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // after the rename there is nothing to remove
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: the rename itself is done
		d.Close()
	}
	return nil
}
