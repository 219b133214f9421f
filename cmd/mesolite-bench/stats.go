package main

import (
	"math"
	"sort"
	"time"
)

// Dist is the spread of repeated measurements of one figure.
type Dist struct {
	N      int       `json:"n"`
	Min    float64   `json:"min"`
	P50    float64   `json:"p50"`
	P90    float64   `json:"p90"`
	P99    float64   `json:"p99,omitempty"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values,omitempty"` // the samples, when there are few
}

// dist summarizes samples; keep says whether to list them.
func dist(samples []float64, keep bool) *Dist {
	if len(samples) == 0 {
		return nil
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	d := &Dist{N: len(s), Min: s[0], Max: s[len(s)-1], P50: quantile(s, 0.5), P90: quantile(s, 0.9)}
	if len(s) >= 50 {
		d.P99 = quantile(s, 0.99)
	}
	if keep {
		d.Values = samples
	}
	return d
}

// quantile reads q (0..1) of sorted samples, interpolating between the two
// nearest ranks.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return sorted[lo] + (sorted[hi]-sorted[lo])*frac
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ratios divides paired samples: a[i] / b[i].
func ratios(a, b []float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}
