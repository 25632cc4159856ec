// A stand-in for quay.io/brancz/prometheus-example-app:v0.5.0, the builder image config/samples/builder.yaml names,
// which cannot be pulled on a machine without registry access. Like that app it serves `/` (200), `/err` (404) and
// Prometheus text on :8080/metrics with `version`, `http_requests_total{code,method}` and
// `http_request_duration_seconds` for `/`. Standard library only, static, a few MB of memory: the sample's pod has a
// 64Mi limit, a read-only root filesystem and runs as uid 65534.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

const appVersion = "v0.5.0"

var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type metrics struct {
	mu       sync.Mutex
	requests map[[2]string]uint64 // {code, method} -> count
	counts   []uint64             // per bucket, not cumulative
	count    uint64
	sum      float64
}

func (m *metrics) observe(code int, method string, seconds float64, timed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[[2]string{fmt.Sprint(code), strings.ToLower(method)}]++
	if !timed {
		return
	}
	for i, b := range buckets {
		if seconds <= b {
			m.counts[i]++
			break
		}
	}
	m.count++
	m.sum += seconds
}

func (m *metrics) write(w http.ResponseWriter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP version Version information about this binary\n# TYPE version gauge\n")
	fmt.Fprintf(&b, "version{version=%q} 1\n", appVersion)
	b.WriteString("# HELP http_requests_total Count of all HTTP requests\n# TYPE http_requests_total counter\n")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(&b, "http_requests_total{code=%q,method=%q} %d\n", k[0], k[1], m.requests[k])
	}
	b.WriteString("# HELP http_request_duration_seconds Duration of all HTTP requests\n")
	b.WriteString("# TYPE http_request_duration_seconds histogram\n")
	var cumulative uint64
	for i, le := range buckets {
		cumulative += m.counts[i]
		fmt.Fprintf(&b, "http_request_duration_seconds_bucket{handler=\"found\",le=\"%g\"} %d\n", le, cumulative)
	}
	fmt.Fprintf(&b, "http_request_duration_seconds_bucket{handler=\"found\",le=\"+Inf\"} %d\n", m.count)
	fmt.Fprintf(&b, "http_request_duration_seconds_sum{handler=\"found\"} %g\n", m.sum)
	fmt.Fprintf(&b, "http_request_duration_seconds_count{handler=\"found\"} %d\n", m.count)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

func main() {
	bind := flag.String("bind", ":8080", "address to listen on")
	flag.Parse()
	m := &metrics{requests: map[[2]string]uint64{}, counts: make([]uint64, len(buckets))}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { m.write(w) })
	mux.HandleFunc("/err", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		m.observe(http.StatusNotFound, r.Method, 0, false)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, _ = w.Write([]byte("Hello from example application."))
		m.observe(http.StatusOK, r.Method, time.Since(start).Seconds(), true)
	})
	log.Printf("prometheus-example-app stand-in %s listening on %s", appVersion, *bind)
	log.Fatal(http.ListenAndServe(*bind, mux))
}
