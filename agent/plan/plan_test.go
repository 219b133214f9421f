package plan

import (
	"errors"
	"reflect"
	"testing"
)

// shop is the three-tier stack: web depends on api, api on db.
func shop(db, api, web int, configs ...string) map[string]App {
	cfg := func(i int) string {
		if i < len(configs) {
			return configs[i]
		}
		return "v1"
	}
	out := map[string]App{}
	if db >= 0 {
		out["/shop/db"] = App{ID: "/shop/db", Instances: db, Config: cfg(0)}
	}
	if api >= 0 {
		out["/shop/api"] = App{ID: "/shop/api", Instances: api, Config: cfg(1), Dependencies: []string{"/shop/db"}}
	}
	if web >= 0 {
		out["/shop/web"] = App{ID: "/shop/web", Instances: web, Config: cfg(2), Dependencies: []string{"/shop/api"}}
	}
	return out
}

func TestCompute(t *testing.T) {
	for _, tc := range []struct {
		name             string
		original, target map[string]App
		want             string
	}{
		{
			name:     "a new stack starts at 0, then scales in dependency order",
			original: map[string]App{}, target: shop(1, 1, 1),
			want: "[Start /shop/api Start /shop/db Start /shop/web] [Scale /shop/db] [Scale /shop/api] [Scale /shop/web]",
		},
		{
			name:     "scaled to 0: dependents first",
			original: shop(1, 1, 1), target: shop(0, 0, 0),
			want: "[Scale /shop/web] [Scale /shop/api] [Scale /shop/db]",
		},
		{
			name:     "scaled back: dependencies first",
			original: shop(0, 0, 0), target: shop(1, 1, 1),
			want: "[Scale /shop/db] [Scale /shop/api] [Scale /shop/web]",
		},
		{
			name:     "one app's configuration changes: only it restarts",
			original: shop(1, 1, 1), target: shop(1, 1, 1, "v1", "v2"),
			want: "[Restart /shop/api]",
		},
		{
			name:     "a configuration change with a new instance count is a restart",
			original: shop(1, 1, 1), target: shop(1, 3, 1, "v1", "v2"),
			want: "[Restart /shop/api]",
		},
		{
			name:     "removed: dependents stop first",
			original: shop(1, 1, 1), target: map[string]App{},
			want: "[Stop /shop/web] [Stop /shop/api] [Stop /shop/db]",
		},
		{
			name:     "nothing changes: no steps",
			original: shop(1, 1, 1), target: shop(1, 1, 1),
			want: "",
		},
		{
			name:     "stops and scale-downs before starts and scale-ups",
			original: shop(2, 1, -1), target: map[string]App{"/shop/db": {ID: "/shop/db", Instances: 1, Config: "v1"}, "/other": {ID: "/other", Instances: 1, Config: "v1"}},
			want: "[Stop /shop/api] [Scale /shop/db] [Start /other] [Scale /other]",
		},
		{
			name:     "independent apps share a step",
			original: map[string]App{}, target: map[string]App{"/a": {ID: "/a", Instances: 1}, "/b": {ID: "/b", Instances: 2}},
			want: "[Start /a Start /b] [Scale /a Scale /b]",
		},
		{
			name:     "dependencies outside the set are ignored",
			original: map[string]App{}, target: map[string]App{"/a": {ID: "/a", Instances: 1, Dependencies: []string{"/elsewhere"}}},
			want: "[Start /a] [Scale /a]",
		},
		{
			name:     "depth is the longest chain: a depends on b and c, c on b",
			original: map[string]App{},
			target: map[string]App{
				"/a": {ID: "/a", Instances: 1, Dependencies: []string{"/b", "/c"}},
				"/b": {ID: "/b", Instances: 1},
				"/c": {ID: "/c", Instances: 1, Dependencies: []string{"/b"}},
			},
			want: "[Start /a Start /b Start /c] [Scale /b] [Scale /c] [Scale /a]",
		},
		{
			name:     "an unchanged dependency still orders the changed apps",
			original: shop(1, 1, 1), target: shop(1, 1, 1, "v1", "v2", "v2"),
			want: "[Restart /shop/api] [Restart /shop/web]",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := Compute(tc.original, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if got := String(steps); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCycles(t *testing.T) {
	for _, tc := range []struct {
		name string
		apps map[string]App
		want []string
	}{
		{
			name: "two apps",
			apps: map[string]App{
				"/a": {ID: "/a", Dependencies: []string{"/b"}},
				"/b": {ID: "/b", Dependencies: []string{"/a"}},
			},
			want: []string{"/a", "/b", "/a"},
		},
		{
			name: "itself",
			apps: map[string]App{"/a": {ID: "/a", Dependencies: []string{"/a"}}},
			want: []string{"/a", "/a"},
		},
		{
			name: "three apps behind a fourth",
			apps: map[string]App{
				"/x": {ID: "/x", Dependencies: []string{"/a"}},
				"/a": {ID: "/a", Dependencies: []string{"/b"}},
				"/b": {ID: "/b", Dependencies: []string{"/c"}},
				"/c": {ID: "/c", Dependencies: []string{"/a"}},
			},
			want: []string{"/a", "/b", "/c", "/a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compute(map[string]App{}, tc.apps)
			var ce *CycleError
			if !errors.As(err, &ce) {
				t.Fatalf("want a CycleError, got %v", err)
			}
			if !reflect.DeepEqual(ce.Path, tc.want) {
				t.Errorf("cycle %v, want %v", ce.Path, tc.want)
			}
		})
	}
}

func TestAffected(t *testing.T) {
	steps, err := Compute(map[string]App{}, shop(1, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := Affected(steps); !reflect.DeepEqual(got, []string{"/shop/api", "/shop/db", "/shop/web"}) {
		t.Errorf("affected %v", got)
	}
}
