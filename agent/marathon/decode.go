package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// SyntaxError is malformed JSON: Marathon answers 400 "Invalid JSON".
type SyntaxError struct {
	Msg string
}

func (e *SyntaxError) Error() string { return "invalid JSON: " + e.Msg }

// Detail is one entry of a 422 body: a JSON path and what is wrong there.
type Detail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

// ValidationError is an app definition that parses but breaks a rule:
// Marathon answers 422 "Object is not valid" with the details.
type ValidationError struct {
	Details []Detail
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("object is not valid")
	for _, d := range e.Details {
		fmt.Fprintf(&b, "; %s: %s", d.Path, strings.Join(d.Errors, ", "))
	}
	return b.String()
}

// readOnlyFields are rendered by the API but ignored on input, so a GET
// body can be PUT back unchanged.
var readOnlyFields = []string{
	"version", "versionInfo", "tasksStaged", "tasksRunning", "tasksHealthy",
	"tasksUnhealthy", "deployments", "tasks", "lastTaskFailure", "taskStats",
	"readinessCheckResults", "counts",
}

// Decode parses an app definition. It returns the typed app (not yet
// normalized) and the document as a generic JSON object, which keeps fields
// mesolite does not know so they can be echoed back. Malformed JSON is a
// *SyntaxError; a duplicate key or a value of the wrong type is a
// *ValidationError naming its path.
func Decode(body []byte) (*App, map[string]any, error) {
	doc, err := DecodeObject(body)
	if err != nil {
		return nil, nil, err
	}
	app, err := FromObject(doc)
	if err != nil {
		return nil, nil, err
	}
	return app, doc, nil
}

// DecodeObject parses a JSON object, refusing malformed JSON, trailing
// data and nesting deeper than maxDepth (*SyntaxError), and duplicate keys
// and anything but an object at the top (*ValidationError).
func DecodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &SyntaxError{Msg: "no content: expected a JSON object"}
		}
		return nil, &SyntaxError{Msg: err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &SyntaxError{Msg: "unexpected data after the JSON object"}
	}
	// The body is one well-formed value now, so the walk below only finds
	// what encoding/json accepts silently: duplicate keys and deep nesting.
	if err := checkDuplicates(body); err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &ValidationError{Details: []Detail{{Path: "/", Errors: []string{"expected a JSON object, got " + jsonKind(v)}}}}
	}
	for _, k := range readOnlyFields {
		delete(obj, k)
	}
	return obj, nil
}

// decodeGroupObject is DecodeObject for a group body, whose "version" is
// the version to roll back to, not a field Marathon writes.
func decodeGroupObject(body []byte) (map[string]any, error) {
	var version any
	probe, err := DecodeObject(body)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) == nil {
		if v, ok := raw["version"]; ok {
			if err := json.Unmarshal(v, &version); err != nil {
				return nil, &SyntaxError{Msg: err.Error()}
			}
			probe["version"] = version
		}
	}
	return probe, nil
}

