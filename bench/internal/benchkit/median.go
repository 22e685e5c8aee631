package benchkit

import "slices"

// Median is each figure of rs (TPS, latency, CPU per transaction and the
// counts) at its own median; the error maps are left empty.
func Median(rs []Result) Result {
	pick := func(f func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return MedianOf(v)
	}
	return Result{
		TPS:        pick(func(r Result) float64 { return r.TPS }),
		LatencyMs:  pick(func(r Result) float64 { return r.LatencyMs }),
		CPUUsPerTx: pick(func(r Result) float64 { return r.CPUUsPerTx }),
		Txs:        int(pick(func(r Result) float64 { return float64(r.Txs) })),
		Failed:     int(pick(func(r Result) float64 { return float64(r.Failed) })),
		Aborted:    int(pick(func(r Result) float64 { return float64(r.Aborted) })),
	}
}

// MedianOf is the median of v (the mean of the middle two for an even
// count); it sorts v.
func MedianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
