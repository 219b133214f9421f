package marathon

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	dockerrt "github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/fetch"
)

// TestValidate has one row per rule: an overlay on baseApp (host
// networking, image img:1), the options, and the detail it must produce.
// Rows without a path must validate.
func TestValidate(t *testing.T) {
	roots := Options{HostPathRoots: []string{"/srv/data", "/var/log/"}}
	// As the agent sets them: the fetcher's and the host's checkers.
	fetchRoots := Options{CheckFetchURI: func(u string) error { return fetch.CheckURI(u, []string{"/srv/data"}) }}
	withUsers := Options{CheckUser: func(name string) error {
		if name == "nobody" {
			return nil
		}
		return fmt.Errorf("user %q does not exist on this machine: create it (useradd %s) or change the app's \"user\"", name, name)
	}}
	ports := Options{PortMin: 31000, PortMax: 31009}
	vol := func(v string) string { // baseApp's container with one volume
		return `{"container":{"type":"DOCKER","docker":{"image":"img:1"},"volumes":[` + v + `]}}`
	}
	pv := func(v string) string { // one persistent volume and v
		if v != "" {
			v = "," + v
		}
		return vol(`{"containerPath":"data","mode":"RW","persistent":{"size":10}}` + v)
	}
	withPV := func(fields string) string { // fields beside a container with a persistent volume
		return `{` + fields + `,"container":{"docker":{"image":"img:1"},"volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":10}}]}}`
	}
	bridge := func(mappings string) string {
		return `{"networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"img:1"},"portMappings":[` + mappings + `]}}`
	}
	hc := func(check string) string { return `{"healthChecks":[` + check + `]}` }
	docker := func(d string) string { return `{"container":{"docker":{"image":"img:1",` + d + `}}}` }
	for _, tc := range []struct {
		name    string
		overlay string
		opts    Options
		path    string
		msg     string
	}{
		{name: "base app", overlay: `{}`},

		// id (SPEC §2, ref §7.2)
		{name: "id relative and nested", overlay: `{"id":"prod/db/pg/"}`},
		{name: "id with dotted segment", overlay: `{"id":"/eu.prod/web-1"}`},
		{name: "id of 150 characters", overlay: `{"id":"/` + strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63) + "/" + strings.Repeat("c", 21) + `"}`},
		{name: "id missing", overlay: `{"id":null}`, path: "/id", msg: "An app id is required"},
		{name: "id empty", overlay: `{"id":""}`, path: "/id", msg: "An app id is required"},
		{name: "id root", overlay: `{"id":"/"}`, path: "/id", msg: "may not be the root group"},
		{name: "id only slashes", overlay: `{"id":"//"}`, path: "/id", msg: "root"},
		{name: "id upper case", overlay: `{"id":"/MyApp"}`, path: "/id", msg: "must fully match regular expression"},
		{name: "id underscore", overlay: `{"id":"/my_app"}`, path: "/id", msg: "must fully match regular expression"},
		{name: "id segment starting with a dash", overlay: `{"id":"/-web"}`, path: "/id", msg: "must fully match regular expression"},
		{name: "id segment ending with a dot", overlay: `{"id":"/web."}`, path: "/id", msg: "must fully match regular expression"},
		{name: "id with a space", overlay: `{"id":"/my app"}`, path: "/id", msg: "must fully match regular expression"},
		{name: "id segment of 64 characters", overlay: `{"id":"/` + strings.Repeat("a", 64) + `"}`, path: "/id", msg: "at most 63 characters"},
		{name: "id reserved restart", overlay: `{"id":"/web/restart"}`, path: "/id", msg: "reserved keywords: restart, tasks, versions"},
		{name: "id reserved tasks", overlay: `{"id":"tasks"}`, path: "/id", msg: "reserved keywords"},
		{name: "id reserved versions", overlay: `{"id":"/a/versions/"}`, path: "/id", msg: "reserved keywords"},
		{name: "id reserved word inside is fine", overlay: `{"id":"/tasks/web"}`},
		{name: "id too long", overlay: `{"id":"/` + strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63) + "/" + strings.Repeat("c", 22) + `"}`, path: "/id", msg: "at most 150 characters"},
		{name: "id with NUL", overlay: `{"id":"/a\u0000b"}`, path: "/id", msg: "at most 150 characters"},
		{name: "id with dot segment", overlay: `{"id":"/a/./b"}`, path: "/id", msg: `"." or ".."`},
		{name: "id with dot-dot segment", overlay: `{"id":"/a/../b"}`, path: "/id", msg: `"." or ".."`},

		// resources
		{name: "cpus fraction", overlay: `{"cpus":0.01,"mem":0,"disk":0,"instances":0}`},
		{name: "cpus negative", overlay: `{"cpus":-1}`, path: "/cpus", msg: "got -1, expected 0.0 or more"},
		{name: "mem negative", overlay: `{"mem":-128}`, path: "/mem", msg: "got -128, expected 0.0 or more"},
		{name: "disk negative", overlay: `{"disk":-0.5}`, path: "/disk", msg: "got -0.5, expected 0.0 or more"},
		{name: "instances negative", overlay: `{"instances":-3}`, path: "/instances", msg: "got -3, expected 0 or more"},
		{name: "instances above the limit", overlay: `{"instances":1001}`, path: "/instances", msg: "at most 1000 instances"},
		{name: "gpus", overlay: `{"gpus":1}`, path: "/gpus", msg: "GPUs are not supported"},

		// cmd, args, container
		{name: "cmd only", overlay: `{"cmd":"sleep 1000"}`},
		{name: "args only", overlay: `{"args":["--port","80"]}`},
		{name: "cmd and args", overlay: `{"cmd":"sleep 1","args":["x"]}`, path: "/", msg: "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'"},
		{name: "command app", overlay: `{"container":null,"cmd":"sleep 1","user":"nobody"}`, opts: withUsers},
		{name: "command app with args", overlay: `{"container":null,"args":["sleep","1"]}`},
		{name: "command app, MESOS container with a volume", overlay: `{"cmd":"sleep 1","container":{"type":"MESOS","volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":10}}]}}`},
		{name: "command app without a command", overlay: `{"container":null}`, path: "/", msg: "must either contain one of 'cmd' or 'args'"},
		{name: "DOCKER container without an image", overlay: `{"cmd":"sleep 1","container":{"type":"DOCKER","docker":{"image":""}}}`, path: "/container/docker/image", msg: "use container type MESOS (or no container)"},
		{name: "command app on a bridge", overlay: `{"container":null,"cmd":"sleep 1","networks":[{"mode":"container/bridge"}]}`, path: "/networks", msg: "an app without an image runs on the host's network"},
		{name: "command app of an unknown user", overlay: `{"container":null,"cmd":"sleep 1","user":"nobody-here"}`, opts: withUsers, path: "/user", msg: `user "nobody-here" does not exist`},
		{name: "container without docker", overlay: `{"container":{"type":"DOCKER"}}`, path: "/container/docker/image", msg: "a Docker image is required"},
		{name: "empty image", overlay: docker(`"image":" "`), path: "/container/docker/image", msg: "a Docker image is required"},
		{name: "image with a space", overlay: docker(`"image":"a b"`), path: "/container/docker/image", msg: "not a valid image reference"},
		{name: "container type MESOS", overlay: `{"container":{"type":"MESOS","docker":{"image":"img:1"}}}`},
		{name: "container type unknown", overlay: `{"container":{"type":"LXC","docker":{"image":"img:1"}}}`, path: "/container/type", msg: "must be DOCKER or MESOS"},
		{name: "legacy docker network NONE", overlay: docker(`"network":"NONE"`), path: "/container/docker/network", msg: "unsupported docker network type NONE"},
		{name: "privileged refused by default", overlay: docker(`"privileged":true`), path: "/container/docker/privileged", msg: "allow_privileged"},
		{name: "privileged allowed", overlay: docker(`"privileged":true`), opts: Options{AllowPrivileged: true}},
		{name: "supported docker parameter", overlay: docker(`"parameters":[{"key":"label","value":"a=b"},{"key":"init","value":"true"}]`)},
		{name: "unsupported docker parameter", overlay: docker(`"parameters":[{"key":"label","value":"a=b"},{"key":"cap-add","value":"ALL"}]`), path: "/container/docker/parameters(1)/key", msg: `docker parameter "cap-add" is not supported`},
		{name: "docker parameter listed as unsupported", overlay: docker(`"parameters":[{"key":"log-driver","value":"none"}]`), path: "/container/docker/parameters(0)/key", msg: "not supported"},
		{name: "docker parameter with a bad value", overlay: docker(`"parameters":[{"key":"label","value":"a=b"},{"key":"shm-size","value":"lots"}]`), path: "/container/docker/parameters(1)/value", msg: `shm-size: "lots" is not a size`},
		{name: "docker parameter with a reserved label", overlay: docker(`"parameters":[{"key":"label","value":"mesolite.app_id=/x"}]`), path: "/container/docker/parameters(0)/value", msg: "reserved"},
		{name: "docker parameter with a bad ulimit", overlay: docker(`"parameters":[{"key":"ulimit","value":"nofile=10:5"}]`), path: "/container/docker/parameters(0)/value", msg: "soft <= hard"},

		// persistent volumes (SPEC §2)
		{name: "persistent volume", overlay: pv(`{"containerPath":"logs","persistent":{"size":1,"type":"root"}}`)},
		{name: "persistent volume with the resident upgradeStrategy", overlay: withPV(`"upgradeStrategy":{"minimumHealthCapacity":0,"maximumOverCapacity":0},"unreachableStrategy":"disabled"`)},
		{name: "persistent containerPath with a slash", overlay: vol(`{"containerPath":"pg/data","mode":"RW","persistent":{"size":1}}`), path: "/container/volumes(0)/containerPath", msg: `value must not contain "/"`},
		{name: "persistent containerPath absolute", overlay: vol(`{"containerPath":"/data","mode":"RW","persistent":{"size":1}}`), path: "/container/volumes(0)/containerPath", msg: `value must not contain "/"`},
		{name: "persistent containerPath dot", overlay: vol(`{"containerPath":".","mode":"RW","persistent":{"size":1}}`), path: "/container/volumes(0)/containerPath", msg: "can not be one of (.,..)"},
		{name: "persistent containerPath dot-dot", overlay: vol(`{"containerPath":"..","mode":"RW","persistent":{"size":1}}`), path: "/container/volumes(0)/containerPath", msg: "can not be one of (.,..)"},
		{name: "persistent containerPath empty", overlay: vol(`{"containerPath":"","mode":"RW","persistent":{"size":1}}`), path: "/container/volumes(0)/containerPath", msg: "is empty"},
		{name: "persistent containerPath with #", overlay: vol(`{"containerPath":"a#b","mode":"RW","persistent":{"size":1}}`), path: "/container/volumes(0)/containerPath", msg: `without NUL, "#"`},
		{name: "persistent mode RO", overlay: vol(`{"containerPath":"data","mode":"RO","persistent":{"size":1}}`), path: "/container/volumes(0)/mode", msg: "read-write (mode RW)"},
		{name: "persistent size 0", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":0}}`), path: "/container/volumes(0)/persistent/size", msg: "got 0, expected more than 0"},
		{name: "persistent size negative", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":-5}}`), path: "/container/volumes(0)/persistent/size", msg: "got -5, expected more than 0"},
		{name: "persistent size missing", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{}}`), path: "/container/volumes(0)/persistent/size", msg: "expected more than 0"},
		{name: "persistent size too large", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":1e12}}`), path: "/container/volumes(0)/persistent/size", msg: "expected at most"},
		{name: "persistent type path", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":1,"type":"path"}}`), path: "/container/volumes(0)/persistent/type", msg: `persistent volume type "path" is not supported`},
		{name: "persistent type mount", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":1,"type":"mount"}}`), path: "/container/volumes(0)/persistent/type", msg: `persistent volume type "mount" is not supported`},
		{name: "persistent type unknown", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":1,"type":"ssd"}}`), path: "/container/volumes(0)/persistent/type", msg: "must be one of root, path, mount"},
		{name: "persistent maxSize", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":1,"maxSize":2}}`), path: "/container/volumes(0)/persistent/maxSize", msg: "only meaningful for mount volumes"},
		{name: "persistent constraints", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":1,"constraints":[["path","LIKE","ssd"]]}}`), path: "/container/volumes(0)/persistent", msg: "Constraints on root volumes are not supported"},
		{name: "persistent profileName", overlay: vol(`{"containerPath":"data","mode":"RW","persistent":{"size":1,"profileName":"fast"}}`), path: "/container/volumes(0)/persistent/profileName", msg: "not supported"},
		{name: "persistent maximumOverCapacity not 0", overlay: withPV(`"upgradeStrategy":{"minimumHealthCapacity":0.5,"maximumOverCapacity":0.5}`), path: "/upgradeStrategy/maximumOverCapacity", msg: "got 0.5, expected 0.0"},
		{name: "persistent unreachableStrategy not disabled", overlay: withPV(`"unreachableStrategy":{"inactiveAfterSeconds":60}`), path: "/", msg: "unreachableStrategy must be disabled for resident tasks"},
		{name: "residency without persistent volumes", overlay: `{"residency":{"relaunchEscalationTimeoutSeconds":3600,"taskLostBehavior":"WAIT_FOREVER"}}`, path: "/", msg: "AppDefinition must contain persistent volumes and define residency"},
		{name: "same containerPath twice", overlay: pv(`{"containerPath":"/mnt/mesos/sandbox/data","hostPath":"other","mode":"RW"}`), path: "/container/volumes(1)/containerPath", msg: "used by another volume"},
		{name: "external volume", overlay: vol(`{"containerPath":"/data","external":{"name":"x","provider":"dvdi"},"mode":"RW"}`), path: "/container/volumes(0)/external", msg: "external volumes are not supported"},
		{name: "secret volume", overlay: vol(`{"containerPath":"/run/secret","secret":"pw"}`), path: "/container/volumes(0)/secret", msg: "secret volumes are not supported"},

		// host volumes (SPEC §2)
		{name: "host volume relative hostPath", overlay: pv(`{"containerPath":"/var/lib/mysql","hostPath":"data","mode":"RW"}`)},
		{name: "host volume relative containerPath", overlay: vol(`{"containerPath":"cache","hostPath":"cache","mode":"RO"}`)},
		{name: "host volume absolute hostPath without roots", overlay: vol(`{"containerPath":"/etc/host","hostPath":"/etc","mode":"RO"}`), path: "/container/volumes(0)/hostPath", msg: "absolute host paths are disabled"},
		{name: "host volume absolute hostPath outside the roots", overlay: vol(`{"containerPath":"/x","hostPath":"/etc","mode":"RO"}`), opts: roots, path: "/container/volumes(0)/hostPath", msg: `"/etc" is outside the allowed roots /srv/data, /var/log/`},
		{name: "host volume hostPath sharing a root's prefix", overlay: vol(`{"containerPath":"/x","hostPath":"/srv/database","mode":"RO"}`), opts: roots, path: "/container/volumes(0)/hostPath", msg: "outside the allowed roots"},
		{name: "host volume hostPath inside a root", overlay: vol(`{"containerPath":"/x","hostPath":"/srv/data/app1","mode":"RW"}`), opts: roots},
		{name: "host volume hostPath equal to a root", overlay: vol(`{"containerPath":"/x","hostPath":"/var/log","mode":"RO"}`), opts: roots},
		{name: "host volume absolute hostPath with dot-dot", overlay: vol(`{"containerPath":"/x","hostPath":"/srv/data/../../etc","mode":"RO"}`), opts: roots, path: "/container/volumes(0)/hostPath", msg: `may not contain ".."`},
		{name: "host volume relative hostPath with dot-dot", overlay: vol(`{"containerPath":"/x","hostPath":"../../etc","mode":"RO"}`), path: "/container/volumes(0)/hostPath", msg: `may not contain ".."`},
		{name: "host volume hostPath with a colon", overlay: vol(`{"containerPath":"/x","hostPath":"a:b","mode":"RO"}`), path: "/container/volumes(0)/hostPath", msg: `may not contain ":"`},
		{name: "volume with neither hostPath nor persistent", overlay: vol(`{"containerPath":"/x","mode":"RO"}`), path: "/container/volumes(0)/hostPath", msg: "needs hostPath or persistent"},
		{name: "host volume mode unknown", overlay: vol(`{"containerPath":"/x","hostPath":"x","mode":"RX"}`), path: "/container/volumes(0)/mode", msg: "must be RW or RO"},
		{name: "host volume relative containerPath with dot-dot", overlay: vol(`{"containerPath":"../x","hostPath":"x","mode":"RO"}`), path: "/container/volumes(0)/containerPath", msg: `may not contain ".."`},
		{name: "host volume over the sandbox", overlay: vol(`{"containerPath":".","hostPath":"x","mode":"RO"}`), path: "/container/volumes(0)/containerPath", msg: "would cover /mnt/mesos/sandbox"},
		{name: "host volume over the root", overlay: vol(`{"containerPath":"/","hostPath":"x","mode":"RO"}`), path: "/container/volumes(0)/containerPath", msg: "would cover /"},
		{name: "host volume containerPath empty", overlay: vol(`{"containerPath":"","hostPath":"x","mode":"RO"}`), path: "/container/volumes(0)/containerPath", msg: "is empty"},

		// networks and ports
		{name: "bridge port mappings", overlay: bridge(`{"containerPort":80},{"containerPort":53,"hostPort":5353,"protocol":"udp,tcp","name":"dns"}`)},
		{name: "portMappings with host networking", overlay: `{"container":{"docker":{"image":"img:1"},"portMappings":[{"containerPort":80}]}}`, path: "/container/portMappings", msg: "portMappings are not allowed with host-networking"},
		{name: "portDefinitions with bridge", overlay: `{"networks":[{"mode":"container/bridge"}],"portDefinitions":[{"port":0}]}`, path: "/portDefinitions", msg: "portDefinitions are only allowed with host-networking"},
		{name: "two networks", overlay: `{"networks":[{"mode":"container","name":"a"},{"mode":"container","name":"b"}]}`, path: "/networks", msg: "one network per app"},
		{name: "container network without a name", overlay: `{"networks":[{"mode":"container"}]}`, path: "/networks(0)/name", msg: "needs the name of a Docker network"},
		{name: "container network with a bad name", overlay: `{"networks":[{"mode":"container","name":"a b"}]}`, path: "/networks(0)/name", msg: "not a valid Docker network name"},
		{name: "bridge network with a name", overlay: `{"networks":[{"mode":"container/bridge","name":"x"}]}`, path: "/networks(0)/name", msg: "has no name"},
		{name: "network mode unknown", overlay: `{"networks":[{"mode":"overlay"}]}`, path: "/networks(0)/mode", msg: "must be one of host, container/bridge, container"},
		{name: "port definitions with names", overlay: `{"portDefinitions":[{"port":0,"name":"http"},{"port":0,"name":"admin","protocol":"udp"}]}`},
		{name: "duplicate port definition names", overlay: `{"portDefinitions":[{"port":0,"name":"http"},{"port":0,"name":"http"}]}`, path: "/portDefinitions", msg: "Port names must be unique."},
		{name: "duplicate port mapping names", overlay: bridge(`{"containerPort":80,"name":"web"},{"containerPort":81,"name":"web"}`), path: "/container/portMappings", msg: "Port names must be unique."},
		{name: "port name with upper case", overlay: `{"portDefinitions":[{"port":0,"name":"Web"}]}`, path: "/portDefinitions(0)/name", msg: "must fully match regular expression '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"},
		{name: "port mapping name with underscore", overlay: bridge(`{"containerPort":80,"name":"my_port"}`), path: "/container/portMappings(0)/name", msg: "must fully match regular expression"},
		{name: "port definition protocol unknown", overlay: `{"portDefinitions":[{"port":0,"protocol":"sctp"}]}`, path: "/portDefinitions(0)/protocol", msg: "must be one of tcp, udp, udp,tcp"},
		{name: "port mapping protocol upper case", overlay: bridge(`{"containerPort":80,"protocol":"TCP"}`), path: "/container/portMappings(0)/protocol", msg: "must be one of tcp, udp, udp,tcp"},
		{name: "duplicate fixed ports", overlay: `{"portDefinitions":[{"port":8080},{"port":8080}]}`, path: "/portDefinitions", msg: "Ports must be unique."},
		{name: "port out of range", overlay: `{"portDefinitions":[{"port":70000}]}`, path: "/portDefinitions(0)/port", msg: "got 70000, expected 0 to 65535"},
		{name: "bridge mapping with containerPort 0", overlay: bridge(`{"hostPort":0},{"containerPort":0}`)},
		{name: "duplicate fixed host ports", overlay: bridge(`{"containerPort":80,"hostPort":8080},{"containerPort":81,"hostPort":8080}`), path: "/container/portMappings(1)/hostPort", msg: "host port 8080 is used twice"},
		{name: "negative host port", overlay: bridge(`{"containerPort":80,"hostPort":-1}`), path: "/container/portMappings(0)/hostPort", msg: "expected 0 to 65535"},
		// The agent's host port range (issue 10): what it can never give
		// is refused at POST instead of waiting forever.
		{name: "host port inside the range", overlay: bridge(`{"containerPort":80,"hostPort":31005},{"containerPort":81,"hostPort":0}`), opts: ports},
		{name: "host port outside the range", overlay: bridge(`{"containerPort":80,"hostPort":80}`), opts: ports, path: "/container/portMappings(0)/hostPort", msg: "host port 80 is outside the agent's port range 31000-31009 ([resources] ports"},
		{name: "host port just past the range", overlay: bridge(`{"containerPort":80,"hostPort":0},{"containerPort":81,"hostPort":31010}`), opts: ports, path: "/container/portMappings(1)/hostPort", msg: "use a port inside it, or hostPort 0"},
		{name: "required port outside the range", overlay: `{"requirePorts":true,"portDefinitions":[{"port":8080}]}`, opts: ports, path: "/portDefinitions(0)/port", msg: "host port 8080 is outside"},
		{name: "service port outside the range is no host port", overlay: `{"portDefinitions":[{"port":10001}]}`, opts: ports},
		{name: "more ports than the range", overlay: `{"portDefinitions":[{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0}]}`, opts: ports, path: "/", msg: "an instance needs 11 host ports, more than the 10"},
		{name: "more ports than the range across instances", overlay: `{"instances":4,"portDefinitions":[{"port":0},{"port":0},{"port":0}]}`, opts: ports, path: "/instances", msg: "4 instances need 12 host ports"},
		{name: "as many ports as the range", overlay: `{"instances":5,"portDefinitions":[{"port":0},{"port":0}]}`, opts: ports},
		{name: "a fixed host port for two instances", overlay: `{"instances":2,"networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"img:1"},"portMappings":[{"containerPort":80,"hostPort":31001}]}}`, opts: ports, path: "/instances", msg: "this one machine has once"},
		{name: "no range given: not checked", overlay: bridge(`{"containerPort":80,"hostPort":80}`)},

		// health checks
		{name: "health checks of every protocol", overlay: `{"portDefinitions":[{"port":0},{"port":0}],"healthChecks":[{"protocol":"HTTP"},{"protocol":"HTTPS","portIndex":1},{"protocol":"TCP"},{"protocol":"COMMAND","command":{"value":"true"}},{"protocol":"MESOS_HTTP","path":"/h"},{"protocol":"MESOS_HTTPS"},{"protocol":"MESOS_TCP","port":8080}]}`},
		{name: "health check portIndex out of range", overlay: hc(`{"protocol":"HTTP","portIndex":1}`), path: "/healthChecks(0)", msg: "Health check port indices must address an element of the ports array or container port mappings."},
		{name: "health check portIndex negative", overlay: hc(`{"protocol":"TCP","portIndex":-1}`), path: "/healthChecks(0)", msg: "port indices must address"},
		{name: "health check without ports", overlay: `{"portDefinitions":[],"healthChecks":[{"protocol":"TCP"}]}`, path: "/healthChecks(0)", msg: "port indices must address"},
		{name: "health check on bridge indexes port mappings", overlay: `{"networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"img:1"},"portMappings":[{"containerPort":80}]},"healthChecks":[{"protocol":"HTTP","portIndex":1}]}`, path: "/healthChecks(0)", msg: "port indices must address"},
		{name: "health check with port and portIndex", overlay: hc(`{"protocol":"HTTP","port":80,"portIndex":0}`), path: "/healthChecks(0)", msg: "either portIndex or port"},
		{name: "health check port 0", overlay: hc(`{"protocol":"TCP","port":0}`), path: "/healthChecks(0)/port", msg: "got 0, expected 1 to 65535"},
		{name: "COMMAND without command", overlay: hc(`{"protocol":"COMMAND"}`), path: "/healthChecks(0)/command", msg: "needs command.value"},
		{name: "COMMAND with an empty command", overlay: hc(`{"protocol":"COMMAND","command":{"value":" "}}`), path: "/healthChecks(0)/command", msg: "needs command.value"},
		{name: "command on an HTTP check", overlay: hc(`{"protocol":"HTTP","command":{"value":"true"}}`), path: "/healthChecks(0)/command", msg: "only allowed with protocol COMMAND"},
		{name: "health check protocol unknown", overlay: hc(`{"protocol":"ICMP"}`), path: "/healthChecks(0)/protocol", msg: "must be one of HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP"},
		{name: "health check relative path", overlay: hc(`{"protocol":"HTTP","path":"health"}`), path: "/healthChecks(0)/path", msg: "absolute URL path"},
		{name: "health check interval 0", overlay: hc(`{"intervalSeconds":0}`), path: "/healthChecks(0)/intervalSeconds", msg: "got 0, expected 1 or more"},
		{name: "health check timeout 0", overlay: hc(`{"timeoutSeconds":0}`), path: "/healthChecks(0)/timeoutSeconds", msg: "got 0, expected 1 or more"},
		{name: "health check negative grace period", overlay: hc(`{"gracePeriodSeconds":-1}`), path: "/healthChecks(0)/gracePeriodSeconds", msg: "expected 0 or more"},
		{name: "health check negative failures", overlay: hc(`{"maxConsecutiveFailures":-1}`), path: "/healthChecks(0)/maxConsecutiveFailures", msg: "expected 0 or more"},
		{name: "health check IPv6 on a Marathon check", overlay: hc(`{"protocol":"HTTP","ipProtocol":"IPv6"}`), path: "/healthChecks(0)", msg: "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks"},
		{name: "health check ipProtocol unknown", overlay: hc(`{"protocol":"TCP","ipProtocol":"IPX"}`), path: "/healthChecks(0)/ipProtocol", msg: "must be IPv4 or IPv6"},

		// env, secrets, fetch
		{name: "env", overlay: `{"env":{"PGDATA":"/mnt/mesos/sandbox/pgdata","_X1":""}}`},
		{name: "env secret reference", overlay: `{"env":{"DB_PASSWORD":{"secret":"pw"}}}`, path: "/env/DB_PASSWORD", msg: "secrets are not supported"},
		{name: "env bad name", overlay: `{"env":{"1ABC":"x"}}`, path: "/env/1ABC", msg: "must match [A-Za-z_][A-Za-z0-9_]*"},
		{name: "env value with NUL", overlay: `{"env":{"A":"x\u0000y"}}`, path: "/env/A", msg: "NUL"},
		{name: "secrets", overlay: `{"secrets":{"pw":{"source":"db/pw"}}}`, path: "/secrets", msg: "secrets are not supported"},
		{name: "uris", overlay: `{"uris":["https://example.com/a.tgz"]}`, opts: fetchRoots},
		{name: "fetch", overlay: `{"fetch":[{"uri":"https://example.com/a.tgz"},{"uri":"file:///srv/data/app.jar","destPath":"lib/app.jar","cache":true},{"uri":"/srv/data/run.sh","executable":true}]}`, opts: fetchRoots},
		{name: "fetch uri empty", overlay: `{"fetch":[{"uri":" "}]}`, opts: fetchRoots, path: "/fetch(0)/uri", msg: "is empty"},
		{name: "fetch scheme", overlay: `{"fetch":[{"uri":"https://example.com/a.tgz"},{"uri":"hdfs://nn/a.tgz"}]}`, opts: fetchRoots, path: "/fetch(1)/uri", msg: `scheme "hdfs" is not supported`},
		{name: "fetch file outside the roots", overlay: `{"fetch":[{"uri":"file:///etc/shadow"}]}`, opts: fetchRoots, path: "/fetch(0)/uri", msg: "host_path_roots"},
		{name: "uris path outside the roots", overlay: `{"uris":["/etc/passwd"]}`, opts: fetchRoots, path: "/fetch(0)/uri", msg: "outside the allowed roots"},
		{name: "fetch relative path", overlay: `{"fetch":[{"uri":"app.tgz"}]}`, opts: fetchRoots, path: "/fetch(0)/uri", msg: "relative path"},
		{name: "fetch destPath absolute", overlay: `{"fetch":[{"uri":"https://example.com/a.tgz","destPath":"/etc/a"}]}`, path: "/fetch(0)/destPath", msg: "must be relative to the sandbox"},
		{name: "fetch destPath climbing", overlay: `{"fetch":[{"uri":"https://example.com/a.tgz","destPath":"a/../../b"}]}`, path: "/fetch(0)/destPath", msg: `may not contain ".."`},
		{name: "storeUrls", overlay: `{"storeUrls":["https://example.com/a"]}`, path: "/storeUrls", msg: "not supported"},
		{name: "label key empty", overlay: `{"labels":{"":"x"}}`, path: "/labels", msg: "non-empty"},

		// constraints
		{name: "constraints", overlay: `{"constraints":[["hostname","UNIQUE"],["rack","CLUSTER","a"],["rack","CLUSTER"],["zone","GROUP_BY"],["zone","GROUP_BY","3"],["hostname","LIKE","web[0-9]+"],["hostname","UNLIKE","db.*"],["hostname","MAX_PER","2"],["os","IS","linux"]]}`},
		{name: "constraint with one field", overlay: `{"constraints":[["hostname"]]}`, path: "/constraints(0)", msg: "Each constraint must have either 2 or 3 fields"},
		{name: "constraint with four fields", overlay: `{"constraints":[["hostname","UNIQUE"],["a","LIKE","b","c"]]}`, path: "/constraints(1)", msg: "Each constraint must have either 2 or 3 fields"},
		{name: "constraint with an empty field", overlay: `{"constraints":[["","UNIQUE"]]}`, path: "/constraints(0)", msg: "Missing field and operator"},
		{name: "constraint operator unknown", overlay: `{"constraints":[["hostname","SPREAD"]]}`, path: "/constraints(0)", msg: "Constraint operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE"},
		{name: "UNIQUE with a value", overlay: `{"constraints":[["hostname","UNIQUE","x"]]}`, path: "/constraints(0)", msg: "Value specified but not used"},
		{name: "LIKE without a value", overlay: `{"constraints":[["hostname","LIKE"]]}`, path: "/constraints(0)", msg: "Missing value"},
		{name: "LIKE with a bad regular expression", overlay: `{"constraints":[["hostname","LIKE","web[0-9"]]}`, path: "/constraints(0)", msg: "'web[0-9' is not a valid regular expression"},
		{name: "UNLIKE with an unbalanced group", overlay: `{"constraints":[["hostname","unlike","a)|(b"]]}`, path: "/constraints(0)", msg: "not a valid regular expression"},
		{name: "MAX_PER not a number", overlay: `{"constraints":[["hostname","MAX_PER","two"]]}`, path: "/constraints(0)", msg: "Value was specified but is not a number"},
		{name: "GROUP_BY not a number", overlay: `{"constraints":[["rack","GROUP_BY","x"]]}`, path: "/constraints(0)", msg: "not a number"},

		// upgrade strategy and the rest
		{name: "upgradeStrategy", overlay: `{"upgradeStrategy":{"minimumHealthCapacity":0,"maximumOverCapacity":0.2}}`},
		{name: "minimumHealthCapacity above 1", overlay: `{"upgradeStrategy":{"minimumHealthCapacity":1.2,"maximumOverCapacity":1}}`, path: "/upgradeStrategy/minimumHealthCapacity", msg: "got 1.2, expected between 0.0 and 1.0"},
		{name: "minimumHealthCapacity negative", overlay: `{"upgradeStrategy":{"minimumHealthCapacity":-0.5}}`, path: "/upgradeStrategy/minimumHealthCapacity", msg: "got -0.5, expected between 0.0 and 1.0"},
		{name: "maximumOverCapacity negative", overlay: `{"upgradeStrategy":{"maximumOverCapacity":-1}}`, path: "/upgradeStrategy/maximumOverCapacity", msg: "got -1, expected between 0.0 and 1.0"},
		{name: "killSelection unknown", overlay: `{"killSelection":"RANDOM"}`, path: "/killSelection", msg: "must be one of YOUNGEST_FIRST, OLDEST_FIRST"},
		{name: "backoffSeconds negative", overlay: `{"backoffSeconds":-1}`, path: "/backoffSeconds", msg: "expected 0 or more"},
		{name: "backoffFactor below 1", overlay: `{"backoffFactor":0.5}`, path: "/backoffFactor", msg: "expected 1.0 or more"},
		{name: "maxLaunchDelaySeconds negative", overlay: `{"maxLaunchDelaySeconds":-1}`, path: "/maxLaunchDelaySeconds", msg: "expected 0 or more"},
		{name: "taskKillGracePeriodSeconds negative", overlay: `{"taskKillGracePeriodSeconds":-1}`, path: "/taskKillGracePeriodSeconds", msg: "expected 0 or more"},
		{name: "custom executor", overlay: `{"executor":"/opt/exec"}`, path: "/executor", msg: "custom executors are not supported"},
		{name: "unreachableStrategy disabled", overlay: `{"unreachableStrategy":"disabled"}`},
		{name: "unreachableStrategy of another type", overlay: `{"unreachableStrategy":"never"}`, path: "/unreachableStrategy", msg: `must be "disabled" or`},
		{name: "ipAddress not an object", overlay: `{"ipAddress":"10.0.0.1"}`, path: "/ipAddress", msg: "must be an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.CheckParameter == nil {
				tc.opts.CheckParameter = dockerrt.CheckParameter // as the agent sets it
			}
			_, _, err := Parse(with(t, tc.overlay), tc.opts)
			if tc.path == "" {
				if err != nil {
					t.Fatalf("Parse: %v, want no error", err)
				}
				return
			}
			if !hasDetail(err, tc.path, tc.msg) {
				t.Fatalf("Parse: %v\nwant a detail at %s containing %q", err, tc.path, tc.msg)
			}
		})
	}
}

// TestValidateDetails: the 422 body groups messages by path, each path once,
// in a stable order, and reports every broken rule.
func TestValidateDetails(t *testing.T) {
	_, _, err := Parse(with(t, `{"cpus":-1,"mem":-1,"healthChecks":[{"intervalSeconds":0,"timeoutSeconds":0,"portIndex":3}],"constraints":[["a"],["b","X"]]}`), Options{})
	var ve *ValidationError
	if errClass(err) != "validation" {
		t.Fatalf("Parse: %v, want a validation error", err)
	}
	ve = err.(*ValidationError)
	want := []string{"/constraints(0)", "/constraints(1)", "/cpus", "/healthChecks(0)", "/healthChecks(0)/intervalSeconds", "/healthChecks(0)/timeoutSeconds", "/mem"}
	var got []string
	for _, d := range ve.Details {
		got = append(got, d.Path)
		if len(d.Errors) == 0 {
			t.Errorf("detail %s has no message", d.Path)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("detail paths %v, want %v", got, want)
	}

	// Two rules broken at one path: one detail with both messages.
	_, _, err = Parse(with(t, `{"portDefinitions":[{"port":1,"name":"a"},{"port":1,"name":"a"}]}`), Options{})
	msgs, _ := detail(err, "/portDefinitions")
	if len(msgs) != 2 {
		t.Errorf("/portDefinitions messages %q, want two (names and ports)", msgs)
	}
}

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		msg            string // "" = valid
	}{
		{name: "absolute", in: "/postgres", want: "/postgres"},
		{name: "relative", in: "postgres", want: "/postgres"},
		{name: "nested with trailing slash", in: "db/pg/", want: "/db/pg"},
		{name: "empty", in: "", msg: "required"},
		{name: "root", in: "/", msg: "root"},
		{name: "upper case", in: "/Postgres", msg: "must fully match regular expression"},
		{name: "reserved", in: "/pg/versions", msg: "reserved keywords"},
		{name: "dot-dot", in: "/pg/..", msg: `"." or ".."`},
		{name: "NUL", in: "/pg\x00", msg: "at most"},
		{name: "too long", in: "/" + strings.Repeat("a", MaxIDLength), msg: "at most 150"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValidateID(tc.in)
			if tc.msg == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ValidateID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			if !hasDetail(err, "/id", tc.msg) {
				t.Fatalf("ValidateID(%q) = %q, %v; want a /id detail containing %q", tc.in, got, err, tc.msg)
			}
		})
	}
}

