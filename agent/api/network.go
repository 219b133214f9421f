package api

import (
	"net/http"

	"github.com/mesolite/mesolite/agent"
)

// networkJSON is the network data plane in /mesolite/v1/status.
type networkJSON struct {
	Mode         string `json:"mode"`
	Off          string `json:"off,omitempty"`
	Table        string `json:"table,omitempty"`
	Helper       string `json:"helper,omitempty"`
	AgentAddress string `json:"agentAddress,omitempty"`
	NamedRange   string `json:"namedVipRange,omitempty"`
	DNSAddress   string `json:"dnsAddress,omitempty"`
	DNSListen    string `json:"dnsListen,omitempty"`
	Applied      string `json:"lastApplied,omitempty"`
	Error        string `json:"lastError,omitempty"`
	VIPs         int    `json:"vips"`
}

func renderNetwork(v agent.NetworkView) networkJSON {
	out := networkJSON{Mode: v.Mode, Off: v.Off, Table: v.Table, Helper: v.Helper, AgentAddress: v.AgentAddress,
		NamedRange: v.NamedRange, DNSAddress: v.DNSAddress, DNSListen: v.DNSListen, Error: v.Error, VIPs: v.VIPs}
	if !v.Applied.IsZero() {
		out.Applied = v.Applied.Format("2006-01-02T15:04:05.000Z")
	}
	return out
}

// vipJSON is one VIP label of an app in /mesolite/v1/vips.
type vipJSON struct {
	AppID    string        `json:"appId"`
	Path     string        `json:"path"`
	Label    string        `json:"label"`
	Address  string        `json:"address,omitempty"`
	Name     string        `json:"name,omitempty"`
	Port     int           `json:"port,omitempty"`
	Protocol string        `json:"protocol,omitempty"`
	Served   bool          `json:"served"`
	Reason   string        `json:"reason,omitempty"`
	Backends []backendJSON `json:"backends"`
}

type backendJSON struct {
	TaskID  string `json:"taskId"`
	Address string `json:"address,omitempty"`
	State   string `json:"state"`
	InRules bool   `json:"inRules"`
}

func renderVIP(v agent.VIPView) vipJSON {
	out := vipJSON{AppID: v.AppID, Path: v.Path, Label: v.Label, Address: v.Address, Name: v.Name, Port: v.Port,
		Protocol: v.Protocol, Served: v.Served, Reason: v.Reason, Backends: make([]backendJSON, 0, len(v.Backends))}
	for _, b := range v.Backends {
		out.Backends = append(out.Backends, backendJSON{TaskID: b.TaskID, Address: b.Address, State: b.State, InRules: b.InRules})
	}
	return out
}

// vips serves GET /mesolite/v1/vips: every VIP of every app, its backends
// and their state (?app= keeps one app's).
func (s *Server) vips(w http.ResponseWriter, r *http.Request) {
	app := r.URL.Query().Get("app")
	out := []vipJSON{}
	for _, v := range s.a.VIPs() {
		if app == "" || v.AppID == app {
			out = append(out, renderVIP(v))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"vips": out, "network": renderNetwork(s.a.Network())})
}

// addVIPs adds an app's VIPs to its mesolite fields (app show): whether
// each is served, and why not.
func (s *Server) addVIPs(app map[string]any, id string) {
	var out []vipJSON
	for _, v := range s.a.VIPs() {
		if v.AppID == id {
			out = append(out, renderVIP(v))
		}
	}
	if len(out) > 0 {
		app["vips"] = out
	}
}
