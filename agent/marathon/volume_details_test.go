package marathon

import (
	"strings"
	"testing"
)

// TestPersistentVolumeDetails: a persistent volume of a type mesolite
// refuses gets that one reason; maxSize and constraints are errors of their
// own only on a root volume, where they mean nothing.
func TestPersistentVolumeDetails(t *testing.T) {
	vol := func(persistent string) string {
		return `{"container":{"type":"DOCKER","docker":{"image":"img:1"},"volumes":[{"containerPath":"data","mode":"RW","persistent":` + persistent + `}]},"residency":{"taskLostBehavior":"WAIT_FOREVER"},"upgradeStrategy":{"minimumHealthCapacity":0,"maximumOverCapacity":0}}`
	}
	const pp = "/container/volumes(0)/persistent"
	for _, tc := range []struct {
		name, persistent string
		want             []string // detail paths, in order
	}{
		{"mount with maxSize and constraints", `{"type":"mount","size":10,"maxSize":20,"constraints":[["path","LIKE","/mnt/.+"]]}`, []string{pp + "/type"}},
		{"path with constraints", `{"type":"path","size":10,"constraints":[["path","LIKE","/mnt/.+"]]}`, []string{pp + "/type"}},
		{"root with maxSize", `{"type":"root","size":10,"maxSize":20}`, []string{pp + "/maxSize"}},
		{"root with constraints", `{"size":10,"constraints":[["path","LIKE","/mnt/.+"]]}`, []string{pp}},
		{"plain root", `{"size":10}`, nil},
	} {
		_, _, err := Parse(with(t, vol(tc.persistent)), Options{})
		var got []string
		if ve, ok := err.(*ValidationError); ok {
			for _, d := range ve.Details {
				got = append(got, d.Path)
			}
		} else if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: details at %v, want %v (%v)", tc.name, got, tc.want, err)
		}
	}
}