// TestValidateUpdate: Marathon's residentUpdateIsValid (ref §7.2, SPEC §2).
func TestValidateUpdate(t *testing.T) {
	const (
		volumesChanged   = "Persistent volumes can not be changed!"
		resourcesChanged = "Services with persistent volumes configured may not change resource requirements. If you need to make this change, please create a new service."
	)
	resident := `{"id":"/pg","cpus":1,"mem":1024,"disk":0,"networks":[{"mode":"container/bridge"}],
	  "container":{"docker":{"image":"pg:15"},
	    "volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"size":100}},{"containerPath":"wal","mode":"RW","persistent":{"size":10}}],
	    "portMappings":[{"containerPort":5432,"hostPort":0}]},
	  "env":{"A":"1"},"labels":{"x":"1"},"healthChecks":[{"protocol":"TCP"}]}`
	hostResident := `{"id":"/pg","container":{"docker":{"image":"pg:15"},"volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"size":100}}]},"portDefinitions":[{"port":10000}]}`
	plain := `{"id":"/web","cpus":1,"mem":128,"container":{"docker":{"image":"nginx:1"}},"portDefinitions":[{"port":0}]}`
	for _, tc := range []struct {
		name     string
		old, new string
		edit     string // overlay on old when new is ""
		msg      string // "" = allowed
	}{
		{name: "resident: nothing changed", old: resident, edit: `{}`},
		{name: "resident: image changed", old: resident, edit: `{"container":{"docker":{"image":"pg:16"},"volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"size":100}},{"containerPath":"wal","mode":"RW","persistent":{"size":10}}],"portMappings":[{"containerPort":5432,"hostPort":0}]}}`},
		{name: "resident: env, cmd, labels, health checks, instances changed", old: resident, edit: `{"env":{"A":"2"},"cmd":"postgres -c fsync=off","labels":{"y":"2"},"healthChecks":[],"instances":3}`},
		{name: "resident: volumes reordered", old: resident, edit: `{"container":{"docker":{"image":"pg:15"},"volumes":[{"containerPath":"wal","mode":"RW","persistent":{"size":10}},{"containerPath":"pgdata","mode":"RW","persistent":{"size":100}}],"portMappings":[{"containerPort":5432,"hostPort":0}]}}`},
		{name: "resident: volume renamed", old: resident, edit: `{"container":{"docker":{"image":"pg:15"},"volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":100}},{"containerPath":"wal","mode":"RW","persistent":{"size":10}}],"portMappings":[{"containerPort":5432,"hostPort":0}]}}`, msg: volumesChanged},
		{name: "resident: volume resized", old: resident, edit: `{"container":{"docker":{"image":"pg:15"},"volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"size":200}},{"containerPath":"wal","mode":"RW","persistent":{"size":10}}],"portMappings":[{"containerPort":5432,"hostPort":0}]}}`, msg: volumesChanged},
		{name: "resident: volume added", old: resident, edit: `{"container":{"docker":{"image":"pg:15"},"volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"size":100}},{"containerPath":"wal","mode":"RW","persistent":{"size":10}},{"containerPath":"x","mode":"RW","persistent":{"size":1}}],"portMappings":[{"containerPort":5432,"hostPort":0}]}}`, msg: volumesChanged},
		{name: "resident: volumes removed", old: resident, edit: `{"container":{"docker":{"image":"pg:15"},"portMappings":[{"containerPort":5432,"hostPort":0}]}}`, msg: volumesChanged},
		{name: "resident: cpus changed", old: resident, edit: `{"cpus":2}`, msg: resourcesChanged},
		{name: "resident: mem changed", old: resident, edit: `{"mem":2048}`, msg: resourcesChanged},
		{name: "resident: disk changed", old: resident, edit: `{"disk":10}`, msg: resourcesChanged},
		{name: "resident: host port fixed", old: resident, edit: `{"container":{"docker":{"image":"pg:15"},"volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"size":100}},{"containerPath":"wal","mode":"RW","persistent":{"size":10}}],"portMappings":[{"containerPort":5432,"hostPort":5432}]}}`, msg: resourcesChanged},
		{name: "resident: host port added", old: resident, edit: `{"container":{"docker":{"image":"pg:15"},"volumes":[{"containerPath":"pgdata","mode":"RW","persistent":{"size":100}},{"containerPath":"wal","mode":"RW","persistent":{"size":10}}],"portMappings":[{"containerPort":5432,"hostPort":0},{"containerPort":9187,"hostPort":0}]}}`, msg: resourcesChanged},
		{name: "resident host mode: assigned service port back to 0", old: hostResident, edit: `{"portDefinitions":[{"port":0}]}`},
		{name: "resident host mode: requirePorts turns the port into a host port", old: hostResident, edit: `{"requirePorts":true}`, msg: resourcesChanged},
		{name: "non-resident: anything changes", old: plain, edit: `{"cpus":4,"mem":4096,"disk":100,"portDefinitions":[{"port":8080},{"port":0}],"requirePorts":true,"container":{"docker":{"image":"nginx:2"}}}`},
		{name: "non-resident becomes resident", old: plain, edit: `{"container":{"docker":{"image":"nginx:1"},"volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":1}}]}}`, msg: volumesChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, _, err := Parse([]byte(tc.old), Options{})
			if err != nil {
				t.Fatalf("old app: %v", err)
			}
			newBody := []byte(tc.new)
			if tc.new == "" {
				newBody = overlayOn(t, tc.old, tc.edit)
			}
			updated, _, err := Parse(newBody, Options{})
			if err != nil {
				t.Fatalf("new app: %v", err)
			}
			err = ValidateUpdate(old, updated)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("ValidateUpdate: %v, want it allowed", err)
				}
				return
			}
			if !hasDetail(err, "/", tc.msg) {
				t.Fatalf("ValidateUpdate: %v\nwant a / detail %q", err, tc.msg)
			}
		})
	}
}

