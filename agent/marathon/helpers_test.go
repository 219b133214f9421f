package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// errClass names the class of a Decode/Parse error: "" (none), "syntax"
// (400 Invalid JSON) or "validation" (422). Anything else is a bug.
func errClass(err error) string {
	var se *SyntaxError
	var ve *ValidationError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return "syntax"
	case errors.As(err, &ve):
		return "validation"
	}
	return fmt.Sprintf("unexpected %T", err)
}

// detail returns the messages of the detail with the given path.
func detail(err error, path string) ([]string, bool) {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil, false
	}
	for _, d := range ve.Details {
		if d.Path == path {
			return d.Errors, true
		}
	}
	return nil, false
}

// hasDetail reports whether err is a *ValidationError with a detail at
// path whose messages include one containing msg.
func hasDetail(err error, path, msg string) bool {
	msgs, ok := detail(err, path)
	if !ok {
		return false
	}
	for _, m := range msgs {
		if strings.Contains(m, msg) {
			return true
		}
	}
	return false
}

// lookup finds a value in a rendered object by a Marathon detail path:
// "/container/portMappings(0)/hostPort". ok is false when it is absent.
func lookup(v any, path string) (any, bool) {
	if path == "/" {
		return v, true
	}
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		key, rest, _ := strings.Cut(seg, "(")
		if key != "" {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[key]; !ok {
				return nil, false
			}
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, ")")
			i, err := strconv.Atoi(idx)
			a, ok := v.([]any)
			if err != nil || !ok || i < 0 || i >= len(a) {
				return nil, false
			}
			v = a[i]
			rest = strings.TrimPrefix(after, "(")
		}
	}
	return v, true
}

// sameJSON reports whether got (a decoded value) equals the JSON text want,
// comparing numbers by value.
func sameJSON(t *testing.T, got any, want string) bool {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("marshal %v: %v", got, err)
	}
	var g, w any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// compact renders v as JSON for a message.
func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// canonicalJSON is the golden form of a rendered object: 2-space indent,
// sorted keys, a final newline.
func canonicalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// baseApp is the smallest valid app: host networking, one Docker image.
const baseApp = `{"id":"/v","container":{"type":"DOCKER","docker":{"image":"img:1"}}}`

// with returns baseApp with the top-level keys of overlay replacing its
// own; a key set to null is removed.
func with(t *testing.T, overlay string) []byte {
	t.Helper()
	var base, over map[string]any
	if err := json.Unmarshal([]byte(baseApp), &base); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(overlay), &over); err != nil {
		t.Fatalf("bad overlay %s: %v", overlay, err)
	}
	for k, v := range over {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	b, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
