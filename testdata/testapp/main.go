// Command testapp is the container mesolite's tests and tutorial run: a
// static binary in a FROM scratch image, so it builds without a registry.
//
// It serves HTTP on :8080 (or $LISTEN):
//
//	GET  /health        200, or 503 when $UNHEALTHY=1
//	PUT  /kv/{key}      stores the body in $DATA_DIR/{key} (default /mnt/mesos/sandbox/data)
//	GET  /kv/{key}      returns it, or 404
//	POST /exit?code=N   exits with code N
//	GET  /env           the environment as a JSON object
//	GET  /              a page to read and write keys from a browser (page.go)
//	GET  /hostname      the container's host name (its short id)
//	GET  /bytes?n=N     N zero bytes (a bulk transfer)
//	POST /unhealthy     from now on /health and /hostname answer 503
//	POST /healthy       and back to normal
//
// With $NO_LISTEN=1 it never listens (a process that is alive but not
// serving). It prints a line to stdout and one to stderr when it starts,
// and exits 0 on SIGTERM.
//
// The image also installs this binary as /bin/sh, where it understands a
// few commands of "sh -c" (true, false, exit N, echo, test -e|-f PATH,
// healthy, flood N [both], and running an absolute path), enough for
// COMMAND health checks and "cmd" apps in a scratch image. As a client
// inside a container, for the network tests, it also understands:
//
//	get URL [N]     N (default 1) GETs, each on a new connection; prints each
//	                body (or "error: …") on a line; exit 1 if any failed
//	dial HOST:PORT  a TCP connection; prints "connected" or the error
//	lookup NAME     the A records of NAME through /etc/resolv.conf
//	srv NAME        the SRV records of NAME: "target port" per line
//	timedial HOST:PORT N  N TCP connection set-ups; microseconds each, a line each
//	timeget URL N   N GETs on one kept-alive connection; microseconds each
//	                (timedial and timeget take "A,B": the two in turns)
//	pull URL        one GET read to its end; prints MiB/s
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

var validKey = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func main() {
	if filepath.Base(os.Args[0]) == "sh" {
		os.Exit(shell(os.Args[1:]))
	}
	listen := envOr("LISTEN", ":8080")
	dataDir := envOr("DATA_DIR", "/mnt/mesos/sandbox/data")
	fmt.Printf("testapp starting: listen=%s data=%s task=%s\n", listen, dataDir, os.Getenv("MESOS_TASK_ID"))
	fmt.Fprintf(os.Stderr, "testapp stderr: pid %d\n", os.Getpid())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		fmt.Printf("testapp got %s, exiting\n", s)
		os.Exit(0)
	}()

	if os.Getenv("NO_LISTEN") == "1" {
		fmt.Println("testapp: NO_LISTEN=1, not listening")
		select {}
	}

	mux := http.NewServeMux()
	var broken atomic.Bool
	mux.HandleFunc("POST /unhealthy", func(w http.ResponseWriter, _ *http.Request) { broken.Store(true) })
	mux.HandleFunc("POST /healthy", func(w http.ResponseWriter, _ *http.Request) { broken.Store(false) })
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if os.Getenv("UNHEALTHY") == "1" || broken.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if !validKey.MatchString(key) {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := writeSync(filepath.Join(dataDir, key), body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if !validKey.MatchString(key) {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		b, err := os.ReadFile(filepath.Join(dataDir, key))
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST /exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Printf("testapp exiting with code %d on request\n", code)
		w.WriteHeader(http.StatusAccepted)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(code) }()
	})
	mux.HandleFunc("GET /hostname", func(w http.ResponseWriter, _ *http.Request) {
		if broken.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		h, _ := os.Hostname()
		fmt.Fprintln(w, h)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "n must be a number of bytes", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 64<<10)
		for n > 0 {
			m, err := w.Write(buf[:min(int64(len(buf)), n)])
			if err != nil {
				return
			}
			n -= int64(m)
		}
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, _ *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(env)
	})
	addPage(mux, dataDir)
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(os.Stderr, "testapp: %v\n", err)
		os.Exit(1)
	}
}

func writeSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// flood writes N numbered lines as fast as it can, one write each:
// "flood N" to stdout, "flood N both" alternately to stdout and stderr
// (odd lines to stdout). The tests count them in the task's sandbox.
func flood(args []string) int {
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, "testapp sh: flood N [both]")
		return 2
	}
	both := len(args) > 1 && args[1] == "both"
	for i := 1; i <= n; i++ {
		w := os.Stdout
		if both && i%2 == 0 {
			w = os.Stderr
		}
		if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
			return 1
		}
	}
	return 0
}

