package marathon

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
)

// Normalize fills the defaults that depend on other fields and folds legacy
// fields into their current form, as Marathon does before validation. It
// changes app in place and is idempotent. Each section of the app has its
// own step; the order matters where a later section reads an earlier one
// (ports read the network mode, upgradeStrategy the volumes).
func Normalize(app *App) {
	if app.ID != "" { // an app without id stays so, for Validate to say so
		app.ID = CanonicalID(app.ID)
	}
	normalizeCollections(app)

	// JSON null in a raw field means "not given".
	app.UnreachableStrategy = nullToNil(app.UnreachableStrategy)
	app.IPAddress = nullToNil(app.IPAddress)
	ip, ipOK := legacyIP(app.IPAddress)
	if ipOK {
		app.IPAddress = nil
	}
	if app.Container != nil {
		normalizeContainer(app.Container, ip)
	}
	normalizeNetworks(app, ip)
	normalizePorts(app)
	normalizeHealthChecks(app.HealthChecks)
	normalizeResidency(app)
	if app.KillSelection == "" {
		app.KillSelection = "YOUNGEST_FIRST"
	}
}

// normalizeCollections gives every list and map Marathon always renders
// its empty value, and canonical ids to dependencies.
func normalizeCollections(app *App) {
	if app.Env == nil {
		app.Env = map[string]EnvVar{}
	}
	if app.Labels == nil {
		app.Labels = map[string]string{}
	}
	if app.Constraints == nil {
		app.Constraints = [][]string{}
	}
	// Marathon < 1.5: "uris" are fetch entries with extract on.
	for _, u := range app.URIs {
		app.Fetch = append(app.Fetch, Fetch{URI: u, Extract: true})
	}
	app.URIs = nil
	if app.Fetch == nil {
		app.Fetch = []Fetch{}
	}
	if app.HealthChecks == nil {
		app.HealthChecks = []HealthCheck{}
	}
	if app.ReadinessChecks == nil {
		app.ReadinessChecks = []ReadinessCheck{}
	}
	if app.Dependencies == nil {
		app.Dependencies = []string{}
	}
	// A relative dependency is relative to the app's group, as Marathon's
	// AppNormalization resolves it (canonicalPath of the app's parent).
	for i, d := range app.Dependencies {
		if d != "" {
			app.Dependencies[i] = ResolveID(d, ParentID(app.ID))
		}
	}
	if app.Secrets == nil {
		app.Secrets = map[string]json.RawMessage{}
	}
}

// normalizeContainer fills container's defaults and folds Marathon < 1.5's
// docker.portMappings and ipAddress.discovery into portMappings.
func normalizeContainer(c *Container, ip *ipAddress) {
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
		// Marathon < 1.5: container.docker.portMappings.
		if len(c.PortMappings) == 0 && len(d.PortMappings) > 0 {
			c.PortMappings = d.PortMappings
		}
		d.PortMappings = nil
	}
	// Marathon < 1.5: ipAddress.discovery.ports are the container ports of
	// an IP-per-task app; they publish no host port.
	if ip != nil && ip.Discovery != nil && len(c.PortMappings) == 0 {
		for _, dp := range ip.Discovery.Ports {
			c.PortMappings = append(c.PortMappings, PortMapping{
				ContainerPort: dp.Number, Name: dp.Name, Protocol: dp.Protocol, Labels: dp.Labels,
			})
		}
	}
	for i := range c.Volumes {
		vol := &c.Volumes[i]
		vol.External = nullToNil(vol.External)
		if p := vol.Persistent; p != nil {
			if p.Type == "" {
				p.Type = "root"
			}
			if p.Constraints == nil {
				p.Constraints = [][]string{}
			}
		}
	}
}

// normalizeNetworks folds the legacy network fields into networks and
// gives a mode to every network (host when there is none).
func normalizeNetworks(app *App, ip *ipAddress) {
	legacyNetworks(app, ip)
	if len(app.Networks) == 0 {
		app.Networks = []Network{{Mode: NetworkHost}}
	}
	for i := range app.Networks {
		if app.Networks[i].Mode == "" {
			app.Networks[i].Mode = NetworkContainer
		}
	}
}

