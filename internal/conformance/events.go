package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
)

// marathonEvents are the event types Marathon has that mesolite may send
// to any stream; mesoliteEvents are mesolite's own, sent only to streams
// that ask for them (by name in ?event_type=, or with ?embed=mesolite),
// because Marathon clients refuse event types they do not know.
var (
	marathonEvents = map[string]bool{
		"event_stream_attached": true, "event_stream_detached": true, "api_post_event": true,
		"status_update_event": true, "instance_changed_event": true, "instance_health_changed_event": true,
		"health_status_changed_event": true, "failed_health_check_event": true, "unhealthy_instance_kill_event": true,
		"add_health_check_event": true, "remove_health_check_event": true, "group_change_success": true,
		"group_change_failed": true, "app_terminated_event": true, "deployment_info": true,
		"deployment_success": true, "deployment_failed": true, "deployment_step_success": true,
		"deployment_step_failure": true,
	}
	mesoliteEvents = map[string]bool{
		"mesolite_recovered_event": true, "volume_usage_warning_event": true,
	}
)

// CheckEvent validates one event of a /v2/events stream opened with the
// query streamQuery: its type must be one the stream may receive, and its
// data must conform to the type's schema.
func (c *Checker) CheckEvent(typ string, data []byte, streamQuery url.Values) error {
	c.events.Add(1)
	what := "event " + typ
	if streamQuery == nil {
		streamQuery = url.Values{}
	}
	asked := map[string]bool{}
	for _, t := range streamQuery["event_type"] {
		asked[t] = true
	}
	switch {
	case len(asked) > 0 && !asked[typ]:
		return &Mismatch{What: what, Where: "event", Why: fmt.Sprintf("the stream asked only for %v", streamQuery["event_type"]), Body: data}
	case mesoliteEvents[typ]:
		if !asked[typ] && !mesoliteAsked(streamQuery) {
			return &Mismatch{What: what, Where: "event", Why: "mesolite's own event type on a stream that did not ask for it (Marathon clients refuse unknown types)", Body: data}
		}
	case !marathonEvents[typ]:
		return &Mismatch{What: what, Where: "event", Why: "Marathon has no such event type and no schema describes it", Body: data}
	}
	var head struct {
		EventType string `json:"eventType"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&head); err != nil {
		return &Mismatch{What: what, Where: "data", Why: "not JSON: " + err.Error(), Body: data}
	}
	if head.EventType != typ {
		return &Mismatch{What: what, Where: "/eventType", Why: fmt.Sprintf("%q differs from the SSE event name", head.EventType), Body: data}
	}
	key, gen := eventSchema(typ, streamQuery.Get("plan-format") == "light")
	s, err := c.schema(key, gen)
	if err != nil {
		return &Mismatch{What: what, Where: "schema", Why: err.Error(), Body: data}
	}
	return validate(what, s, data)
}

// eventSchema returns the schema of an event type. The deployment events
// are generated: their plan is the full one or, on a stream that asked for
// ?plan-format=light, the light one.
func eventSchema(typ string, light bool) (string, map[string]any) {
	plan := ref("deployment.json#/$defs/plan")
	key := "event-" + typ
	if light {
		plan = ref("deployment.json#/$defs/lightPlan")
		key += "-light"
	}
	switch typ {
	case "deployment_success", "deployment_failed":
		props := map[string]any{"eventType": map[string]any{"const": typ}, "plan": plan}
		if typ == "deployment_success" {
			props["reason"] = false
		}
		return key, map[string]any{
			"$ref": base + "events.json#/$defs/deploymentEnd", "properties": props, "unevaluatedProperties": false,
		}
	case "deployment_info", "deployment_step_success", "deployment_step_failure":
		return key, map[string]any{
			"$ref":                  base + "events.json#/$defs/deploymentStep",
			"properties":            map[string]any{"eventType": map[string]any{"const": typ}, "plan": plan},
			"unevaluatedProperties": false,
		}
	}
	return "events.json#/$defs/" + typ, nil
}
