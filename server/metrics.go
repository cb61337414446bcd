package server

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fieldsync/fieldsync/sync"
)

// metrics is one server's Prometheus registry: requests by route and
// status, their latency, and the Go runtime and process.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// streamsOpen and streamEvents count live streams and what they sent.
	streamsOpen  prometheus.Gauge
	streamEvents *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldsync_http_requests_total",
			Help: "HTTP requests answered, by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fieldsync_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method, route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route", "status"}),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fieldsync_streams_open",
			Help: "Live change streams open now.",
		}),
		streamEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldsync_stream_events_total",
			Help: "Events sent on live change streams, by event.",
		}, []string{"event"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.streamsOpen, m.streamEvents,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(method, route string, status int, elapsed time.Duration) {
	// Fiber's strings point into buffers it reuses: copy what outlives the request.
	method, route = strings.Clone(method), strings.Clone(route)
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(method, route, code).Inc()
	m.latency.WithLabelValues(method, route, code).Observe(elapsed.Seconds())
}

func (m *metrics) handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

// commitGrouper is a store that commits writes in groups and tells how.
type commitGrouper interface {
	CommitGroups() sync.CommitGroups
}

// commitGroups exports a store's group sizes as a histogram, read from the
// store at each scrape.
type commitGroups struct {
	store commitGrouper
	desc  *prometheus.Desc
}

// watchCommitGroups exports the group sizes of store when it groups its
// writes.
func (m *metrics) watchCommitGroups(store any) {
	g, ok := store.(commitGrouper)
	if !ok {
		return
	}
	m.reg.MustRegister(&commitGroups{store: g, desc: prometheus.NewDesc("fieldsync_store_commit_group_size",
		"Units of work (a push, a user change...) committed together in one write transaction of the record store.", nil, nil)})
}

func (c *commitGroups) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *commitGroups) Collect(ch chan<- prometheus.Metric) {
	g := c.store.CommitGroups()
	buckets := make(map[float64]uint64, len(g.Bounds))
	for i, b := range g.Bounds {
		buckets[b] = g.AtMost[i]
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, g.Transactions, float64(g.Units), buckets)
}

// pushDecisions exports how the engine's pushes were decided (see
// sync.PushDecisions), read from the engine at each scrape.
type pushDecisions struct {
	engine *sync.Engine
	desc   *prometheus.Desc
}

// watchPushDecisions exports how engine decides pushes.
func (m *metrics) watchPushDecisions(engine *sync.Engine) {
	m.reg.MustRegister(&pushDecisions{engine: engine, desc: prometheus.NewDesc("fieldsync_push_decisions_total",
		"Pushes by how they were decided: ahead of the store's write lock, on a snapshot (ahead); again under the lock, "+
			"what they read having changed before they were stored (again); under the lock only, being small or the store offering no snapshot (locked).",
		[]string{"how"}, nil)})
}

func (d *pushDecisions) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *pushDecisions) Collect(ch chan<- prometheus.Metric) {
	n := d.engine.PushDecisions()
	for how, v := range map[string]uint64{"ahead": n.Ahead, "again": n.Again, "locked": n.Locked} {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(v), how)
	}
}