// FromObject decodes a generic JSON object into an App with Marathon's
// defaults for every field the object leaves out. Values of the wrong JSON
// type are a *ValidationError with one detail per path. Keys match field
// names exactly (encoding/json alone would also take "CPUS" for "cpus");
// keys FromObject does not know are ignored here and echoed by Render.
func FromObject(doc map[string]any) (*App, error) {
	var c typeChecker
	known := c.value(doc, appType, "")
	if err := c.v.err(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(known)
	if err != nil {
		return nil, &SyntaxError{Msg: err.Error()}
	}
	app := defaultApp()
	if err := json.Unmarshal(b, &app); err != nil {
		return nil, typeError(err)
	}
	return &app, nil
}

var (
	appType    = reflect.TypeOf(App{})
	envVarType = reflect.TypeOf(EnvVar{})
)

// typeChecker copies a generic JSON value, keeping only the keys a Go type
// knows (by their exact JSON name) and recording every value of the wrong
// JSON type with its path ("/container/volumes(0)/mode"). JSON null is
// accepted anywhere and leaves the default.
type typeChecker struct {
	v validator
}

func (c *typeChecker) bad(p, want string, got any) {
	if p == "" {
		p = "/"
	}
	c.v.add(p, "expected %s, got %s", want, jsonKind(got))
}

func (c *typeChecker) value(v any, t reflect.Type, p string) any {
	if v == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case rawMessageType:
		return v
	case envVarType:
		switch x := v.(type) {
		case string:
			return x
		case map[string]any:
			if s, ok := x["secret"].(string); ok {
				return map[string]any{"secret": s}
			}
		}
		c.bad(p, `a string or {"secret": name}`, v)
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			c.bad(p, "an object", v)
			return nil
		}
		fields := jsonFields(t)
		out := make(map[string]any, len(m))
		for k, fv := range m {
			if ft, known := fields[k]; known {
				out[k] = c.value(fv, ft, p+"/"+k)
			}
		}
		return out
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			c.bad(p, "an object", v)
			return nil
		}
		out := make(map[string]any, len(m))
		for k, ev := range m {
			out[k] = c.value(ev, t.Elem(), p+"/"+k)
		}
		return out
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			c.bad(p, "an array", v)
			return nil
		}
		out := make([]any, len(a))
		for i, ev := range a {
			out[i] = c.value(ev, t.Elem(), p+"("+strconv.Itoa(i)+")")
		}
		return out
	case reflect.String:
		if _, ok := v.(string); !ok {
			c.bad(p, "a string", v)
			return nil
		}
		return v
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.bad(p, "a boolean", v)
			return nil
		}
		return v
	case reflect.Float64, reflect.Float32:
		s, ok := numberText(v)
		if !ok {
			c.bad(p, "a number", v)
			return nil
		}
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			c.v.add(p, "number %s is out of range", truncate(s, 40))
			return nil
		}
		return json.Number(s)
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, ok := numberText(v)
		if !ok {
			c.bad(p, "an integer", v)
			return nil
		}
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return json.Number(s)
		}
		// Marathon (play-json) reads 1.0 or 1e2 as an integer too.
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			c.v.add(p, "expected an integer, got %s", truncate(s, 40))
			return nil
		}
		return json.Number(strconv.FormatInt(int64(f), 10))
	}
	return v
}

// numberText returns the literal of a JSON number, as DecodeObject (a
// json.Number) or a caller building a document (a float64 or an int)
// holds it.
func numberText(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return x.String(), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", false
		}
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	}
	return "", false
}

// jsonKind names the JSON type of a decoded value for an error message.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, float32, int, int64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// typeError turns a decoding error into a 422 detail with the JSON path.
func typeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := "/" + strings.ReplaceAll(te.Field, ".", "/")
		return &ValidationError{Details: []Detail{{
			Path:   path,
			Errors: []string{fmt.Sprintf("expected %s, got %s", goTypeName(te.Type.Kind().String()), te.Value)},
		}}}
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return &ValidationError{Details: []Detail{{Path: "/", Errors: []string{msg}}}}
}

