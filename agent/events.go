package agent

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/metrics"
)

// Event is one event of the bus, ready to be written as Server-Sent Events.
type Event struct {
	Type string
	Data []byte // JSON, with eventType and timestamp
	// Light is the event with a light deployment plan (no original and
	// target groups), for streams opened with ?plan-format=light; nil when
	// the event has no plan.
	Light []byte
}

// For returns the event's JSON as the subscriber asked for it.
func (e Event) For(s *Subscription) []byte {
	if s.light && e.Light != nil {
		return e.Light
	}
	return e.Data
}

// mesoliteEvents are mesolite's own event types. Marathon clients refuse
// event types they do not know (marathon-python's event factory raises on
// one), so a stream receives these only when it asks for them: by name in
// ?event_type=, or with ?embed=mesolite.
var mesoliteEvents = map[string]bool{
	"mesolite_recovered_event":   true,
	"volume_usage_warning_event": true,
}

// Bus fans events out to subscribers. Publishing never blocks: each
// subscriber has a bounded buffer, and one that falls behind is dropped.
type Bus struct {
	log     zerolog.Logger
	metrics *metrics.Metrics
	mu      sync.Mutex
	subs    map[*Subscription]struct{}
	closed  bool
}

// Subscription receives events on C until it is closed, by Close, by the
// bus when the subscriber falls behind (Dropped then reports true), or
// when the agent stops.
type Subscription struct {
	C        chan Event
	types    map[string]bool
	light    bool
	mesolite bool
	bus      *Bus
	dropped  bool
	once     sync.Once
}

// SubscribeOptions say what a subscriber receives.
type SubscribeOptions struct {
	// Types are the event types wanted; all of Marathon's when empty.
	Types []string
	// Light: deployment plans without their original and target groups
	// (/v2/events?plan-format=light).
	Light bool
	// Mesolite: mesolite's own event types too (?embed=mesolite).
	Mesolite bool
}

// SubscriberBuffer is how many events a subscriber may fall behind before
// it is dropped.
const SubscriberBuffer = 1024

func newBus(log zerolog.Logger, m *metrics.Metrics) *Bus {
	return &Bus{log: log, metrics: m, subs: map[*Subscription]struct{}{}}
}

// Subscribe registers a subscriber.
func (b *Bus) Subscribe(opts SubscribeOptions) *Subscription {
	s := &Subscription{C: make(chan Event, SubscriberBuffer), bus: b, light: opts.Light, mesolite: opts.Mesolite}
	if len(opts.Types) > 0 {
		s.types = map[string]bool{}
		for _, t := range opts.Types {
			s.types[t] = true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.C)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Wants reports whether the subscriber asked for events of type t.
func (s *Subscription) Wants(t string) bool {
	if s.types != nil {
		return s.types[t]
	}
	return !mesoliteEvents[t] || s.mesolite
}

// Dropped reports whether the bus dropped the subscriber for being slow.
func (s *Subscription) Dropped() bool {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.dropped
}

// Close unsubscribes.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	s.bus.remove(s)
}

func (b *Bus) remove(s *Subscription) {
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		s.once.Do(func() { close(s.C) })
	}
}

// Subscribers is the number of subscribers.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// publish sends an event to every subscriber that wants it. payload gets
// eventType and timestamp added.
func (b *Bus) publish(typ string, payload map[string]any) {
	b.publishPlan(typ, func(bool) map[string]any { return payload })
}

// publishPlan sends an event whose payload depends on the plan format the
// subscriber asked for (render(light)); each form is made only when a
// subscriber wants it, so an event nobody listens to costs nothing.
func (b *Bus) publishPlan(typ string, render func(light bool) map[string]any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	full, light := false, false
	for s := range b.subs {
		if s.Wants(typ) {
			full = full || !s.light
			light = light || s.light
		}
	}
	if !full && !light {
		return
	}
	ts := formatTime(time.Now())
	encode := func(l bool) []byte {
		payload := render(l)
		payload["eventType"] = typ
		payload["timestamp"] = ts
		data, err := json.Marshal(payload)
		if err != nil {
			b.log.Error().Err(err).Str("event", typ).Msg("marshal event")
			return nil
		}
		return data
	}
	ev := Event{Type: typ}
	if full {
		ev.Data = encode(false)
	}
	if light {
		ev.Light = encode(true)
		if ev.Data == nil {
			ev.Data = ev.Light
		}
	}
	if ev.Data == nil {
		return
	}
	for s := range b.subs {
		if !s.Wants(typ) {
			continue
		}
		select {
		case s.C <- ev:
		default:
			s.dropped = true
			b.metrics.EventDropped()
			b.remove(s)
			b.log.Warn().Int("buffer", SubscriberBuffer).Msg("event subscriber fell behind; dropped")
		}
	}
}

// Publish sends an event from outside the loop (the API's api_post_event).
func (b *Bus) Publish(typ string, payload map[string]any) { b.publish(typ, payload) }

func (b *Bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.remove(s)
	}
}

// emitStatus publishes a task's state change: Marathon's
// status_update_event and instance_changed_event.
func (a *Agent) emitStatus(ap *app, inst *instance, t *Task) {
	ports := []int{}
	if t.active() && inst.rec.Reservation != nil {
		ports = append(ports, inst.rec.Reservation.HostPorts...)
	}
	ips := []map[string]string{}
	if t.IPAddress != "" {
		ips = append(ips, map[string]string{"ipAddress": t.IPAddress, "protocol": "IPv4"})
	}
	a.bus.publish("status_update_event", map[string]any{
		"slaveId": a.ident.AgentID, "taskId": t.ID, "taskStatus": t.State, "message": t.Message,
		"appId": ap.id(), "host": a.cfg.Hostname, "ipAddresses": ips, "ports": ports,
		"version": formatTime(t.Version),
	})
	a.bus.publish("instance_changed_event", map[string]any{
		"instanceId": inst.id(), "condition": condition(t.State), "runSpecId": ap.id(),
		"agentId": a.ident.AgentID, "host": a.cfg.Hostname, "runSpecVersion": formatTime(t.Version),
	})
}

// condition is Marathon's name for a task state in instance events.
func condition(state string) string {
	switch state {
	case TaskStaging:
		return "Staging"
	case TaskStarting:
		return "Starting"
	case TaskRunning:
		return "Running"
	case TaskKilling:
		return "Killing"
	case TaskKilled:
		return "Killed"
	case TaskFinished:
		return "Finished"
	case TaskFailed:
		return "Failed"
	case TaskError:
		return "Error"
	}
	return "Unknown"
}
