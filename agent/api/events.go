package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/mesolite/mesolite/agent"
)

// dropCheckInterval is how often a stream whose write is blocked looks
// whether the bus has dropped its subscriber.
const dropCheckInterval = 100 * time.Millisecond

// events serves GET /v2/events as Server-Sent Events: event_stream_attached
// first (every other stream gets it too, and event_stream_detached when the
// client leaves), then every event as it happens (filtered by ?event_type=,
// which may repeat), with a keep-alive comment when nothing happens.
//
// A slow client never holds anything up: the bus hands events over without
// blocking and drops a subscriber whose buffer (agent.SubscriberBuffer
// events) is full. The stream then ends at once, even when its goroutine
// is blocked writing to a client that stopped reading, and a write that
// blocks longer than EventWriteTimeout ends it too.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, msg("streaming is not supported by this connection"))
		return
	}
	q := r.URL.Query()
	bus := s.a.Bus()
	sub := bus.Subscribe(agent.SubscribeOptions{
		Types: q["event_type"], Light: q.Get("plan-format") == "light", Mesolite: embeds(q)["mesolite"],
	})
	defer func() {
		sub.Close()
		// As Marathon: the other streams hear of every client that leaves.
		bus.Publish("event_stream_detached", map[string]any{"remoteAddress": remoteIP(r)})
	}()

	rc := http.NewResponseController(w)
	// The server's read timeout bounds reading a request; a stream lasts
	// as long as its client stays.
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// Every stream hears of it, this one first: it subscribed before.
	bus.Publish("event_stream_attached", map[string]any{"remoteAddress": remoteIP(r)})
	flusher.Flush()

	// The watchdog cuts a blocked write short once the bus has dropped the
	// subscriber. Only the connection's deadline is touched, which is safe
	// from another goroutine.
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(dropCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if sub.Dropped() {
					_ = rc.SetWriteDeadline(time.Now())
				}
			}
		}
	}()

	keepAlive := time.NewTicker(s.cfg.KeepAlive)
	defer keepAlive.Stop()
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.EventWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		flusher.Flush()
		return !sub.Dropped()
	}
	defer func() {
		if sub.Dropped() {
			// Fail the server's final flush at once too: the client does
			// not read, and would hold this goroutine until the deadline.
			_ = rc.SetWriteDeadline(time.Now())
			s.log.Warn().Str("remote", r.RemoteAddr).Int("buffer", agent.SubscriberBuffer).Msg("event stream client too slow; disconnected")
		}
	}()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			if !write([]byte(":keep-alive\r\n\r\n")) {
				return
			}
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if !write(frame(ev.Type, ev.For(sub))) {
				return
			}
		}
	}
}

func frame(typ string, data []byte) []byte {
	return []byte(fmt.Sprintf("event: %s\r\ndata: %s\r\n\r\n", typ, data))
}