func TestLabelEnvName(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{name: "lower case", in: "owner", want: "MARATHON_APP_LABEL_OWNER"},
		{name: "already upper with underscores", in: "HAPROXY_0_VHOST", want: "MARATHON_APP_LABEL_HAPROXY_0_VHOST"},
		{name: "dots and slash", in: "com.example/team", want: "MARATHON_APP_LABEL_COM_EXAMPLE_TEAM"},
		{name: "dash", in: "cost-center", want: "MARATHON_APP_LABEL_COST_CENTER"},
		{name: "a run becomes one underscore", in: "a.-/b", want: "MARATHON_APP_LABEL_A_B"},
		{name: "underscores are kept, not merged", in: "a__b", want: "MARATHON_APP_LABEL_A__B"},
		{name: "underscore beside a run", in: "a-_b", want: "MARATHON_APP_LABEL_A__B"},
		{name: "space", in: "my label", want: "MARATHON_APP_LABEL_MY_LABEL"},
		{name: "non-ASCII", in: "größe", want: "MARATHON_APP_LABEL_GR_E"},
		{name: "digits", in: "v1", want: "MARATHON_APP_LABEL_V1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LabelEnvName(tc.in); got != tc.want {
				t.Errorf("LabelEnvName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// overlayOn returns the JSON object body with overlay's top-level keys
// replacing its own.
func overlayOn(t *testing.T, body, overlay string) []byte {
	t.Helper()
	doc, err := DecodeObject([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	over, err := DecodeObject([]byte(overlay))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range over {
		doc[k] = v
	}
	b, err := canonicalJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckVIPs: Validate hands the app's ports with their labels and
// paths to CheckVIPs, and its details become 422 details.
func TestCheckVIPs(t *testing.T) {
	var got []PortLabels
	opts := Options{CheckVIPs: func(appID string, ports []PortLabels) []Detail {
		got = ports
		return []Detail{{Path: ports[len(ports)-1].Path + "/labels/VIP_0", Errors: []string{"refused: " + appID}}}
	}}
	for _, tc := range []struct{ name, body, path string }{
		{"bridge", `{"id":"/db","container":{"docker":{"image":"x"},"portMappings":[{"containerPort":5432},{"containerPort":8080,"protocol":"udp","name":"web","labels":{"VIP_0":"5.4.3.2:80"}}]},"networks":[{"mode":"container/bridge"}]}`, "/container/portMappings(1)"},
		{"host", `{"id":"/db","container":{"docker":{"image":"x"}},"portDefinitions":[{"port":0,"labels":{"VIP_0":"/db:80"}}]}`, "/portDefinitions(0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.body), opts)
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Details) != 1 || ve.Details[0].Path != tc.path+"/labels/VIP_0" || ve.Details[0].Errors[0] != "refused: /db" {
				t.Fatalf("Parse: %v", err)
			}
			last := got[len(got)-1]
			if last.Path != tc.path || len(last.Labels) != 1 {
				t.Fatalf("ports handed over: %+v", got)
			}
			if tc.name == "bridge" && (last.ContainerPort != 8080 || last.Protocol != "udp" || last.Name != "web") {
				t.Fatalf("bridge port: %+v", last)
			}
		})
	}
}
