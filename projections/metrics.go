package projections

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LagCollector exports how far a projector is behind the log, per topic, computed
// when scraped (the log's end offsets are read then, not on the projector's path):
//
//	atlas_projection_lag{topic}          messages between the projector's checkpoint and
//	                                     the end of the log (exact on Kafka; on JetStream,
//	                                     whose offsets are stream sequences shared by the
//	                                     partitions, the sequence distance: an upper bound)
//	atlas_projection_lag_seconds{topic}  0 when caught up, else how old the newest event
//	                                     it has projected is (since its start if none yet)
type LagCollector struct {
	p       *Projector
	timeout time.Duration
	lag     *prometheus.Desc
	seconds *prometheus.Desc
	now     func() time.Time
}

// NewLagCollector returns the collector of p's lag.
func NewLagCollector(p *Projector) *LagCollector {
	return &LagCollector{p: p, timeout: 2 * time.Second, now: time.Now,
		lag: prometheus.NewDesc("atlas_projection_lag",
			"Messages of the log the projector has not projected yet.", []string{"topic"}, nil),
		seconds: prometheus.NewDesc("atlas_projection_lag_seconds",
			"Age of the newest event the projector has projected, while it is behind; 0 when caught up.", []string{"topic"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.seconds
}

// Collect implements prometheus.Collector. A topic whose end offsets cannot be read in
// time (the log is down) is left out of the scrape.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	applied := c.p.Applied()
	started := c.p.startedAt()
	for _, topic := range c.p.topicList() {
		ends, err := c.p.Log.EndOffsets(ctx, topic)
		if err != nil {
			continue
		}
		var behind int64
		for part, end := range ends {
			behind += max(0, end-applied[topic][part])
		}
		secs := 0.0
		if behind > 0 {
			since := c.p.Newest(topic)
			if since.IsZero() {
				since = started
			}
			if !since.IsZero() {
				secs = max(0, c.now().Sub(since).Seconds())
			}
		}
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(behind), topic)
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, secs, topic)
	}
}
