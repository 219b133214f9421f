package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// taskInfo is what the task commands read of a task; raw is the task as
// the API wrote it.
type taskInfo struct {
	AppID              string `json:"appId"`
	ID                 string `json:"id"`
	Host               string `json:"host"`
	StartedAt          string `json:"startedAt"`
	HealthCheckResults []struct {
		Alive bool `json:"alive"`
	} `json:"healthCheckResults"`
	raw json.RawMessage
}

// decodeTasks reads {"tasks":[...]} keeping each task's JSON.
func decodeTasks(b []byte, path string) ([]*taskInfo, error) {
	var body struct {
		Tasks []json.RawMessage `json:"tasks"`
	}
	if err := decodeAnswer(b, path, &body); err != nil {
		return nil, err
	}
	out := make([]*taskInfo, 0, len(body.Tasks))
	for _, raw := range body.Tasks {
		t := &taskInfo{raw: raw}
		if err := decodeAnswer(raw, path, t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (c *cli) tasks(ctx context.Context) ([]*taskInfo, error) {
	// embed=mesolite adds mesolite's task fields (message, instance,
	// volume use) that Marathon clients would not expect.
	b, _, err := c.api.do(ctx, http.MethodGet, "/v2/tasks", url.Values{"embed": {"mesolite"}}, nil)
	if err != nil {
		return nil, err
	}
	return decodeTasks(b, "/v2/tasks")
}

func taskList(ctx context.Context, c *cli, inv *invocation) error {
	tasks, err := c.tasks(ctx)
	if err != nil {
		return err
	}
	if len(inv.args) == 1 {
		id, err := normalizeAppID(inv.args[0])
		if err != nil {
			return usagef(inv.cmd, "%v", err)
		}
		kept := tasks[:0]
		for _, t := range tasks {
			if t.AppID == id {
				kept = append(kept, t)
			}
		}
		tasks = kept
	}
	sort.SliceStable(tasks, func(i, j int) bool {
		if tasks[i].AppID != tasks[j].AppID {
			return tasks[i].AppID < tasks[j].AppID
		}
		return tasks[i].ID < tasks[j].ID
	})
	switch {
	case inv.flag("json"):
		raws := make([]json.RawMessage, len(tasks))
		for i, t := range tasks {
			raws[i] = t.raw
		}
		return writeJSONValue(c.stdout, raws)
	case inv.flag("quiet"):
		for _, t := range tasks {
			fmt.Fprintln(c.stdout, t.ID)
		}
		return nil
	}
	writeTable(c.stdout, taskColumns, taskRows(tasks))
	return nil
}

var taskColumns = []column{
	{"APP", alignLeft}, {"HEALTHY", alignCenter}, {"STARTED", alignCenter}, {"HOST", alignCenter}, {"ID", alignLeft},
}

// taskRows computes the task list columns as the DC/OS CLI does: HEALTHY
// is True when every health result is alive (also when there are none),
// STARTED is startedAt or N/A.
func taskRows(tasks []*taskInfo) [][]string {
	rows := make([][]string, 0, len(tasks))
	for _, t := range tasks {
		healthy := "True"
		for _, h := range t.HealthCheckResults {
			if !h.Alive {
				healthy = "False"
			}
		}
		started := t.StartedAt
		if started == "" {
			started = "N/A"
		}
		rows = append(rows, []string{t.AppID, healthy, started, t.Host, t.ID})
	}
	return rows
}

func taskShow(ctx context.Context, c *cli, inv *invocation) error {
	tasks, err := c.tasks(ctx)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.ID == inv.args[0] {
			return writeJSON(c.stdout, t.raw)
		}
	}
	return userErrorf("Task '%s' does not exist", inv.args[0])
}

// killTasks posts to /v2/tasks/delete and returns the answer.
func (c *cli) killTasks(ctx context.Context, ids []string, scale, wipe bool) ([]byte, http.Header, error) {
	q := url.Values{}
	if scale {
		q.Set("scale", "true")
	}
	if wipe {
		q.Set("wipe", "true")
	}
	body, err := json.Marshal(map[string][]string{"ids": ids})
	if err != nil {
		return nil, nil, fmt.Errorf("encode task ids: %w", err)
	}
	return c.api.do(ctx, http.MethodPost, "/v2/tasks/delete", q, body)
}

func taskKill(ctx context.Context, c *cli, inv *invocation) error {
	b, h, err := c.killTasks(ctx, inv.args, inv.flag("scale"), inv.flag("wipe"))
	if err != nil {
		return err
	}
	if dep := deploymentOf(b, h); dep != "" {
		fmt.Fprintf(c.stdout, "Created deployment: %s\n", dep)
		return nil
	}
	tasks, err := decodeTasks(b, "/v2/tasks/delete")
	if err != nil {
		return err
	}
	if len(tasks) == 0 {
		return userErrorf("Failed to kill tasks. task-ids seems to be unknown")
	}
	ids := make([]string, len(tasks))
	for i, t := range tasks {
		ids[i] = t.ID
	}
	fmt.Fprintf(c.stdout, "Killed tasks: [%s]\n", strings.Join(ids, ", "))
	return nil
}

func taskStop(ctx context.Context, c *cli, inv *invocation) error {
	id := inv.args[0]
	b, _, err := c.killTasks(ctx, []string{id}, false, inv.flag("wipe"))
	if err != nil {
		return err
	}
	tasks, err := decodeTasks(b, "/v2/tasks/delete")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.ID == id {
			return writeJSON(c.stdout, t.raw)
		}
	}
	return userErrorf("Task '%s' does not exist", id)
}

// fileChunk is the most /files/read answers at once.
const fileChunk = 1 << 20

// maxTail bounds what task log reads backwards to find N lines.
const maxTail = 16 << 20

// fileSize asks /files/read for the size of a task's stdout or stderr.
func (c *cli) fileSize(ctx context.Context, task, file string) (int64, error) {
	var r struct {
		Offset int64 `json:"offset"`
	}
	q := url.Values{"task": {task}, "path": {file}, "offset": {"-1"}}
	if err := c.api.getJSON(ctx, "/files/read", q, &r); err != nil {
		return 0, err
	}
	return r.Offset, nil
}

// readFile reads length bytes at offset; the answer's offset is smaller
// than the one asked for when the file shrank.
func (c *cli) readFile(ctx context.Context, task, file string, offset, length int64) (string, int64, error) {
	var r struct {
		Data   string `json:"data"`
		Offset int64  `json:"offset"`
	}
	q := url.Values{"task": {task}, "path": {file}, "offset": {strconv.FormatInt(offset, 10)}, "length": {strconv.FormatInt(length, 10)}}
	if err := c.api.getJSON(ctx, "/files/read", q, &r); err != nil {
		return "", 0, err
	}
	return r.Data, r.Offset, nil
}

// fullTaskID matches a whole task id, which task log uses as given.
var fullTaskID = regexp.MustCompile(`\.instance-[0-9a-f-]{36}\._app\.[0-9]+$`)

// resolveTask finds the task task log means: a whole task id as given
// (it may be a past incarnation), else the one current task whose id
// contains the argument, as "dcos task log postgres" does.
func (c *cli) resolveTask(ctx context.Context, arg string) (string, error) {
	if fullTaskID.MatchString(arg) {
		return arg, nil
	}
	tasks, err := c.tasks(ctx)
	if err != nil {
		return "", err
	}
	var matches []string
	for _, t := range tasks {
		if strings.Contains(t.ID, arg) {
			matches = append(matches, t.ID)
		}
	}
	switch len(matches) {
	case 0:
		return "", userErrorf("no task ID found containing '%s'", arg)
	case 1:
		return matches[0], nil
	}
	sort.Strings(matches)
	return "", userErrorf("%d tasks have an ID containing '%s': %s; give one of them", len(matches), arg, strings.Join(matches, ", "))
}

func taskLog(ctx context.Context, c *cli, inv *invocation) error {
	file := "stdout"
	if inv.flag("stderr") {
		file = "stderr"
	}
	lines := 10
	if v, ok := inv.value("lines"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return usagef(inv.cmd, "--lines takes a number of lines, not %q", v)
		}
		lines = n
	}
	task, err := c.resolveTask(ctx, inv.args[0])
	if err != nil {
		return err
	}
	size, err := c.fileSize(ctx, task, file)
	if err != nil {
		return err
	}
	tail, err := c.tail(ctx, task, file, size, lines)
	if err != nil {
		return err
	}
	if _, err := c.stdout.Write([]byte(tail)); err != nil {
		return err
	}
	if !inv.flag("follow") {
		return nil
	}
	return c.follow(ctx, task, file, size)
}

