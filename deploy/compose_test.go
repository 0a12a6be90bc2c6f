package deploy

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

var composeFile = filepath.Join(root, "docker-compose.yml")

// composeEnv is what an operator exports before `docker compose up` (the file's
// header comment): the secrets have no defaults.
var composeEnv = []string{"CLICKHOUSE_PASSWORD=not-a-real-password", "GRAFANA_ADMIN_PASSWORD=not-a-real-password", "ATLAS_API_KEYS=ops:not-a-real-key"}

func loadCompose(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(root), cli.WithEnv(env), cli.WithProfiles([]string{"*"}))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func loadProject(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(t, composeEnv)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// atlasRole is the role an atlas service runs, or "" for the other images.
func atlasRole(s types.ServiceConfig) string {
	if !strings.HasPrefix(s.Image, "atlas:") || len(s.Command) == 0 {
		return ""
	}
	return s.Command[0]
}

func TestComposeNeedsTheSecrets(t *testing.T) {
	for _, missing := range []string{"CLICKHOUSE_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "ATLAS_API_KEYS"} {
		env := slices.DeleteFunc(slices.Clone(composeEnv), func(e string) bool { return strings.HasPrefix(e, missing+"=") })
		if _, err := loadCompose(t, env); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("without %s: %v, want an error naming it (no default secret)", missing, err)
		}
	}
}

func TestComposeServices(t *testing.T) {
	p := loadProject(t)
	for _, name := range []string{"kafka", "clickhouse", "nats", "processor", "projector", "api", "prometheus", "grafana"} {
		if _, err := p.GetService(name); err != nil {
			t.Errorf("no service %s", name)
		}
	}
	if s, err := p.GetService("processor"); err == nil {
		if s.GetScale() != 2 {
			t.Errorf("%d processors, want 2", s.GetScale())
		}
		// More processors than partitions would sit idle.
		var partitions int
		if v := s.Environment["ATLAS_PARTITIONS"]; v != nil {
			partitions, _ = strconv.Atoi(*v)
		}
		if s.GetScale() > partitions {
			t.Errorf("%d processors for %d partitions (ATLAS_PARTITIONS)", s.GetScale(), partitions)
		}
	}
	if s, err := p.GetService("kafka"); err == nil && !strings.HasPrefix(s.Image, "apache/kafka:") {
		t.Errorf("kafka image %s, want apache/kafka (KRaft)", s.Image)
	}
	if s, err := p.GetService("nats"); err == nil && !slices.Contains(s.Command, "--jetstream") {
		t.Errorf("nats command %v: JetStream is off", s.Command)
	}

	for _, s := range p.Services {
		t.Run(s.Name, func(t *testing.T) {
			if atlasRole(s) == "" {
				if i := strings.LastIndex(s.Image, ":"); i < 0 || strings.HasSuffix(s.Image, ":latest") {
					t.Errorf("image %s: pin a version", s.Image)
				}
			}
			oneShot := s.Restart == "no"
			if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
				if !oneShot {
					t.Error("no health check")
				}
			}
			if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.NanoCPUs == 0 || s.Deploy.Resources.Limits.MemoryBytes == 0 {
				if !oneShot {
					t.Error("no CPU and memory limits")
				}
			}
			for dep, cond := range s.DependsOn {
				target, err := p.GetService(dep)
				if err != nil {
					t.Errorf("depends on %s, which is not a service", dep)
					continue
				}
				if cond.Condition != types.ServiceConditionHealthy {
					t.Errorf("depends on %s with condition %q, want service_healthy", dep, cond.Condition)
				}
				if target.HealthCheck == nil || target.HealthCheck.Disable {
					t.Errorf("waits for %s to be healthy, which has no health check", dep)
				}
			}
			for _, v := range s.Volumes {
				switch v.Type {
				case types.VolumeTypeVolume:
					if _, ok := p.Volumes[v.Source]; !ok {
						t.Errorf("volume %s is not declared", v.Source)
					}
				case types.VolumeTypeBind:
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("bind mount: %v", err)
					}
					if !v.ReadOnly {
						t.Errorf("bind mount %s is writable", v.Source)
					}
				}
			}
		})
	}
}

