package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// parseJSONItem reads one "key=value" of app update as the Python DC/OS
// CLI does (dcos/jsonitem.py without a schema): surrounding quotes are
// stripped, then the value is the first of an integer, a number, a
// boolean, a JSON array, a JSON object or a string that it parses as;
// "null" is null.
func parseJSONItem(item string) (string, any, error) {
	key, raw, ok := strings.Cut(item, "=")
	if !ok || key == "" {
		return "", nil, userErrorf("'%s' is not a valid json-item", item)
	}
	return key, jsonItemValue(raw), nil
}

func jsonItemValue(raw string) any {
	v := raw
	if len(v) >= 1 && ((strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'")) || (strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`))) {
		if len(v) == 1 {
			v = ""
		} else {
			v = v[1 : len(v)-1]
		}
	}
	if v == "null" {
		return nil
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && !strings.ContainsAny(v, "xX_") {
		return f
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if t := bytes.TrimSpace([]byte(v)); len(t) > 0 && (t[0] == '[' || t[0] == '{') && json.Valid(t) {
		return json.RawMessage(t)
	}
	return v
}