// tail returns the last n lines of the first size bytes of a file,
// reading backwards a chunk at a time.
func (c *cli) tail(ctx context.Context, task, file string, size int64, n int) (string, error) {
	if n == 0 || size == 0 {
		return "", nil
	}
	var buf string
	pos := size
	for pos > 0 && size-pos < maxTail {
		l := min(fileChunk, pos)
		pos -= l
		data, _, err := c.readFile(ctx, task, file, pos, l)
		if err != nil {
			return "", err
		}
		buf = data + buf
		if strings.Count(strings.TrimSuffix(buf, "\n"), "\n") >= n {
			break
		}
	}
	return lastLines(buf, n), nil
}

// lastLines returns the last n lines of s, keeping a final newline.
func lastLines(s string, n int) string {
	body, nl := strings.CutSuffix(s, "\n")
	parts := strings.Split(body, "\n")
	if len(parts) > n {
		parts = parts[len(parts)-n:]
	}
	out := strings.Join(parts, "\n")
	if nl {
		out += "\n"
	}
	return out
}

// follow prints what is appended to the file after offset until ctx
// ends. When the task's instance is relaunched (a crash, a kill, a
// restart), it goes on with the next incarnation's file from its start,
// after a note on stderr. Each poll asks for the size first and then reads
// exactly up to it, so offsets stay right even where the API had to
// replace bytes that are not UTF-8.
func (c *cli) follow(ctx context.Context, task, file string, offset int64) error {
	t := time.NewTicker(c.pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		next, err := c.successor(ctx, task)
		if err == nil {
			// Drain the file; with a successor it is the last time.
			offset, err = c.copyNew(ctx, task, file, offset)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if next != "" {
			fmt.Fprintf(c.stderr, "==> task %s was relaunched as %s\n", task, next)
			task, offset = next, 0
		}
	}
}

// copyNew prints the file's bytes from offset to its current size and
// returns the new offset.
func (c *cli) copyNew(ctx context.Context, task, file string, offset int64) (int64, error) {
	size, err := c.fileSize(ctx, task, file)
	if offset == 0 && isStatus(err, http.StatusNotFound) {
		return offset, nil // a new incarnation that has not written yet
	}
	if err != nil {
		return offset, err
	}
	if size < offset {
		offset = 0 // truncated or replaced: start over
	}
	for offset < size {
		l := min(fileChunk, size-offset)
		data, at, err := c.readFile(ctx, task, file, offset, l)
		if err != nil {
			return offset, err
		}
		if at < offset {
			return 0, nil
		}
		if _, err := c.stdout.Write([]byte(data)); err != nil {
			return offset, err
		}
		// Past a rotation that deleted what was not read yet, the answer
		// starts later than asked: go on after it.
		next := at + int64(len(data))
		if next <= offset {
			break // nothing more to read now
		}
		offset = next
	}
	return offset, nil
}

// successor returns the id of the current task of task's instance when it
// is a later incarnation than task, else "".
func (c *cli) successor(ctx context.Context, task string) (string, error) {
	inst, n, ok := splitIncarnation(task)
	if !ok {
		return "", nil
	}
	tasks, err := c.tasks(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range tasks {
		if i2, n2, ok := splitIncarnation(t.ID); ok && i2 == inst && n2 > n {
			return t.ID, nil
		}
	}
	return "", nil
}

// splitIncarnation splits "<app>.instance-<uuid>._app.<n>" into the
// instance part and n.
func splitIncarnation(taskID string) (string, int, bool) {
	if !fullTaskID.MatchString(taskID) {
		return "", 0, false
	}
	i := strings.LastIndex(taskID, "._app.")
	n, err := strconv.Atoi(taskID[i+len("._app."):])
	if err != nil {
		return "", 0, false
	}
	return taskID[:i], n, true
}
