package agenttest

import (
	"context"
	"errors"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/store"
)

var _ agent.Runtime = (*Runtime)(nil)

// Agent is a real agent over the fake runtime, running in a work
// directory: what the agent's, the API's and the CLI's tests and the
// benchmarks start.
type Agent struct {
	*agent.Agent
	Runtime *Runtime
	Store   *store.Store
	Dir     string

	cancel context.CancelFunc
	done   chan error
}

// firstSyncTimeout bounds Start's wait for the agent's first sync.
const firstSyncTimeout = 30 * time.Second

// Start opens the store in dir, makes an agent with cfg over rt (a new
// fake when nil: a restart passes the one the agent before it had), runs
// it, and returns once its first sync is done. Stop ends it.
func Start(dir string, cfg agent.Config, rt *Runtime) (*Agent, error) {
	st, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	ta := &Agent{Runtime: rt, Store: st, Dir: dir}
	a, err := agent.New(cfg, st, func(l sandbox.Layout) (agent.Runtime, error) {
		if ta.Runtime == nil {
			ta.Runtime = New(l)
		}
		return ta.Runtime, nil
	})
	if err != nil {
		_ = st.Close() // the error that matters is New's
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta.Agent, ta.cancel, ta.done = a, cancel, make(chan error, 1)
	go func() { ta.done <- a.Run(ctx) }()
	deadline := time.Now().Add(firstSyncTimeout)
	for !a.Snapshot().Recovery.Done {
		if time.Now().After(deadline) {
			_ = ta.Stop() // the error that matters is the timeout
			return nil, errors.New("agenttest: the agent's first sync did not finish in 30 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return ta, nil
}

// Cancel asks the agent to stop; Done reports Run's result.
func (ta *Agent) Cancel() { ta.cancel() }

// Done is closed with Run's result once the agent has stopped.
func (ta *Agent) Done() <-chan error { return ta.done }

// Stop stops the agent, waits for it and closes its store.
func (ta *Agent) Stop() error {
	ta.cancel()
	err := <-ta.done
	if cerr := ta.Store.Close(); err == nil {
		err = cerr
	}
	return err
}