// shell runs "sh -c SCRIPT" for a handful of commands, separated by ";".
func shell(args []string) int {
	if len(args) < 2 || args[0] != "-c" {
		fmt.Fprintln(os.Stderr, "testapp sh: only 'sh -c SCRIPT' is supported")
		return 2
	}
	code := 0
	for _, cmd := range strings.Split(args[1], ";") {
		f := strings.Fields(cmd)
		if len(f) == 0 {
			continue
		}
		if f[0] == "exec" && len(f) > 1 {
			f = f[1:]
		}
		switch {
		case f[0] == "true":
			code = 0
		case f[0] == "false":
			code = 1
		case f[0] == "exit":
			if len(f) > 1 {
				code, _ = strconv.Atoi(f[1])
			}
			return code
		case f[0] == "flood" && len(f) >= 2:
			code = flood(f[1:])
		case f[0] == "echo":
			fmt.Println(strings.Join(f[1:], " "))
			code = 0
		case f[0] == "test" && len(f) == 3 && (f[1] == "-e" || f[1] == "-f"):
			if _, err := os.Stat(f[2]); err != nil {
				code = 1
			} else {
				code = 0
			}
		case f[0] == "healthy":
			port := envOr("LISTEN", ":8080")
			resp, err := http.Get("http://127.0.0.1" + port[strings.LastIndex(port, ":"):] + "/health")
			if err != nil {
				fmt.Println(err)
				code = 1
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fmt.Println(resp.Status)
				code = 1
			} else {
				code = 0
			}
		case f[0] == "get" && (len(f) == 2 || len(f) == 3):
			code = clientGet(f[1:])
		case f[0] == "dial" && len(f) == 2:
			c, err := net.DialTimeout("tcp", f[1], 5*time.Second)
			if err != nil {
				fmt.Println(err)
				code = 1
				continue
			}
			c.Close()
			fmt.Println("connected")
			code = 0
		case (f[0] == "timedial" || f[0] == "timeget") && len(f) == 3:
			code = clientTimed(f[0], f[1], f[2])
		case f[0] == "pull" && len(f) == 2:
			code = clientPull(f[1])
		case f[0] == "lookup" && len(f) == 2:
			code = clientLookup(f[1], false)
		case f[0] == "srv" && len(f) == 2:
			code = clientLookup(f[1], true)
		case strings.HasPrefix(f[0], "/"):
			if err := syscall.Exec(f[0], f, os.Environ()); err != nil {
				fmt.Fprintf(os.Stderr, "testapp sh: exec %s: %v\n", f[0], err)
				return 127
			}
		default:
			fmt.Fprintf(os.Stderr, "testapp sh: %s: not supported\n", f[0])
			return 127
		}
	}
	return code
}

// clientGet is "get URL [N]": N GETs, each on a new connection.
func clientGet(args []string) int {
	n := 1
	if len(args) == 2 {
		n, _ = strconv.Atoi(args[1])
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	code := 0
	for i := 0; i < n; i++ {
		resp, err := c.Get(args[0])
		if err != nil {
			fmt.Println("error:", err)
			code = 1
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if err != nil || resp.StatusCode >= 400 {
			fmt.Println("error:", resp.Status, err)
			code = 1
			continue
		}
		fmt.Println(strings.TrimSpace(string(b)))
	}
	return code
}

// clientLookup is "lookup NAME" and "srv NAME", through /etc/resolv.conf.
func clientLookup(name string, srv bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &net.Resolver{PreferGo: true}
	if srv {
		_, addrs, err := r.LookupSRV(ctx, "", "", name)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		for _, a := range addrs {
			fmt.Println(a.Target, a.Port)
		}
		return 0
	}
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
	return 0
}

// clientTimed is "timedial ADDR N" and "timeget URL N": the time of each
// connection set-up, or of each request on one kept-alive connection, in
// microseconds, a line each. With two targets, "A,B", they take turns
// request by request (A first on even rounds, B first on odd ones), so
// that both see the same moments of the machine's noise; each line then
// holds A's time and B's.
func clientTimed(cmd, targets, count string) int {
	n, _ := strconv.Atoi(count)
	ts := strings.Split(targets, ",")
	clients := make([]*http.Client, len(ts))
	for i := range clients {
		clients[i] = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	}
	one := func(j int) (int64, error) {
		t0 := time.Now()
		if cmd == "timedial" {
			conn, err := net.DialTimeout("tcp", ts[j], 5*time.Second)
			if err != nil {
				return 0, err
			}
			d := time.Since(t0)
			conn.Close()
			return d.Microseconds(), nil
		}
		resp, err := clients[j].Get(ts[j])
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0).Microseconds(), err
	}
	var out strings.Builder
	us := make([]int64, len(ts))
	for i := 0; i < n; i++ {
		for k := range ts {
			j := k
			if i%2 == 1 {
				j = len(ts) - 1 - k
			}
			d, err := one(j)
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			us[j] = d
		}
		for j, d := range us {
			if j > 0 {
				out.WriteByte(' ')
			}
			fmt.Fprint(&out, d)
		}
		out.WriteByte('\n')
	}
	fmt.Print(out.String())
	return 0
}

// clientPull is "pull URL": one GET read to its end, in MiB/s.
func clientPull(url string) int {
	t0 := time.Now()
	resp, err := (&http.Client{Timeout: time.Minute}).Get(url)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Printf("%.1f\n", float64(n)/(1<<20)/time.Since(t0).Seconds())
	return 0
}
