package ui

import (
	"encoding/json"

	"github.com/mesolite/mesolite/agent/marathon"
)

// Templates rendered with Marathon's defaults, from which the dashboard
// tells the fields a user set (those that differ from the defaults) from
// the ones mesolite filled in. One element of each array stands for every
// element; the fields a template must give (an image, a container path)
// are removed afterwards, so they always count as set.
const (
	hostTemplate = `{"id":"/x","cmd":"c","healthChecks":[{"protocol":"HTTP"}],"portDefinitions":[{"port":0}]}`

	residentTemplate = `{"id":"/x","container":{"type":"DOCKER","docker":{"image":"i"},
		"volumes":[{"containerPath":"d","mode":"RW","persistent":{"size":1}}],
		"portMappings":[{"containerPort":80}]},
		"networks":[{"mode":"container/bridge"}],"healthChecks":[{"protocol":"HTTP"}]}`
)

// required are the template fields a user always gives, in Marathon's
// path notation with (0) for any array element.
var required = [][]string{
	{"id"}, {"cmd"},
	{"container", "type"}, {"container", "docker", "image"},
	{"container", "volumes", "(0)", "containerPath"}, {"container", "volumes", "(0)", "mode"},
	{"container", "volumes", "(0)", "persistent", "size"},
	{"container", "portMappings", "(0)", "containerPort"},
	{"healthChecks", "(0)", "protocol"}, {"portDefinitions", "(0)", "port"},
	{"networks"},
}

// defaultsJSON is /ui/defaults.json: {"host": …, "resident": …}, the
// defaults of an app without and with persistent volumes.
func defaultsJSON() []byte {
	host := render(hostTemplate)
	resident := render(residentTemplate)
	// Either kind may have the other's parts.
	if host != nil && resident != nil {
		host["container"] = resident["container"]
		resident["portDefinitions"] = host["portDefinitions"]
	}
	for _, doc := range []map[string]any{host, resident} {
		for _, p := range required {
			remove(doc, p)
		}
	}
	b, err := json.Marshal(map[string]any{"host": host, "resident": resident})
	if err != nil {
		return []byte("{}")
	}
	return b
}

// render is the definition Marathon would store for a template, or nil
// if the template no longer decodes (the dashboard then highlights every
// field, and TestDefaults fails).
func render(tmpl string) map[string]any {
	spec, doc, err := marathon.Decode([]byte(tmpl))
	if err != nil {
		return nil
	}
	marathon.Normalize(spec)
	out, err := marathon.Render(spec, doc)
	if err != nil {
		return nil
	}
	// Through JSON once, so the values are plain (no json.Number).
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	var plain map[string]any
	if json.Unmarshal(b, &plain) != nil {
		return nil
	}
	return plain
}

// remove deletes the value at path p, where "(0)" is the first element of
// an array.
func remove(doc map[string]any, p []string) {
	var cur any = doc
	for i, k := range p {
		last := i == len(p)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				delete(c, k)
				return
			}
			cur = c[k]
		case []any:
			if k != "(0)" || len(c) == 0 || last {
				return
			}
			cur = c[0]
		default:
			return
		}
	}
}
