package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/mesolite/mesolite/agent"
)

// events serves GET /v2/events as Server-Sent Events: event_stream_attached
// first, then every event as it happens (filtered by ?event_type=, which
// may repeat), with a keep-alive comment when nothing happens. A client
// that falls behind is dropped by the bus and its stream ends.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, msg("streaming is not supported by this connection"))
		return
	}
	types := r.URL.Query()["event_type"]
	sub := s.a.Bus().Subscribe(types)
	defer sub.Close()

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if sub.Wants("event_stream_attached") {
		s.a.Bus().PublishTo(sub, "event_stream_attached", map[string]any{"remoteAddress": r.RemoteAddr})
	}
	flusher.Flush()

	keepAlive := time.NewTicker(s.cfg.KeepAlive)
	defer keepAlive.Stop()
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(b); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
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
				if sub.Dropped() {
					s.log.Warn().Str("remote", r.RemoteAddr).Msg("event stream client too slow; disconnected")
				}
				return
			}
			if !write(frame(ev)) {
				return
			}
		}
	}
}

func frame(ev agent.Event) []byte {
	return []byte(fmt.Sprintf("event: %s\r\ndata: %s\r\n\r\n", ev.Type, ev.Data))
}
