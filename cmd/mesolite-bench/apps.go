package main

// residentApp is the tutorial's shape: the test image, one persistent
// volume, a bridge port mapping to a dynamic host port; no health check.
func residentApp(id string, instances int) map[string]any {
	return map[string]any{
		"id": id, "cpus": 0.1, "mem": 64, "instances": instances,
		"networks": []any{map[string]any{"mode": "container/bridge"}},
		"container": map[string]any{
			"type":    "DOCKER",
			"docker":  map[string]any{"image": testImage},
			"volumes": []any{map[string]any{"containerPath": "data", "mode": "RW", "persistent": map[string]any{"size": 16}}},
			"portMappings": []any{
				map[string]any{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"},
			},
		},
		"env":             map[string]any{"DATA_DIR": "/mnt/mesos/sandbox/data"},
		"upgradeStrategy": map[string]any{"maximumOverCapacity": 0, "minimumHealthCapacity": 0},
	}
}

// healthCheck is one check of the given protocol (HTTP or TCP) every
// second on the app's first port.
func healthCheck(protocol string) map[string]any {
	hc := map[string]any{"protocol": protocol, "portIndex": 0, "gracePeriodSeconds": 30,
		"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 5}
	if protocol == "HTTP" {
		hc["path"] = "/health"
	}
	return hc
}

// checkedApp is residentApp with one health check every second.
func checkedApp(id string, instances int, protocol string) map[string]any {
	m := residentApp(id, instances)
	m["healthChecks"] = []any{healthCheck(protocol)}
	return m
}

// tcpCheckedApp is an app for the fake runtime whose containers "listen"
// on containerPort of 127.0.0.1 (the fake's address): a TCP check every
// second reaches whatever listens there.
func tcpCheckedApp(id string, instances, containerPort int) map[string]any {
	m := residentApp(id, instances)
	m["container"].(map[string]any)["portMappings"] = []any{
		map[string]any{"containerPort": containerPort, "hostPort": 0, "protocol": "tcp"},
	}
	m["healthChecks"] = []any{
		map[string]any{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 30,
			"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 5},
	}
	return m
}
