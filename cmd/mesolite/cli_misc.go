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
)

// events prints the SSE stream of /v2/events as "TYPE JSON" lines until
// ctx ends (exit 0) or the agent closes the stream (an error).
func events(ctx context.Context, c *cli, inv *invocation) error {
	var q url.Values
	if types := inv.values["type"]; len(types) > 0 {
		q = url.Values{"event_type": types}
	}
	req, err := c.api.newRequest(ctx, http.MethodGet, "/v2/events", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.api.stream.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.api.transportError(ctx, req.Method, req.URL.String(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return c.api.responseError(req, resp, b)
	}
	rd := bufio.NewReader(resp.Body)
	var (
		typ  string
		data []string
	)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the agent closed the event stream (it stopped, or this client read too slowly)")
			}
			return c.api.transportError(ctx, req.Method, req.URL.String(), err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if len(data) > 0 {
				if typ == "" {
					typ = "message"
				}
				if _, err := fmt.Fprintf(c.stdout, "%s %s\n", typ, oneLine(strings.Join(data, "\n"))); err != nil {
					return err
				}
			}
			typ, data = "", nil
		case strings.HasPrefix(line, ":"): // keep-alive comment
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				typ = value
			case "data":
				data = append(data, value)
			}
		}
	}
}

// oneLine keeps an event on one line: JSON is compacted, anything else
// has its line breaks replaced by spaces.
func oneLine(data string) string {
	if !strings.ContainsAny(data, "\r\n") {
		return data
	}
	var b bytes.Buffer
	if json.Compact(&b, []byte(data)) == nil {
		return b.String()
	}
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(data)
}

// volumeInfo is one entry of GET /mesolite/v1/volumes.
type volumeInfo struct {
	PersistenceID string  `json:"persistenceId"`
	AppID         string  `json:"appId"`
	InstanceID    string  `json:"instanceId"`
	Goal          string  `json:"goal"`
	SizeMiB       float64 `json:"sizeMiB"`
	UsedBytes     int64   `json:"usedBytes"`
	Exists        bool    `json:"exists"`
	Orphan        bool    `json:"orphan"`
	Released      bool    `json:"released"`
}

func volumeList(ctx context.Context, c *cli, inv *invocation) error {
	var body struct {
		Volumes []json.RawMessage `json:"volumes"`
	}
	if err := c.api.getJSON(ctx, "/mesolite/v1/volumes", nil, &body); err != nil {
		return err
	}
	var (
		raws []json.RawMessage
		rows [][]string
	)
	for _, raw := range body.Volumes {
		var v volumeInfo
		if err := decodeAnswer(raw, "/mesolite/v1/volumes", &v); err != nil {
			return err
		}
		if inv.flag("orphans") && !v.Orphan {
			continue
		}
		raws = append(raws, raw)
		rows = append(rows, volumeRow(&v))
	}
	if inv.flag("json") {
		if raws == nil {
			raws = []json.RawMessage{}
		}
		return writeJSONValue(c.stdout, raws)
	}
	writeTable(c.stdout, volumeColumns, rows)
	return nil
}

var volumeColumns = []column{
	{"PERSISTENCE-ID", alignLeft}, {"APP", alignLeft}, {"INSTANCE", alignLeft},
	{"GOAL", alignLeft}, {"USED", alignLeft}, {"SIZE", alignLeft},
}

func volumeRow(v *volumeInfo) []string {
	app, inst, goal, size := v.AppID, v.InstanceID, v.Goal, ftoa(v.SizeMiB)+" MiB"
	if v.Orphan {
		// An orphan's app is what its owner record names, if it has one.
		inst, goal, size = "---", "(orphan)", "---"
		if v.Released {
			goal = "(released)"
		}
	}
	for _, s := range []*string{&app, &inst, &goal} {
		if *s == "" {
			*s = "---"
		}
	}
	used := humanBytes(v.UsedBytes)
	if v.UsedBytes < 0 {
		used = "(not measured yet)"
	}
	if !v.Exists {
		used = "(missing)"
	}
	return []string{v.PersistenceID, app, inst, goal, used, size}
}

// humanBytes writes a byte count with a binary unit: 512 B, 1.5 KiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= 1024
		if f < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", f, unit)
		}
	}
	return fmt.Sprintf("%d B", n)
}

func volumeRelease(ctx context.Context, c *cli, inv *invocation) error {
	var r struct {
		Released string `json:"released"`
	}
	b, _, err := c.api.do(ctx, http.MethodPost, "/mesolite/v1/volumes/"+url.PathEscape(inv.args[0])+"/release", nil, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("read the answer of volume release: %w", err)
	}
	fmt.Fprintf(c.stdout, "Released %s (kept in %s)\n", inv.args[0], r.Released)
	return nil
}

func ping(ctx context.Context, c *cli, _ *invocation) error {
	b, _, err := c.api.do(ctx, http.MethodGet, "/ping", nil, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, strings.TrimSpace(string(b)))
	return nil
}
