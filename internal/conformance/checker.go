// Package conformance checks mesolite's answers and events against
// Marathon's schema: JSON Schemas written for mesolite (schema/*.json, not
// copied from anywhere) from Marathon's RAML and from the JSON Marathon
// 1.8+ actually writes. Where the two disagree the schemas follow the
// behaviour and say so in a $comment.
//
// The schemas are strict: every object is closed (a field Marathon does
// not have fails), every field Marathon always writes is required (a
// dropped field fails), times are Marathon's (UTC, milliseconds, Z), and
// fields Marathon leaves out (an Option that is None, an omitEmpty array
// that is empty) must be absent. mesolite's own fields are allowed only
// when the request asked for them with ?embed=mesolite, and mesolite's own
// event types only on streams that asked for them.
//
// Tests hook a Checker into every request they make: Handler wraps the
// API's http.Handler (agent/api's tests, the fake-runtime suites),
// Transport wraps a client (the end-to-end tests that run the binary).
// Both check each answer and each event as it passes and report a
// mismatch at once; Summary gives the counts.
package conformance

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// printer renders the schema library's messages.
var printer = message.NewPrinter(language.English)

//go:embed schema/*.json
var schemaFS embed.FS

// base is the URL the schemas are registered under. Nothing is ever
// fetched from it: every schema is added to the compiler before use.
const base = "https://schema.mesolite.invalid/"

// Checker validates answers and events. It is safe for concurrent use.
type Checker struct {
	mu       sync.Mutex
	compiler *jsonschema.Compiler          // guarded by mu
	cache    map[string]*jsonschema.Schema // guarded by mu; by generated schema key

	responses atomic.Int64
	events    atomic.Int64
}

// New returns a Checker with the embedded schemas loaded.
func New() (*Checker, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	names, err := fs.Glob(schemaFS, "schema/*.json")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		b, err := schemaFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		if err := c.AddResource(base+path.Base(name), doc); err != nil {
			return nil, fmt.Errorf("add %s: %w", name, err)
		}
	}
	return &Checker{compiler: c, cache: map[string]*jsonschema.Schema{}}, nil
}

var (
	defaultOnce    sync.Once
	defaultChecker *Checker
)

// Default is the process's Checker, shared by every test of a package so
// that Summary counts all of them. The embedded schemas are part of the
// build: if they do not load, that is a bug in this package, and it panics.
func Default() *Checker {
	defaultOnce.Do(func() {
		c, err := New()
		if err != nil {
			panic(fmt.Sprintf("conformance: load schemas: %v", err))
		}
		defaultChecker = c
	})
	return defaultChecker
}

// Counts returns how many answers and events were checked.
func (c *Checker) Counts() (responses, events int64) {
	return c.responses.Load(), c.events.Load()
}

// Summary is the line a test binary prints at its end.
func (c *Checker) Summary() string {
	r, e := c.Counts()
	return fmt.Sprintf("conformance: %d answers and %d events checked against Marathon's schema", r, e)
}

// LogEnv names a file the test binaries append their summaries to: go
// test shows a passing package's output only with -v, so make test
// prints this file after the suite.
const LogEnv = "MESOLITE_CONFORMANCE_LOG"

// Finish reports what the checker saw in a test binary of package pkg:
// printed, and appended to the file $MESOLITE_CONFORMANCE_LOG names.
func (c *Checker) Finish(pkg string) {
	line := pkg + ": " + c.Summary()
	fmt.Println(line)
	if path := os.Getenv(LogEnv); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
			return
		}
		defer f.Close()
		if _, err := fmt.Fprintln(f, line); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		}
	}
}

// schema returns the compiled schema of a reference into the embedded
// schemas ("app.json#/$defs/appFields") or of a generated document, which
// is registered under key on first use.
func (c *Checker) schema(key string, gen map[string]any) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.cache[key]; s != nil {
		return s, nil
	}
	loc := base + key
	if gen != nil {
		loc = base + "gen/" + url.PathEscape(key) + ".json"
		if err := c.compiler.AddResource(loc, roundTrip(gen)); err != nil {
			return nil, fmt.Errorf("add generated schema %s: %w", key, err)
		}
	}
	s, err := c.compiler.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", key, err)
	}
	c.cache[key] = s
	return s, nil
}

// roundTrip turns a Go value into what jsonschema.UnmarshalJSON makes of
// its JSON (numbers as json.Number).
func roundTrip(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("conformance: marshal generated schema: %v", err))
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		panic(fmt.Sprintf("conformance: parse generated schema: %v", err))
	}
	return doc
}

// ref is a reference into the embedded schemas.
func ref(s string) map[string]any { return map[string]any{"$ref": base + s} }

// Response is one answer of the API.
type Response struct {
	Method string
	// Path is the URL path as requested, with or without /service/marathon.
	Path   string
	Query  url.Values
	Status int
	Header http.Header
	Body   []byte
}

// Mismatch is an answer or event that does not conform.
type Mismatch struct {
	// What is the route ("GET /v2/apps/{id}") or the event type.
	What string
	// Where is the JSON pointer of the offending value, Why what is wrong.
	Where, Why string
	Body       []byte
}

func (m *Mismatch) Error() string {
	return fmt.Sprintf("%s does not conform to Marathon's schema at %s: %s\n  body: %s", m.What, m.Where, m.Why, excerpt(m.Body))
}

