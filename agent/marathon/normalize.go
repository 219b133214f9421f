package marathon

import (
	"encoding/json"
	"strings"
)

// Normalize fills the defaults that depend on other fields and folds legacy
// fields into their current form, as Marathon does before validation. It
// changes app in place and is idempotent.
func Normalize(app *App) {
	app.ID = CanonicalID(app.ID)

	if app.Env == nil {
		app.Env = map[string]EnvVar{}
	}
	if app.Labels == nil {
		app.Labels = map[string]string{}
	}
	if app.Constraints == nil {
		app.Constraints = [][]string{}
	}
	if app.Fetch == nil {
		app.Fetch = []Fetch{}
	}
	if app.HealthChecks == nil {
		app.HealthChecks = []HealthCheck{}
	}
	if app.ReadinessChecks == nil {
		app.ReadinessChecks = []json.RawMessage{}
	}
	if app.Dependencies == nil {
		app.Dependencies = []string{}
	}
	if app.Secrets == nil {
		app.Secrets = map[string]json.RawMessage{}
	}

	if c := app.Container; c != nil {
		if c.Type == "" {
			c.Type = "DOCKER"
		}
		if c.Volumes == nil {
			c.Volumes = []Volume{}
		}
		if d := c.Docker; d != nil {
			if d.Parameters == nil {
				d.Parameters = []Parameter{}
			}
			// Marathon < 1.5: container.docker.network and portMappings.
			if len(app.Networks) == 0 {
				switch strings.ToUpper(d.Network) {
				case "BRIDGE":
					app.Networks = []Network{{Mode: NetworkBridge}}
				case "HOST":
					app.Networks = []Network{{Mode: NetworkHost}}
				case "USER":
					app.Networks = []Network{{Mode: NetworkContainer}}
				}
			}
			if len(c.PortMappings) == 0 && len(d.PortMappings) > 0 {
				c.PortMappings = d.PortMappings
			}
			d.Network = ""
			d.PortMappings = nil
		}
		for i := range c.Volumes {
			if p := c.Volumes[i].Persistent; p != nil {
				if p.Type == "" {
					p.Type = "root"
				}
				if p.Constraints == nil {
					p.Constraints = [][]string{}
				}
			}
		}
	}
	if len(app.Networks) == 0 {
		app.Networks = []Network{{Mode: NetworkHost}}
	}
	for i := range app.Networks {
		if app.Networks[i].Mode == "" {
			app.Networks[i].Mode = NetworkContainer
		}
	}

	mode := app.NetworkMode()
	if mode == NetworkHost {
		// Marathon < 1.5: "ports": [0, 0] means two dynamic port definitions.
		if app.PortDefinitions == nil && app.Ports != nil {
			for _, p := range app.Ports {
				app.PortDefinitions = append(app.PortDefinitions, PortDefinition{Port: p, Protocol: "tcp"})
			}
		}
		if app.PortDefinitions == nil {
			// Marathon gives a host-networking app one port unless told
			// otherwise; "portDefinitions": [] means none.
			app.PortDefinitions = []PortDefinition{{Port: 0, Protocol: "tcp", Name: "default"}}
		}
	}
	app.Ports = nil
	app.IPAddress = nil
	if app.Container != nil {
		for i := range app.Container.PortMappings {
			pm := &app.Container.PortMappings[i]
			if pm.HostPort == nil && mode == NetworkBridge {
				zero := 0
				pm.HostPort = &zero
			}
			if pm.Labels == nil {
				pm.Labels = map[string]string{}
			}
		}
	}
	if mode != NetworkHost {
		app.PortDefinitions = nil
		app.RequirePorts = false
	}

	for i := range app.HealthChecks {
		hc := &app.HealthChecks[i]
		hc.Protocol = strings.ToUpper(hc.Protocol)
		switch hc.Protocol {
		case ProtoHTTP, ProtoHTTPS, ProtoMesosHTTP, ProtoMesosHTTPS:
			if hc.Path == "" {
				hc.Path = "/"
			}
		}
		switch hc.Protocol {
		case ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoMesosHTTP, ProtoMesosHTTPS, ProtoMesosTCP:
			if hc.PortIndex == nil && hc.Port == nil {
				zero := 0
				hc.PortIndex = &zero
			}
		}
		switch hc.Protocol {
		case ProtoHTTP, ProtoHTTPS:
			if hc.IgnoreHTTP1xx == nil {
				f := false
				hc.IgnoreHTTP1xx = &f
			}
		default:
			hc.IgnoreHTTP1xx = nil
		}
		if hc.IPProtocol == "" {
			hc.IPProtocol = "IPv4"
		}
	}

	resident := app.HasPersistentVolumes()
	if app.UpgradeStrategy.MinimumHealthCapacity < 0 || app.UpgradeStrategy.MaximumOverCapacity < 0 {
		if resident {
			app.UpgradeStrategy = UpgradeStrategy{MinimumHealthCapacity: 0.5, MaximumOverCapacity: 0}
		} else {
			app.UpgradeStrategy = UpgradeStrategy{MinimumHealthCapacity: 1, MaximumOverCapacity: 1}
		}
	}
	if resident {
		if app.Residency == nil {
			app.Residency = &Residency{RelaunchEscalationTimeoutSeconds: 3600, TaskLostBehavior: "WAIT_FOREVER"}
		}
		if len(app.UnreachableStrategy) == 0 {
			app.UnreachableStrategy = json.RawMessage(`"disabled"`)
		}
	} else if len(app.UnreachableStrategy) == 0 {
		app.UnreachableStrategy = json.RawMessage(`{"inactiveAfterSeconds":300,"expungeAfterSeconds":600}`)
	}
	if app.KillSelection == "" {
		app.KillSelection = "YOUNGEST_FIRST"
	}
}

// CanonicalID makes an app id absolute and drops empty segments and a
// trailing slash: "db/pg/" becomes "/db/pg". It does not validate.
func CanonicalID(id string) string {
	parts := strings.Split(id, "/")
	out := parts[:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return "/" + strings.Join(out, "/")
}

// SafeID is the app id without the leading slash, its segments joined by
// "_": "/db/pg" becomes "db_pg". It is safe as a file name and a task id
// prefix because "_" cannot appear in a valid id.
func SafeID(id string) string {
	return strings.ReplaceAll(strings.TrimPrefix(CanonicalID(id), "/"), "/", "_")
}
