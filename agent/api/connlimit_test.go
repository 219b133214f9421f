package api

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestConnLimiterShedsSlowClients: with the cap taken by clients that send
// their request line, headers or body slowly, every whole request is still
// served, the cap holds, and long requests being served are never shed.
func TestConnLimiterShedsSlowClients(t *testing.T) {
	const max = 20
	l := NewConnLimiter(max)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	streams := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pong\n") })
	mux.HandleFunc("/body", func(w http.ResponseWriter, r *http.Request) { _, _ = io.ReadAll(r.Body) })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-streams:
		}
	})
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer l.Serve(r)()
			mux.ServeHTTP(w, r)
		}),
		ConnState: l.ConnState, ConnContext: l.ConnContext, ReadHeaderTimeout: time.Minute,
	}
	go func() { _ = srv.Serve(l.Listener(ln)) }()
	defer srv.Close()
	defer close(streams)
	addr := ln.Addr().String()

	// Five event streams, served: never shed.
	var held []*http.Response
	for i := 0; i < 5; i++ {
		resp, err := http.Get("http://" + addr + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, resp)
	}
	// 100 slow clients: half stalled in their headers, half in their body.
	var slow []net.Conn
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			fmt.Fprintf(c, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
		} else {
			fmt.Fprintf(c, "GET /ping HTTP/1.1\r\nHo")
		}
		slow = append(slow, c)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 30; i++ {
		resp, err := client.Get("http://" + addr + "/ping")
		if err != nil {
			t.Fatalf("ping %d with the cap taken by slow clients: %v", i, err)
		}
		resp.Body.Close()
		if n := l.Open(); n > max {
			t.Fatalf("%d connections open, cap %d", n, max)
		}
	}
	// The streams are still open: a shed one would have been closed.
	for i, resp := range held {
		done := make(chan error, 1)
		go func() { _, err := resp.Body.Read(make([]byte, 1)); done <- err }()
		select {
		case err := <-done:
			t.Fatalf("stream %d was closed: %v", i, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
