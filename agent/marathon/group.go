package marathon

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// GroupUpdate is the body of POST, PUT and PATCH /v2/groups[/{id}]
// (types/group.raml GroupUpdate): a group with its apps, its subgroups and
// its dependencies, or only a version to roll back to, or only a factor to
// scale its apps by. A field that is absent is nil: Marathon's
// GroupApiService keeps what the group has for it (apps, groups,
// dependencies) and replaces it when it is given, an empty list included.
type GroupUpdate struct {
	ID *string
	// Apps are the apps' definitions as given, ids possibly relative.
	Apps []map[string]any
	// AppsGiven, GroupsGiven and DependenciesGiven: the field was in the
	// body (even as []).
	AppsGiven         bool
	Groups            []*GroupUpdate
	GroupsGiven       bool
	Dependencies      []string
	DependenciesGiven bool
	ScaleBy           *float64
	Version           *string
	EnforceRole       *bool
	// Path is where the group is in the body, for 422 details ("" for
	// the top, "/groups(1)" for a subgroup).
	Path string
}

// DecodeGroupUpdate reads a group body: malformed JSON is a *SyntaxError,
// a field of the wrong type a *ValidationError naming its path. The apps
// are left as objects, to be decoded as apps once their ids are resolved.
func DecodeGroupUpdate(body []byte) (*GroupUpdate, error) {
	doc, err := decodeGroupObject(body)
	if err != nil {
		return nil, err
	}
	var v validator
	g := groupUpdate(&v, doc, "")
	if err := v.err(); err != nil {
		return nil, err
	}
	return g, nil
}

var groupKeys = map[string]bool{
	"id": true, "apps": true, "groups": true, "dependencies": true, "scaleBy": true, "version": true,
	"enforceRole": true, "pods": true,
}

func groupUpdate(v *validator, doc map[string]any, path string) *GroupUpdate {
	g := &GroupUpdate{Path: path}
	for k, val := range doc {
		if val == nil {
			continue // null is a field not given, as in an AppUpdate
		}
		p := path + "/" + k
		switch k {
		case "id":
			s, ok := val.(string)
			if !ok {
				v.add(p, "expected a string")
				continue
			}
			g.ID = &s
		case "apps":
			g.AppsGiven = true
			list, ok := val.([]any)
			if !ok {
				v.add(p, "expected an array of apps")
				continue
			}
			for i, x := range list {
				obj, ok := x.(map[string]any)
				if !ok {
					v.add(fmt.Sprintf("%s(%d)", p, i), "expected an app object")
					continue
				}
				g.Apps = append(g.Apps, obj)
			}
		case "groups":
			g.GroupsGiven = true
			list, ok := val.([]any)
			if !ok {
				v.add(p, "expected an array of groups")
				continue
			}
			for i, x := range list {
				obj, ok := x.(map[string]any)
				if !ok {
					v.add(fmt.Sprintf("%s(%d)", p, i), "expected a group object")
					continue
				}
				g.Groups = append(g.Groups, groupUpdate(v, obj, fmt.Sprintf("%s(%d)", p, i)))
			}
		case "dependencies":
			g.DependenciesGiven = true
			g.Dependencies = stringList(v, val, p)
		case "scaleBy":
			f, ok := number(val)
			if !ok || f < 0 || math.IsInf(f, 0) {
				v.add(p, "expected a number of 0 or more")
				continue
			}
			g.ScaleBy = &f
		case "version":
			s, ok := val.(string)
			if !ok {
				v.add(p, "expected a version (a time such as 2026-01-02T03:04:05.678Z)")
				continue
			}
			g.Version = &s
		case "enforceRole":
			b, ok := val.(bool)
			if !ok {
				v.add(p, "expected true or false")
				continue
			}
			g.EnforceRole = &b
		case "pods":
			if list, ok := val.([]any); !ok || len(list) > 0 {
				v.add(p, "pods are not supported by mesolite: deploy each container as an app")
			}
		default:
			if !groupKeys[k] {
				v.add(p, "unknown field of a group: expected id, apps, groups, dependencies, scaleBy or version")
			}
		}
	}
	return g
}

func stringList(v *validator, val any, p string) []string {
	list, ok := val.([]any)
	if !ok {
		v.add(p, "expected an array of ids")
		return nil
	}
	out := make([]string, 0, len(list))
	for i, x := range list {
		s, ok := x.(string)
		if !ok {
			v.add(fmt.Sprintf("%s(%d)", p, i), "expected a string")
			continue
		}
		out = append(out, s)
	}
	return out
}

func number(val any) (float64, bool) {
	switch n := val.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
}

// ResolveID resolves an id against the group it is given in, as Marathon's
// PathId.canonicalPath does: an absolute id stands as it is, a relative one
// is taken from base; "." and ".." segments are resolved. The result is
// canonical ("/" for the root).
func ResolveID(id, base string) string {
	var parts []string
	if !strings.HasPrefix(id, "/") {
		parts = strings.Split(strings.Trim(base, "/"), "/")
	}
	for _, seg := range strings.Split(id, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
		default:
			parts = append(parts, seg)
		}
	}
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return "/" + strings.Join(out, "/")
}

// ParentID is the id of the group an id is in ("/" for a top-level one).
func ParentID(id string) string {
	id = CanonicalID(id)
	i := strings.LastIndex(id, "/")
	if i <= 0 {
		return "/"
	}
	return id[:i]
}

// ValidateGroupID checks a group id: "/" or an id whose segments are
// valid (the rules of app ids, without their reserved last segments).
func ValidateGroupID(p, id string) (string, error) {
	canon := CanonicalID(id)
	if canon == "/" {
		return canon, nil
	}
	var v validator
	for _, seg := range strings.Split(strings.TrimPrefix(canon, "/"), "/") {
		if !idSegment.MatchString(seg) {
			v.add(p, "group id %s: each segment must be lowercase letters, digits, hyphens and dots (%s)", canon, idSegment.String())
			break
		}
	}
	return canon, v.err()
}