func TestComposeAtlasServicesMatchTheBinary(t *testing.T) {
	p := loadProject(t)
	roles := 0
	for _, s := range p.Services {
		role := atlasRole(s)
		if role == "" {
			continue
		}
		roles++
		t.Run(s.Name, func(t *testing.T) {
			flags := flagsOf(t, role)
			env := map[string]string{}
			for k, v := range s.Environment {
				if v != nil {
					env[k] = *v
				}
				if _, ok := flags[k]; !ok {
					t.Errorf("sets %s, which `atlas %s` does not read", k, role)
				}
				// Interpolated from the environment, it has one of the test's values.
				if secretVar(k) && (v == nil || !slices.ContainsFunc(composeEnv, func(e string) bool { return strings.HasSuffix(e, "="+*v) })) {
					t.Errorf("%s is written in the file, not taken from the operator's environment", k)
				}
			}
			if s.User != "1000:1000" || !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("user %q, read_only %v, cap_drop %v: want 1000:1000, a read-only root and no capabilities", s.User, s.ReadOnly, s.CapDrop)
			}
			// Addresses of the backing services name services of this file.
			for _, v := range []string{"ATLAS_KAFKA_BROKERS", "ATLAS_NATS_URL", "ATLAS_CLICKHOUSE_ADDR"} {
				addr, ok := env[v]
				if !ok {
					continue
				}
				host := strings.TrimPrefix(addr, "nats://")
				if h, _, err := net.SplitHostPort(host); err == nil {
					host = h
				}
				if _, err := p.GetService(host); err != nil {
					t.Errorf("%s=%s: no service %s", v, addr, host)
				}
			}
			if s.HealthCheck == nil || s.HealthCheck.Disable {
				return
			}
			// The image has no shell: the check is the binary's own subcommand, on the
			// port the role listens on.
			port := listenPort(t, role, flags, env)
			test := s.HealthCheck.Test
			want := regexp.MustCompile(`^http://127\.0\.0\.1:` + port + `/(health|ready)$`)
			if len(test) != 5 || test[0] != "CMD" || test[1] != "/usr/local/bin/atlas" || test[2] != "healthcheck" || test[3] != "--url" || !want.MatchString(test[4]) {
				t.Errorf("health check %v, want [CMD /usr/local/bin/atlas healthcheck --url http://127.0.0.1:%s/health]", test, port)
			}
		})
	}
	if roles < 3 {
		t.Errorf("%d atlas services, want the processor, the projector and the API", roles)
	}
}

// prometheusConfig is the part of Prometheus's configuration that compose uses;
// decoded strictly, so an unexpected key is an error here too.
type prometheusConfig struct {
	Global        map[string]string `json:"global"`
	RuleFiles     []string          `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName      string `json:"job_name"`
		DNSSDConfigs []struct {
			Names []string `json:"names"`
			Type  string   `json:"type"`
			Port  int      `json:"port"`
		} `json:"dns_sd_configs"`
		StaticConfigs []struct {
			Targets []string `json:"targets"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

func TestPrometheusScrapesEveryRole(t *testing.T) {
	p := loadProject(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg prometheusConfig
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := map[string]string{} // service -> port
	for _, sc := range cfg.ScrapeConfigs {
		for _, sd := range sc.DNSSDConfigs {
			for _, n := range sd.Names {
				scraped[n] = strconv.Itoa(sd.Port)
			}
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				h, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %s: %v", sc.JobName, target, err)
				}
				scraped[h] = port
			}
		}
	}
	for svc, port := range scraped {
		if svc == "localhost" {
			continue
		}
		s, err := p.GetService(svc)
		if err != nil {
			t.Errorf("Prometheus scrapes %s, which is not a compose service", svc)
			continue
		}
		role := atlasRole(s)
		if role == "" {
			continue
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		if want := listenPort(t, role, flagsOf(t, role), env); port != want {
			t.Errorf("Prometheus scrapes %s on port %s; it serves /metrics on %s", svc, port, want)
		}
	}
	for _, s := range p.Services {
		if atlasRole(s) != "" && s.Restart != "no" {
			if _, ok := scraped[s.Name]; !ok {
				t.Errorf("Prometheus does not scrape %s", s.Name)
			}
		}
	}
	// The rule files it loads are the ones compose mounts.
	prom, _ := p.GetService("prometheus")
	for _, rf := range cfg.RuleFiles {
		if !slices.ContainsFunc(prom.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == rf }) {
			t.Errorf("rule file %s is not mounted into the prometheus service", rf)
		}
	}
}