func goTypeName(kind string) string {
	switch kind {
	case "float64", "float32":
		return "a number"
	case "int", "int64", "int32", "uint", "uint64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return kind
}

// checkDuplicates walks the token stream and refuses an object that has the
// same key twice, naming its path; encoding/json would silently keep the
// last one.
func checkDuplicates(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := walkValue(dec, "", 0); err != nil {
		return err
	}
	return nil
}

// maxDepth is how deeply objects and arrays may nest; an app definition
// needs about six levels.
const maxDepth = 64

func walkValue(dec *json.Decoder, path string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return &SyntaxError{Msg: err.Error()}
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxDepth {
		return &SyntaxError{Msg: fmt.Sprintf("objects and arrays nest deeper than %d levels", maxDepth)}
	}
	switch delim {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return &SyntaxError{Msg: err.Error()}
			}
			key, ok := kt.(string)
			if !ok {
				return &SyntaxError{Msg: "object key is not a string"}
			}
			p := path + "/" + key
			if seen[key] {
				return &ValidationError{Details: []Detail{{Path: p, Errors: []string{fmt.Sprintf("duplicate key %q", key)}}}}
			}
			seen[key] = true
			if err := walkValue(dec, p, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, path+"("+strconv.Itoa(i)+")", depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // closing delimiter
		return &SyntaxError{Msg: err.Error()}
	}
	return nil
}

// Render returns the JSON object of a normalized app: the typed fields,
// merged over the original document so fields mesolite does not know
// survive, at any depth. Known fields the typed app leaves out (legacy
// fields, defaults Marathon omits) are dropped.
func Render(app *App, doc map[string]any) (map[string]any, error) {
	b, err := json.Marshal(app)
	if err != nil {
		return nil, fmt.Errorf("marshal app: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var typed map[string]any
	if err := dec.Decode(&typed); err != nil {
		return nil, fmt.Errorf("decode app: %w", err)
	}
	// Marathon writes portDefinitions for host networking even when empty;
	// dropping "[]" would bring back the default port on the next parse.
	if app.NetworkMode() == NetworkHost && app.PortDefinitions != nil && len(app.PortDefinitions) == 0 {
		typed["portDefinitions"] = []any{}
	}
	out, _ := mergeTyped(doc, typed, appType).(map[string]any)
	return out, nil
}

var (
	rawMessageType = reflect.TypeOf(json.RawMessage{})
	marshalerType  = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
	fieldCache     sync.Map // reflect.Type -> map[string]reflect.Type
)

// mergeTyped overlays typed (the JSON of a Go value of type t) onto raw
// (what the user sent): typed wins; keys of raw objects that t does not
// know are kept; arrays of equal length merge element by element.
func mergeTyped(raw, typed any, t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType || t.Implements(marshalerType) {
		return typed
	}
	switch t.Kind() {
	case reflect.Struct:
		tm, ok1 := typed.(map[string]any)
		rm, ok2 := raw.(map[string]any)
		if !ok1 || !ok2 {
			return typed
		}
		fields := jsonFields(t)
		out := make(map[string]any, len(tm)+len(rm))
		for k, v := range tm {
			out[k] = v
		}
		for k, rv := range rm {
			ft, known := fields[k]
			if !known {
				out[k] = rv
				continue
			}
			if tv, ok := tm[k]; ok {
				out[k] = mergeTyped(rv, tv, ft)
			}
		}
		return out
	case reflect.Slice, reflect.Array:
		ts, ok1 := typed.([]any)
		rs, ok2 := raw.([]any)
		if !ok1 || !ok2 || len(ts) != len(rs) {
			return typed
		}
		out := make([]any, len(ts))
		for i := range ts {
			out[i] = mergeTyped(rs[i], ts[i], t.Elem())
		}
		return out
	}
	return typed
}

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	fieldCache.Store(t, out)
	return out
}

// Parse decodes, normalizes and validates an app definition in one step.
// It returns the app and its rendered JSON object.
func Parse(body []byte, opts Options) (*App, map[string]any, error) {
	doc, err := DecodeObject(body)
	if err != nil {
		return nil, nil, err
	}
	app, err := ParseObject(doc, opts)
	if err != nil {
		return nil, nil, err
	}
	out, err := Render(app, doc)
	if err != nil {
		return nil, nil, err
	}
	return app, out, nil
}

// ParseObject turns a decoded app definition into a normalized, valid App:
// FromObject, Normalize, Validate. doc is left as it is, for Render once
// the caller has filled in what it assigns (service ports).
func ParseObject(doc map[string]any, opts Options) (*App, error) {
	app, err := FromObject(doc)
	if err != nil {
		return nil, err
	}
	Normalize(app)
	if err := Validate(app, opts); err != nil {
		return nil, err
	}
	return app, nil
}
