package marathon

import (
	"bytes"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mesolite/mesolite/sandbox/docker"
)

// fuzzOptions allow absolute host paths under one root, so the fuzzer
// reaches the code behind that check too.
var fuzzOptions = Options{HostPathRoots: []string{"/srv"}, CheckParameter: docker.CheckParameter}

// FuzzParse: Parse never panics, fails only with *SyntaxError or
// *ValidationError, and the object it renders is a fixed point: encoding
// it and parsing it again renders the same object.
func FuzzParse(f *testing.F) {
	var seeds []string
	for _, dir := range []string{"valid", "invalid"} {
		all, err := filepath.Glob(filepath.Join(corpusDir, dir, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, all...)
	}
	root, err := filepath.Glob("../../testdata/*.marathon.json")
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, root...)
	if len(seeds) < 30 {
		f.Fatalf("only %d seed files", len(seeds))
	}
	for _, p := range seeds {
		f.Add(readFile(f, p))
	}
	for _, s := range []string{
		baseApp, persistentApp, hostVolumeApp, bridgeApp,
		`{"id":"a","portDefinitions":[],"container":{"docker":{"image":"x"}}}`,
		`{"id":"a","ports":[],"container":{"docker":{"image":"x"}}}`,
		`{"id":"a","ipAddress":{"networkName":"n","discovery":{"ports":[{"number":80}]}},"container":{"docker":{"image":"x"}}}`,
		`{"id":"a","upgradeStrategy":{"minimumHealthCapacity":-1},"container":{"docker":{"image":"x"}}}`,
		`{"id":"a","CPUS":2,"container":{"docker":{"image":"x","Image":"y"}}}`,
		`{"id":"a","a":{"a":{"a":[[[[{"b":1,"b":2}]]]]}}}`,
		`{"id":"a","instances":1e2,"container":{"docker":{"image":"x"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		app, out, err := Parse(body, fuzzOptions)
		if err != nil {
			if c := errClass(err); c != "syntax" && c != "validation" {
				t.Fatalf("Parse: %v (%s)", err, c)
			}
			var ve *ValidationError
			if errors.As(err, &ve) && len(ve.Details) == 0 {
				t.Fatalf("validation error without details")
			}
			return
		}
		if app == nil || out == nil {
			t.Fatalf("Parse returned app %v, object %v and no error", app, out)
		}
		first, err := canonicalJSON(out)
		if err != nil {
			t.Fatalf("encode rendered app: %v", err)
		}
		_, again, err := Parse(first, fuzzOptions)
		if err != nil {
			t.Fatalf("rendered app does not parse: %v\n%s", err, first)
		}
		second, err := canonicalJSON(again)
		if err != nil {
			t.Fatalf("encode rendered app: %v", err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("rendering is not a fixed point:\nfirst:  %s\nsecond: %s", first, second)
		}
	})
}

var fuzzSegment = regexp.MustCompile(`^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$`)

// FuzzValidateID: ValidateID never panics, and an id it accepts is
// canonical, made of SPEC §2 segments, short enough, and gives a SafeID
// that is one valid file name.
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{
		"/postgres", "postgres", "db/pg/", "//a//b//", "/", "", ".", "..", "/a/../b", "/a/./b",
		"/a\x00b", "/A", "/a_b", "/-a", "/a-", "/a.b.c", "/restart", "/a/tasks", "/versions/a",
		"/" + strings.Repeat("a", 63), "/" + strings.Repeat("a", 64), "/" + strings.Repeat("a/", 80),
		"/ä", "/a b", "/a\\b", "/a%2fb", "/a#b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		canon, err := ValidateID(id)
		if err != nil {
			if !hasDetail(err, "/id", "") {
				t.Fatalf("ValidateID(%q): %v, want a /id detail", id, err)
			}
			return
		}
		if canon != CanonicalID(id) || !strings.HasPrefix(canon, "/") {
			t.Fatalf("ValidateID(%q) = %q, CanonicalID gives %q", id, canon, CanonicalID(id))
		}
		if len(canon) > MaxIDLength || strings.ContainsRune(canon, 0) {
			t.Fatalf("ValidateID(%q) = %q: %d bytes or NUL", id, canon, len(canon))
		}
		for _, seg := range strings.Split(canon[1:], "/") {
			if seg == "." || seg == ".." || !fuzzSegment.MatchString(seg) {
				t.Fatalf("ValidateID(%q) = %q: bad segment %q", id, canon, seg)
			}
		}
		if again, err := ValidateID(canon); err != nil || again != canon {
			t.Fatalf("ValidateID(%q) = %q, %v; want it unchanged", canon, again, err)
		}
		safe := SafeID(canon)
		if safe == "" || safe == "." || safe == ".." || len(safe) > 255 || !utf8.ValidString(safe) ||
			strings.ContainsAny(safe, "/\\\x00") || filepath.Base(safe) != safe {
			t.Fatalf("SafeID(%q) = %q is not a single file name", canon, safe)
		}
		if SafeID(id) != safe {
			t.Fatalf("SafeID(%q) = %q, SafeID of its canonical id %q", id, SafeID(id), safe)
		}
	})
}