// metricsIn parses a PromQL expression and returns the metric names it selects.
func metricsIn(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

func TestAlertRulesUseRegisteredMetrics(t *testing.T) {
	registered := registeredMetrics(t)
	path := filepath.Join(root, "deploy", "compose", "alerts.yml")
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("alerts.yml: %v", err)
	}
	if groups == nil {
		return
	}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			names, err := metricsIn(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			checkMetrics(t, "alert "+r.Alert, names, registered)
		}
	}
	if n == 0 {
		t.Error("no alert rules")
	}
}

// grafanaVars stand in for the variables Grafana substitutes before querying.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

func TestGrafanaDashboard(t *testing.T) {
	registered := registeredMetrics(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "grafana", "dashboards", "atlas.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("atlas.json: %v", err)
	}
	// The dashboard's data source is the one provisioned.
	var ds struct {
		Datasources []struct {
			UID string `json:"uid"`
			URL string `json:"url"`
		} `json:"datasources"`
	}
	db, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(db, &ds); err != nil || len(ds.Datasources) != 1 {
		t.Fatalf("datasource provisioning: %v", err)
	}
	if !strings.HasPrefix(ds.Datasources[0].URL, "http://prometheus:") {
		t.Errorf("datasource URL %s is not the prometheus service", ds.Datasources[0].URL)
	}
	// The dashboard provider reads the directory compose mounts the dashboards into.
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	pb, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "grafana", "provisioning", "dashboards", "atlas.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(pb, &prov); err != nil || len(prov.Providers) != 1 {
		t.Fatalf("dashboard provisioning: %v", err)
	}
	grafana, err := loadProject(t).GetService("grafana")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(grafana.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Target == prov.Providers[0].Options.Path && strings.HasSuffix(v.Source, filepath.Join("grafana", "dashboards"))
	}) {
		t.Errorf("Grafana loads dashboards from %s, where compose mounts none", prov.Providers[0].Options.Path)
	}
	titles := map[string]bool{}
	for _, panel := range dash.Panels {
		titles[panel.Title] = true
		if panel.Datasource.UID != ds.Datasources[0].UID {
			t.Errorf("panel %q uses data source %q; the provisioned one is %q", panel.Title, panel.Datasource.UID, ds.Datasources[0].UID)
		}
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			names, err := metricsIn(grafanaVars.Replace(target.Expr))
			if err != nil {
				t.Errorf("panel %q: %v", panel.Title, err)
				continue
			}
			checkMetrics(t, "panel "+panel.Title, names, registered)
		}
	}
	// The deployment guide's panels, and the stream's own.
	for _, want := range []string{"Request rate", "Solve duration p95", "Active optimizations", "Error rate", "Consumer lag", "Dead letters", "Projection lag"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
}

func TestMetricNamesCheckCanFail(t *testing.T) {
	registered := registeredMetrics(t)
	for _, n := range []string{"optimization_requests_total", "optimization_duration_seconds_bucket", "atlas_consumer_lag"} {
		if !registered[n] {
			t.Errorf("%s not found in the Go sources", n)
		}
	}
	names, err := metricsIn(`sum(rate(optimization_request_total{status="invalid"}[5m])) / on() group_left up`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"optimization_request_total", "up"}) || registered[names[0]] {
		t.Errorf("names %v: the misspelt one must be found and unknown", names)
	}
	if _, err := metricsIn(`rate(atlas_consumer_lag[5m]`); err == nil {
		t.Error("an unbalanced expression parsed")
	}
}
