package agent

import (
	"slices"
	"testing"

	"github.com/mesolite/mesolite/agent/marathon"
)

// TestAlignedHostPorts: the data plane gets a task's host ports at the
// index of the port they belong to; a mapping without a hostPort (on a
// container network) has none (0), so the ports after it are not shifted
// onto it.
func TestAlignedHostPorts(t *testing.T) {
	for _, tc := range []struct {
		name, app string
		ports     []int
		want      []uint16
	}{
		{"host networking", `{"id":"/h","cmd":"x","portDefinitions":[{"port":0},{"port":0}]}`, []int{31000, 31001}, []uint16{31000, 31001}},
		{"bridge, every mapping published", `{"id":"/b","container":{"type":"DOCKER","docker":{"image":"i:1"},"portMappings":[{"containerPort":80,"hostPort":0},{"containerPort":81,"hostPort":0}]},"networks":[{"mode":"container/bridge"}]}`,
			[]int{31000, 31001}, []uint16{31000, 31001}},
		{"container network, the first mapping not published", `{"id":"/c","container":{"type":"DOCKER","docker":{"image":"i:1"},"portMappings":[{"containerPort":80},{"containerPort":81,"hostPort":0}]},"networks":[{"mode":"container","name":"dcos"}]}`,
			[]int{31005}, []uint16{0, 31005}},
	} {
		spec, _, err := marathon.Parse([]byte(tc.app), marathon.Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := alignedHostPorts(spec, tc.ports); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
