package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// apiClient talks to one agent's Marathon API.
type apiClient struct {
	base string
	hc   *http.Client
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: base, hc: &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, Proxy: nil},
	}}
}

// do sends a request and decodes a 2xx JSON answer into out (when not nil).
func (c *apiClient) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

type taskJSON struct {
	ID          string `json:"id"`
	AppID       string `json:"appId"`
	State       string `json:"state"`
	InstanceID  string `json:"instanceId"`
	Incarnation int    `json:"incarnation"`
	Ports       []int  `json:"ports"`
	Health      []struct {
		Alive bool `json:"alive"`
	} `json:"healthCheckResults"`
}

func (c *apiClient) tasks(ctx context.Context) ([]taskJSON, error) {
	var out struct {
		Tasks []taskJSON `json:"tasks"`
	}
	err := c.do(ctx, "GET", "/v2/tasks", nil, &out)
	return out.Tasks, err
}

type statusJSON struct {
	AgentID  string `json:"agentId"`
	DockerUp bool   `json:"dockerUp"`
	Recovery struct {
		Done        bool    `json:"done"`
		Adopted     int     `json:"adopted"`
		Relaunched  int     `json:"relaunched"`
		Orphans     int     `json:"orphans"`
		TookSeconds float64 `json:"tookSeconds"`
	} `json:"recovery"`
	Tasks int `json:"tasks"`
}

func (c *apiClient) status(ctx context.Context) (statusJSON, error) {
	var s statusJSON
	err := c.do(ctx, "GET", "/mesolite/v1/status", nil, &s)
	return s, err
}

func (c *apiClient) scale(ctx context.Context, id string, n int) error {
	return c.do(ctx, "PUT", "/v2/apps"+id+"?force=true", map[string]any{"id": id, "instances": n}, nil)
}

func (c *apiClient) deleteApp(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v2/apps"+id+"?force=true", nil, nil)
}

// event is one Server-Sent Event of /v2/events, with when it was read.
type event struct {
	Type string
	Data map[string]any
	At   time.Time
}

func (e event) str(k string) string { s, _ := e.Data[k].(string); return s }

// eventStream follows /v2/events.
type eventStream struct {
	resp   *http.Response
	ch     chan event
	cancel context.CancelFunc
}

// subscribe opens /v2/events for the given event types.
func (c *apiClient) subscribe(ctx context.Context, types ...string) (*eventStream, error) {
	q := url.Values{}
	for _, t := range types {
		q.Add("event_type", t)
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v2/events?"+q.Encode(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET /v2/events: %s", resp.Status)
	}
	s := &eventStream{resp: resp, ch: make(chan event, 100000), cancel: cancel}
	go s.read()
	return s, nil
}

func (s *eventStream) read() {
	defer close(s.ch)
	r := bufio.NewReaderSize(s.resp.Body, 64<<10)
	var typ string
	var data []byte
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if typ != "" {
				ev := event{Type: typ, At: time.Now()}
				_ = json.Unmarshal(data, &ev.Data)
				s.ch <- ev
			}
			typ, data = "", nil
		case bytes.HasPrefix(line, []byte("event: ")):
			typ = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[len("data: "):]...)
		}
	}
}

func (s *eventStream) Close() {
	s.cancel()
	s.resp.Body.Close()
}

var errStreamClosed = errors.New("event stream closed")

// waitFor reads events until match holds for one, and returns it.
func (s *eventStream) waitFor(ctx context.Context, timeout time.Duration, what string, match func(event) bool) (event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return event{}, ctx.Err()
		case <-t.C:
			return event{}, fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case ev, ok := <-s.ch:
			if !ok {
				return event{}, fmt.Errorf("waiting for %s: %w", what, errStreamClosed)
			}
			if match(ev) {
				return ev, nil
			}
		}
	}
}

// statusIs matches a status_update_event of app with the given state.
func statusIs(appID, state string) func(event) bool {
	return func(ev event) bool {
		return ev.Type == "status_update_event" && ev.str("appId") == appID && ev.str("taskStatus") == state
	}
}
