package main

import (
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"sort"
)

// The page at / lets a browser do what the tutorial does with curl: read
// and write keys in the persistent volume, and crash the task, so the
// whole tutorial runs from the dashboard without a terminal.
//
//	GET  /     the keys in $DATA_DIR with their values, and the forms
//	POST /kv   a form's key and value, written as PUT /kv/{key} does
var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>testapp</title>
<style>
body { font: 18px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 46rem; padding: 0 1rem; color: #1b1f24; }
code { font-size: 0.9em; } table { border-collapse: collapse; margin: 1rem 0; min-width: 20rem; }
th, td { text-align: left; border-bottom: 1px solid #d0d7de; padding: 0.4rem 0.8rem; }
form { margin: 1rem 0; display: flex; gap: 0.75rem; align-items: end; flex-wrap: wrap; }
label { display: flex; flex-direction: column; font-weight: 600; }
input { font: inherit; padding: 0.3rem 0.5rem; } button { font: inherit; padding: 0.35rem 1rem; }
</style></head><body>
<h1>testapp</h1>
<p>Task <code>{{.Task}}</code>. Each key is a file in <code>{{.Dir}}</code>, the persistent volume.</p>
{{if .Keys}}<table><thead><tr><th>Key</th><th>Value</th></tr></thead><tbody>
{{range .Keys}}<tr><td><a href="/kv/{{.Key}}">{{.Key}}</a></td><td>{{.Value}}</td></tr>
{{end}}</tbody></table>{{else}}<p>No keys yet.</p>{{end}}
<form method="post" action="/kv">
<label>Key <input name="key" required pattern="[A-Za-z0-9._\-]{1,128}" value="greeting"></label>
<label>Value <input name="value" value="hello"></label>
<button type="submit">Write</button></form>
<form method="post" action="/exit?code=1"><button type="submit">Crash this task (exit 1)</button></form>
</body></html>
`))

type pageKey struct{ Key, Value string }

func addPage(mux *http.ServeMux, dataDir string) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		var keys []pageKey
		entries, _ := os.ReadDir(dataDir)
		for _, e := range entries {
			if e.Type().IsRegular() && validKey.MatchString(e.Name()) {
				b, err := os.ReadFile(filepath.Join(dataDir, e.Name()))
				if err == nil && len(b) > 1024 {
					b = append(b[:1024], "…"...)
				}
				keys = append(keys, pageKey{e.Name(), string(b)})
			}
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].Key < keys[j].Key })
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, map[string]any{"Task": os.Getenv("MESOS_TASK_ID"), "Dir": dataDir, "Keys": keys})
	})
	mux.HandleFunc("POST /kv", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		key, value := r.FormValue("key"), r.FormValue("value")
		if !validKey.MatchString(key) {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := writeSync(filepath.Join(dataDir, key), []byte(value)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
}