// normalizePorts gives host networking its port definitions (from the
// legacy "ports", or Marathon's one default port) and the port mappings of
// container networks their defaults.
func normalizePorts(app *App) {
	mode := app.NetworkMode()
	if mode == NetworkHost {
		// Marathon < 1.5: "ports": [0, 0] means two dynamic port
		// definitions, "ports": [] none.
		if app.PortDefinitions == nil && app.Ports != nil {
			app.PortDefinitions = make([]PortDefinition, 0, len(app.Ports))
			for _, p := range app.Ports {
				app.PortDefinitions = append(app.PortDefinitions, PortDefinition{Port: p, Protocol: "tcp"})
			}
		}
		if app.PortDefinitions == nil {
			// Marathon gives a host-networking app one port unless told
			// otherwise; "portDefinitions": [] means none.
			app.PortDefinitions = []PortDefinition{{Port: 0, Protocol: "tcp", Name: "default"}}
		}
	} else {
		// "portDefinitions": [] is harmless with container networks and
		// dropped; port definitions that ask for ports are left for
		// Validate to refuse.
		if len(app.PortDefinitions) == 0 {
			app.PortDefinitions = nil
		}
		app.RequirePorts = false
	}
	app.Ports = nil
	if app.Container == nil {
		return
	}
	for i := range app.Container.PortMappings {
		pm := &app.Container.PortMappings[i]
		if pm.HostPort == nil && mode == NetworkBridge {
			zero := 0
			pm.HostPort = &zero
		}
		if pm.Protocol == "" {
			pm.Protocol = "tcp"
		}
		if pm.Labels == nil {
			pm.Labels = map[string]string{}
		}
	}
}

// normalizeHealthChecks fills each check's defaults for its protocol.
func normalizeHealthChecks(checks []HealthCheck) {
	for i := range checks {
		hc := &checks[i]
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
}

// normalizeResidency fills upgradeStrategy, residency and
// unreachableStrategy, whose defaults depend on persistent volumes.
// Marathon's default upgradeStrategy is 1 / 1, and 0.5 / 0 for an app
// with persistent volumes (it never runs more instances than it has
// reservations). A field the user left out gets the same default.
func normalizeResidency(app *App) {
	resident := app.HasPersistentVolumes()
	us := &app.UpgradeStrategy
	if math.IsNaN(us.MinimumHealthCapacity) {
		us.MinimumHealthCapacity = 1
		if resident {
			us.MinimumHealthCapacity = 0.5
		}
	}
	if math.IsNaN(us.MaximumOverCapacity) {
		us.MaximumOverCapacity = 1
		if resident {
			us.MaximumOverCapacity = 0
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

// nullToNil turns a raw JSON null into nil, the "not given" of a raw field.
func nullToNil(raw json.RawMessage) json.RawMessage {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	return raw
}

// ipAddress is Marathon's < 1.5 "ipAddress" (IP per task).
type ipAddress struct {
	NetworkName string            `json:"networkName"`
	Labels      map[string]string `json:"labels"`
	Discovery   *struct {
		Ports []struct {
			Number   int               `json:"number"`
			Name     string            `json:"name"`
			Protocol string            `json:"protocol"`
			Labels   map[string]string `json:"labels"`
		} `json:"ports"`
	} `json:"discovery"`
}

// legacyIP decodes app.ipAddress. ok is false when the field is there but
// is not an ipAddress object; it then stays on the app for Validate.
func legacyIP(raw json.RawMessage) (ip *ipAddress, ok bool) {
	if len(raw) == 0 {
		return nil, true
	}
	ip = &ipAddress{}
	if err := json.Unmarshal(raw, ip); err != nil {
		return nil, false
	}
	return ip, true
}

// mesosBridgeName is the network name Marathon treats as the bridge
// (its --mesos_bridge_name default).
const mesosBridgeName = "mesos-bridge"

// legacyNetworks folds Marathon < 1.5's container.docker.network and
// ipAddress into networks, as Marathon's NetworkTranslation does. Given
// networks win (Marathon refuses the mix; mesolite ignores the old
// fields). A docker.network value Marathon does not know (NONE) stays for
// Validate to refuse.
func legacyNetworks(app *App, ip *ipAddress) {
	var d *Docker
	if app.Container != nil {
		d = app.Container.Docker
	}
	legacy := ""
	if d != nil {
		legacy = strings.ToUpper(d.Network)
	}
	var n *Network
	switch legacy {
	case "HOST":
		n = &Network{Mode: NetworkHost}
	case "BRIDGE":
		n = &Network{Mode: NetworkBridge}
	case "USER":
		n = &Network{Mode: NetworkContainer}
	case "":
		if ip != nil {
			n = &Network{Mode: NetworkContainer}
			if ip.NetworkName == mesosBridgeName {
				n = &Network{Mode: NetworkBridge}
			}
		}
	default:
		return
	}
	if d != nil {
		d.Network = ""
	}
	if n == nil || len(app.Networks) > 0 {
		return
	}
	if ip != nil && n.Mode != NetworkHost {
		if n.Mode == NetworkContainer {
			n.Name = ip.NetworkName
		}
		if len(ip.Labels) > 0 {
			n.Labels = ip.Labels
		}
	}
	app.Networks = []Network{*n}
}
