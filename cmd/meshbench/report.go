package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// na marks a figure whose phase did not run.
const na = "-"

func fmtF(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

// resultLine is the one machine-readable line; fields of phases not run are "-".
func (r *report) resultLine() string {
	f := map[string]string{}
	for _, k := range []string{"tcp_ev_s", "mesh_ev_s", "ratio", "loss", "dups", "p50_us", "p99_us", "tcp_p99_us", "redundancy", "heap_per_node_b"} {
		f[k] = na
	}
	if r.TCP != nil {
		f["tcp_ev_s"] = fmtF(r.TCP.EvPerSec, 0)
	}
	if r.TCPLat != nil {
		f["tcp_p99_us"] = fmtF(r.TCPLat.P99us, 1)
	}
	if b := r.Blast; b != nil {
		f["mesh_ev_s"] = fmtF(b.EvPerSec, 0)
		f["loss"] = strconv.FormatInt(b.Loss, 10)
		f["dups"] = strconv.FormatInt(b.Dups, 10)
		f["redundancy"] = fmtF(b.Redundancy, 2)
		if r.TCP != nil && r.TCP.EvPerSec > 0 {
			f["ratio"] = fmtF(b.EvPerSec/r.TCP.EvPerSec, 3)
		}
	}
	if l := r.Latency; l != nil {
		f["p50_us"] = fmtF(l.P50us, 1)
		f["p99_us"] = fmtF(l.P99us, 1)
		// A paced phase's losses and dups count too.
		if r.Blast == nil {
			f["loss"], f["dups"] = "0", "0"
		}
		f["loss"] = addInt(f["loss"], l.Loss)
		f["dups"] = addInt(f["dups"], l.Dups)
	}
	if m := r.Memory; m != nil {
		f["heap_per_node_b"] = strconv.FormatInt(m.HeapPerNodeRest, 10)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "RESULT nodes=%d size=%d", r.Nodes, r.Size)
	for _, k := range []string{"tcp_ev_s", "mesh_ev_s", "ratio", "loss", "dups", "p50_us", "p99_us", "tcp_p99_us", "redundancy", "heap_per_node_b"} {
		fmt.Fprintf(&b, " %s=%s", k, f[k])
	}
	return b.String()
}

func addInt(s string, v int64) string {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return s
	}
	return strconv.FormatInt(n+v, 10)
}

// writeTable prints the human report.
func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "meshbench: %d nodes, %d-byte events, network=%s topology=%s, %d CPUs, %s, load average %s\n",
		r.Nodes, r.Size, r.Network, r.Topology, r.Machine.CPUs, r.Machine.GoVersion, r.Machine.LoadAvg)
	fmt.Fprintf(w, "mesh config: %s\n\n", r.Config)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "throughput\tev/s per receiver\tevents\tseconds\tloss\tdups\treordered\tredundancy\tCPU ns/delivery\t")
	if t := r.TCP; t != nil {
		fmt.Fprintf(tw, "raw tcp (1→%d)\t%s\t%d\t%s\t0\t0\t0\t1.00\t%s\t\n", t.Receivers, fmtF(t.EvPerSec, 0), t.Frames, fmtF(t.Seconds, 2), fmtF(t.CPUPerDelivery, 0))
	}
	if b := r.Blast; b != nil {
		fmt.Fprintf(tw, "mesh %s (1→%d)\t%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t\n", b.Topology, b.Receivers, fmtF(b.EvPerSec, 0),
			b.Events, fmtF(b.Seconds, 2), b.Loss, b.Dups, b.Reordered, fmtF(b.Redundancy, 2), fmtF(b.CPUPerDelivery, 0))
		if r.TCP != nil {
			cpu := ""
			if r.TCP.CPUPerDelivery > 0 {
				cpu = fmtF(b.CPUPerDelivery/r.TCP.CPUPerDelivery, 1) + "×"
			}
			fmt.Fprintf(tw, "mesh / tcp\t%s\t\t\t\t\t\t\t%s\t\n", fmtF(b.EvPerSec/r.TCP.EvPerSec, 3), cpu)
		}
	}
	tw.Flush()
	if t := r.TCP; t != nil && len(t.Runs) > 1 {
		runs := make([]string, len(t.Runs))
		for i, v := range t.Runs {
			runs[i] = fmtF(v, 0)
		}
		fmt.Fprintf(w, "  raw tcp: %s ev/s before and after the blast; the ratio is against the faster\n", strings.Join(runs, " and "))
	}
	if b := r.Blast; b != nil {
		fmt.Fprintf(w, "  blast: emit phase %.2fs (%.0f Emit/s, %d waited for back-pressure, %.2fs in all), forwarded frames %d, notice batches per delivery %.3f, grafts %d (%d events resent), handler drops %d, overflowed %d, declared lost %d, emit errors %d\n",
			b.EmitSeconds, float64(b.Events)/b.EmitSeconds, b.EmitWaits, b.EmitWaited, b.Forwarded, b.NoticesPerDelivery, b.Grafts, b.GraftResent, b.HandlerDropped, b.Overflowed, b.DeclaredLost, b.EmitErrors)
		if b.WarmupSeconds > 0 {
			fmt.Fprintf(w, "  blast: measured after an unmeasured warm-up blast of %.2fs (its events are in loss, dups, reordered and declared lost)\n", b.WarmupSeconds)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (µs)\trate/s\tsamples\tp50\tp99\tp999\tmax\tloss\tdups\t")
	row := func(name string, rate int, q quantiles, loss, dups int64) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t\n", name, rate, q.Samples,
			fmtF(q.P50us, 1), fmtF(q.P99us, 1), fmtF(q.P999us, 1), fmtF(q.MaxUs, 1), loss, dups)
	}
	if q := r.TCPLat; q != nil && r.TCP != nil {
		row(fmt.Sprintf("raw tcp (1→%d)", r.TCP.Receivers), r.rate(), *q, 0, 0)
	}
	if l := r.Latency; l != nil {
		row(fmt.Sprintf("mesh %s, 1 hop", l.Topology), l.Rate, l.quantiles, l.Loss, l.Dups)
	}
	if l := r.Line; l != nil {
		row(fmt.Sprintf("line of %d, end to end, cold", l.Nodes), l.Rate, l.quantiles, l.Loss, l.Dups)
	}
	if l := r.LineWarm; l != nil {
		row(fmt.Sprintf("line of %d, end to end, tree built", l.Nodes), l.Rate, l.quantiles, l.Loss, l.Dups)
	}
	tw.Flush()
	if r.TCPLat != nil && r.Latency != nil && r.TCPLat.P99us > 0 {
		fmt.Fprintf(w, "  p99 mesh / tcp: %.2f×\n", r.Latency.P99us/r.TCPLat.P99us)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "\nmemory: heap per node at rest %d B (%.1f links, %.1f goroutines per node); with %d events buffered for a closed peer: %d B per live node (%.0f B per buffered event)\n",
			m.HeapPerNodeRest, m.LinksPerNode, m.GoroutinesPerNode, m.Buffered, m.HeapPerNodeBuffers, m.BytesPerBuffered)
	}
	for _, c := range r.Converge {
		fmt.Fprintf(w, "converge: %d nodes, %d links up %.3fs after the first Join\n", c.Nodes, c.Links, c.Seconds)
	}
	fmt.Fprintln(w)
}

// rate is the paced rate, from whichever paced phase ran.
func (r *report) rate() int {
	for _, l := range []*latencyResult{r.Latency, r.Line} {
		if l != nil {
			return l.Rate
		}
	}
	return 0
}
