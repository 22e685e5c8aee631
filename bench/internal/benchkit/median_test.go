package benchkit

import "testing"

func TestMedian(t *testing.T) {
	if got := MedianOf([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd: %v", got)
	}
	if got := MedianOf([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("even: %v", got)
	}
	if got := MedianOf(nil); got != 0 {
		t.Errorf("empty: %v", got)
	}
	m := Median([]Result{{TPS: 10, CPUUsPerTx: 30, Txs: 5}, {TPS: 30, CPUUsPerTx: 10, Txs: 7}, {TPS: 20, CPUUsPerTx: 20, Txs: 6}})
	if m.TPS != 20 || m.CPUUsPerTx != 20 || m.Txs != 6 {
		t.Errorf("Median = %+v", m)
	}
}
