package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPage(t *testing.T) {
	dir := t.TempDir()
	mux := http.NewServeMux()
	addPage(mux, dir)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := noFollow.PostForm(srv.URL+"/kv", url.Values{"key": {"greeting"}, "value": {"<b>hello</b>"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("POST /kv: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "greeting")); err != nil || string(b) != "<b>hello</b>" {
		t.Fatalf("the key's file: %q %v", b, err)
	}
	resp, err = http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "&lt;b&gt;hello&lt;/b&gt;") || !strings.Contains(string(body), `href="/kv/greeting"`) {
		t.Errorf("GET / does not list the key, escaped:\n%s", body)
	}
	for _, key := range []string{"../x", "", "a/b"} {
		resp, err := noFollow.PostForm(srv.URL+"/kv", url.Values{"key": {key}, "value": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /kv key %q: %d, want 400", key, resp.StatusCode)
		}
	}
}