// CheckResponse validates an answer against the schema of its route,
// status and query. It returns nil, a *Mismatch or Mismatches.
func (c *Checker) CheckResponse(r Response) error {
	c.responses.Add(1)
	rt := matchRoute(r.Method, r.Path)
	if rt.path == "other" && r.Status < 400 {
		return nil // neither Marathon's nor JSON
	}
	what := rt.name
	if len(r.Query) > 0 {
		what += "?" + r.Query.Encode()
	}
	what = fmt.Sprintf("%s → %d", what, r.Status)
	exp, err := c.expect(rt, r)
	if err != nil {
		return &Mismatch{What: what, Where: "", Why: err.Error(), Body: r.Body}
	}
	return c.checkBody(what, exp, r)
}

// expectation is what an answer must look like.
type expectation struct {
	schema      *jsonschema.Schema
	empty       bool   // no body at all
	text        string // exactly this text body (GET /ping)
	stream      bool   // an event stream: its events are checked one by one
	contentType string
}

func (c *Checker) checkBody(what string, exp expectation, r Response) error {
	ct := ""
	if r.Header != nil {
		ct = r.Header.Get("Content-Type")
	}
	switch {
	case exp.stream:
		if !strings.HasPrefix(ct, "text/event-stream") {
			return &Mismatch{What: what, Where: "Content-Type", Why: fmt.Sprintf("want text/event-stream, got %q", ct)}
		}
		return nil
	case exp.empty:
		if len(r.Body) != 0 {
			return &Mismatch{What: what, Where: "body", Why: "want no body", Body: r.Body}
		}
		return nil
	case exp.text != "":
		if r.Method != http.MethodHead && string(r.Body) != exp.text {
			return &Mismatch{What: what, Where: "body", Why: fmt.Sprintf("want %q", exp.text), Body: r.Body}
		}
		if !strings.HasPrefix(ct, exp.contentType) {
			return &Mismatch{What: what, Where: "Content-Type", Why: fmt.Sprintf("want %s, got %q", exp.contentType, ct)}
		}
		return nil
	}
	if r.Method == http.MethodHead {
		return nil
	}
	if !strings.HasPrefix(ct, "application/json") {
		return &Mismatch{What: what, Where: "Content-Type", Why: fmt.Sprintf("want application/json, got %q", ct), Body: r.Body}
	}
	return validate(what, exp.schema, r.Body)
}

// validate checks a JSON document against a schema and turns the first
// failures into Mismatches.
func validate(what string, s *jsonschema.Schema, body []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return &Mismatch{What: what, Where: "body", Why: "not JSON: " + err.Error(), Body: body}
	}
	err = s.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Mismatch{What: what, Where: "body", Why: err.Error(), Body: body}
	}
	var out Mismatches
	for _, leaf := range relevant(leaves(ve)) {
		why := leaf.ErrorKind.LocalizedString(printer)
		if _, ok := leaf.ErrorKind.(*kind.FalseSchema); ok {
			why = "Marathon does not write this field here"
		}
		out = append(out, &Mismatch{What: what, Where: "/" + strings.Join(leaf.InstanceLocation, "/"), Why: why, Body: body})
	}
	return out
}

// Mismatches are the mismatches of one answer or event.
type Mismatches []*Mismatch

func (ms Mismatches) Error() string {
	if len(ms) == 1 {
		return ms[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s does not conform to Marathon's schema:", ms[0].What)
	for _, m := range ms {
		fmt.Fprintf(&b, "\n  at %s: %s", m.Where, m.Why)
	}
	fmt.Fprintf(&b, "\n  body: %s", excerpt(ms[0].Body))
	return b.String()
}

// Unwrap lets errors.As find each Mismatch.
func (ms Mismatches) Unwrap() []error {
	out := make([]error, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

func excerpt(b []byte) string {
	s := string(b)
	if len(s) > 1500 {
		s = s[:1500] + "…"
	}
	return s
}

// relevant drops the "false schema" errors that only follow from another
// error: when a value inside an object fails, the object's other fields
// count as unevaluated and fail its unevaluatedProperties too. A field
// directly in an object is reported as not allowed only when nothing failed
// at the object itself or deeper than its direct fields.
func relevant(all []*jsonschema.ValidationError) []*jsonschema.ValidationError {
	isFalse := func(e *jsonschema.ValidationError) bool {
		_, ok := e.ErrorKind.(*kind.FalseSchema)
		return ok
	}
	var out []*jsonschema.ValidationError
	for _, e := range all {
		if isFalse(e) && len(e.InstanceLocation) > 0 {
			parent := e.InstanceLocation[:len(e.InstanceLocation)-1]
			shadowed := false
			for _, o := range all {
				if o == e || !hasPrefix(o.InstanceLocation, parent) {
					continue
				}
				if (!isFalse(o) && len(o.InstanceLocation) <= len(parent)+1) || len(o.InstanceLocation) > len(parent)+1 {
					shadowed = true
					break
				}
			}
			if shadowed {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

func hasPrefix(loc, prefix []string) bool {
	if len(loc) < len(prefix) {
		return false
	}
	for i := range prefix {
		if loc[i] != prefix[i] {
			return false
		}
	}
	return true
}

// leaves returns the innermost errors of a validation error: the ones that
// say what is wrong rather than which branch failed.
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}
