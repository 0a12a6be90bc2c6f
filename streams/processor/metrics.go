package processor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the processor's Prometheus series. The first four carry the names of the
// deployment guide, which dashboards and alerts are written against.
type Metrics struct {
	Requests        *prometheus.CounterVec   // optimization_requests_total{method,status}
	Duration        *prometheus.HistogramVec // optimization_duration_seconds{method}
	Active          prometheus.Gauge         // active_optimizations
	ModelPrediction *prometheus.HistogramVec // model_prediction_seconds{model_name}
	Events          *prometheus.CounterVec   // atlas_events_processed_total{type}
	DeadLetters     *prometheus.CounterVec   // atlas_dead_letters_total{topic}
	Lag             *prometheus.GaugeVec     // atlas_consumer_lag{topic}
	Models          prometheus.Gauge         // atlas_models
	BatchSize       prometheus.Histogram     // atlas_processor_batch_size
}

// NewMetrics creates the series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	solveBuckets := []float64{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5, 1}
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optimization_requests_total",
			Help: "Optimization requests answered, by objective (method) and result status.",
		}, []string{"method", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "optimization_duration_seconds",
			Help:    "Time to solve one optimization request, by objective (method).",
			Buckets: solveBuckets,
		}, []string{"method"}),
		Active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "active_optimizations",
			Help: "Optimizations being solved right now.",
		}),
		ModelPrediction: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "model_prediction_seconds",
			Help:    "Time spent evaluating a model's response curves for one request (the solve), by model.",
			Buckets: solveBuckets,
		}, []string{"model_name"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_events_processed_total",
			Help: "Events consumed by the processor, by event type.",
		}, []string{"type"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_dead_letters_total",
			Help: "Records sent to the dead-letter topic, by the topic they came from.",
		}, []string{"topic"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atlas_consumer_lag",
			Help: "Records appended to a topic that this instance has not processed yet.",
		}, []string{"topic"}),
		Models: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atlas_models",
			Help: "Model ids known to the registry.",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "atlas_processor_batch_size",
			Help:    "Requests handled per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.Active, m.ModelPrediction, m.Events, m.DeadLetters, m.Lag, m.Models, m.BatchSize)
	}
	return m
}
