package probe

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestHTTPGet: the plain HTTP check reads the status line as http.Client
// would report it, skips interim answers, and fails on what is not HTTP.
func TestHTTPGet(t *testing.T) {
	tests := []struct {
		name     string
		answer   string // raw bytes the server writes; "" closes at once
		wantCode int
		wantStat string
		wantErr  string
	}{
		{name: "ok", answer: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", wantCode: 200, wantStat: "200 OK"},
		{name: "unavailable", answer: "HTTP/1.0 503 Service Unavailable\r\n\r\n", wantCode: 503, wantStat: "503 Service Unavailable"},
		{name: "interim skipped", answer: "HTTP/1.1 100 Continue\r\nX-A: " + strings.Repeat("a", 3000) + "\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", wantCode: 204, wantStat: "204 No Content"},
		{name: "switching protocols", answer: "HTTP/1.1 101 Switching Protocols\r\n\r\n", wantCode: 101, wantStat: "101 Switching Protocols"},
		{name: "not http", answer: "SSH-2.0-OpenSSH\r\n", wantErr: "malformed status line"},
		{name: "bad code", answer: "HTTP/1.1 2x0 OK\r\n", wantErr: "malformed status code"},
		{name: "closed", answer: "", wantErr: "read status line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			gotReq := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 4096)
				n, _ := c.Read(buf)
				gotReq <- string(buf[:n])
				_, _ = c.Write([]byte(tc.answer))
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			code, status, err := HTTPGet(ctx, ln.Addr().String(), "/health?x=1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || code != tc.wantCode || status != tc.wantStat {
				t.Fatalf("got %d %q %v, want %d %q", code, status, err, tc.wantCode, tc.wantStat)
			}
			if req := <-gotReq; !strings.HasPrefix(req, "GET /health?x=1 HTTP/1.1\r\nHost: "+ln.Addr().String()+"\r\n") || !strings.Contains(req, "Connection: close\r\n") {
				t.Fatalf("request %q", req)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				time.Sleep(2 * time.Second)
				c.Close()
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		if _, _, err := HTTPGet(ctx, ln.Addr().String(), "/"); err == nil || time.Since(t0) > time.Second {
			t.Fatalf("err %v after %s, want a timeout after 100ms", err, time.Since(t0))
		}
	})
	t.Run("refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		if _, _, err := HTTPGet(context.Background(), addr, "/"); err == nil || !strings.Contains(err.Error(), "GET http://"+addr+"/") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestPlainRequestPath(t *testing.T) {
	for p, want := range map[string]bool{"/": true, "/health?a=b&c=%20": true, "": false, "health": false, "/a b": false, "/a\r\nX: y": false, "/é": false} {
		if got := PlainRequestPath(p); got != want {
			t.Errorf("PlainRequestPath(%q) = %v, want %v", p, got, want)
		}
	}
}
