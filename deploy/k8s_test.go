package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var k8sDir = filepath.Join(root, "deploy", "k8s")

// newObject returns the Kubernetes API type of an apiVersion and kind; kinds the
// manifests are not expected to hold are an error, so a typo cannot slip through
// as "something else".
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "networking.k8s.io/v1 Ingress":
		return &networkingv1.Ingress{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "v1 Secret":
		// Known, and refused: secret values do not belong in the repository.
		return nil, errors.New("a Secret: create it in the cluster instead (README.md, Deploying)")
	}
	return nil, fmt.Errorf("unknown apiVersion %q kind %q", apiVersion, kind)
}

// decodeManifests splits a multi-document YAML stream and decodes every document
// strictly (unknown or duplicate fields fail) into its API type.
func decodeManifests(r io.Reader) ([]any, error) {
	var objs []any
	reader := k8syaml.NewYAMLReader(bufio.NewReader(r))
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if tm == (metav1.TypeMeta{}) {
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue // only comments
			}
			return nil, fmt.Errorf("document %d: no apiVersion and kind", i)
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// cluster is every object of the manifests, by kind.
type cluster struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	ingresses   []*networkingv1.Ingress
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	policies    []*networkingv1.NetworkPolicy
	accounts    map[string]bool
	namespaces  []string
}

func manifestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "kustomization.yaml" })
	if len(files) == 0 {
		t.Fatal("no manifests in deploy/k8s")
	}
	return files
}

func loadCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{configMaps: map[string]*corev1.ConfigMap{}, accounts: map[string]bool{}}
	for _, f := range manifestFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifests(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			switch o := o.(type) {
			case *appsv1.Deployment:
				c.deployments = append(c.deployments, o)
			case *corev1.Service:
				c.services = append(c.services, o)
			case *corev1.ConfigMap:
				c.configMaps[o.Name] = o
			case *networkingv1.Ingress:
				c.ingresses = append(c.ingresses, o)
			case *autoscalingv2.HorizontalPodAutoscaler:
				c.hpas = append(c.hpas, o)
			case *policyv1.PodDisruptionBudget:
				c.pdbs = append(c.pdbs, o)
			case *networkingv1.NetworkPolicy:
				c.policies = append(c.policies, o)
			case *corev1.ServiceAccount:
				c.accounts[o.Name] = true
			case *corev1.Namespace:
				c.namespaces = append(c.namespaces, o.Name)
			}
		}
	}
	return c
}

func (c *cluster) deployment(name string) *appsv1.Deployment {
	for _, d := range c.deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// selected reports the deployments whose pods a selector matches.
func (c *cluster) selected(t *testing.T, sel *metav1.LabelSelector) []*appsv1.Deployment {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	var out []*appsv1.Deployment
	for _, d := range c.deployments {
		if !s.Empty() && s.Matches(labels.Set(d.Spec.Template.Labels)) {
			out = append(out, d)
		}
	}
	return out
}

func TestManifestDecoderIsStrict(t *testing.T) {
	// The checks below are only as good as the decoder: each of these must fail.
	for name, doc := range map[string]string{
		"misspelt field":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n",
		"misplaced field":  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n    - {port: 80, targetPort: http, containerPort: 80}\n",
		"unknown kind":     "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n",
		"wrong version":    "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n",
		"no kind":          "metadata: {name: x}\n",
		"wrong type":       "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n",
		"duplicate field":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"a secret value":   "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {password: hunter2}\n",
		"second doc wrong": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\ndatas: {}\n",
	} {
		if _, err := decodeManifests(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	objs, err := decodeManifests(strings.NewReader("# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"))
	if err != nil || len(objs) != 1 {
		t.Errorf("a valid stream: %d objects, %v", len(objs), err)
	}
}

func TestKubernetesManifestsDecode(t *testing.T) {
	c := loadCluster(t)
	for _, name := range []string{"atlas-processor", "atlas-projector", "atlas-api"} {
		if c.deployment(name) == nil {
			t.Errorf("no Deployment %s", name)
		}
	}
	if len(c.ingresses) == 0 || len(c.hpas) == 0 || len(c.pdbs) == 0 || len(c.policies) == 0 || len(c.accounts) == 0 {
		t.Errorf("missing kinds: %d ingresses, %d HPAs, %d PDBs, %d network policies, %d service accounts",
			len(c.ingresses), len(c.hpas), len(c.pdbs), len(c.policies), len(c.accounts))
	}
}

// TestKustomizeBuild runs the kustomization as `kubectl apply -k` would and decodes
// what it produces.
func TestKustomizeBuild(t *testing.T) {
	var k struct {
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	for _, f := range manifestFiles(t) {
		if !slices.Contains(k.Resources, filepath.Base(f)) {
			t.Errorf("kustomization.yaml does not list %s", filepath.Base(f))
		}
	}
	abs, err := filepath.Abs(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifests(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("kustomize output: %v", err)
	}
	want := 0
	for _, f := range manifestFiles(t) {
		b, _ := os.ReadFile(f)
		o, _ := decodeManifests(bytes.NewReader(b))
		want += len(o)
	}
	if len(objs) != want {
		t.Errorf("kustomize built %d objects, the files hold %d", len(objs), want)
	}
	for _, o := range objs {
		if d, ok := o.(*appsv1.Deployment); ok && d.Namespace != "atlas" {
			t.Errorf("%s in namespace %q", d.Name, d.Namespace)
		}
	}
}

func roleOf(t *testing.T, d *appsv1.Deployment) (string, *corev1.Container) {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want the one atlas container", d.Name, len(cs))
	}
	args := append(slices.Clone(cs[0].Command), cs[0].Args...)
	if len(args) == 0 {
		t.Fatalf("%s: no role in command or args", d.Name)
	}
	return args[0], &cs[0]
}

// containerEnv is the variables a container gets, from env and from envFrom
// ConfigMaps (whose keys must then be the ones the binary reads too).
func (c *cluster) containerEnv(t *testing.T, d *appsv1.Deployment, ct *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range ct.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := c.configMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				t.Errorf("%s: envFrom ConfigMap %s is not in the manifests", d.Name, ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		case ef.SecretRef != nil:
			t.Errorf("%s: envFrom Secret %s hides which variables it sets: use secretKeyRef", d.Name, ef.SecretRef.Name)
		}
	}
	for _, e := range ct.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "<secret " + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key + ">"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm := c.configMaps[ref.Name]
			if cm == nil || cm.Data[ref.Key] == "" {
				t.Errorf("%s: %s refers to ConfigMap key %s/%s, which the manifests do not define", d.Name, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = cm.Data[ref.Key]
		default:
			env[e.Name] = ""
		}
	}
	return env
}

func portNumber(t *testing.T, ct *corev1.Container, p intstr.IntOrString) string {
	t.Helper()
	if p.Type == intstr.Int {
		return strconv.Itoa(int(p.IntVal))
	}
	for _, cp := range ct.Ports {
		if cp.Name == p.StrVal {
			return strconv.Itoa(int(cp.ContainerPort))
		}
	}
	t.Errorf("container %s has no port named %q", ct.Name, p.StrVal)
	return ""
}

func TestKubernetesDeploymentsMatchTheBinary(t *testing.T) {
	c := loadCluster(t)
	for _, d := range c.deployments {
		t.Run(d.Name, func(t *testing.T) {
			role, ct := roleOf(t, d)
			if !slices.Contains([]string{"process", "project", "api"}, role) {
				t.Fatalf("role %q is not one of the scaled roles", role)
			}
			flags := flagsOf(t, role)
			env := c.containerEnv(t, d, ct)
			for _, name := range sortedKeys(env) {
				if _, ok := flags[name]; !ok && strings.HasPrefix(name, "ATLAS_") {
					t.Errorf("sets %s, which `atlas %s` does not read", name, role)
				} else if !strings.HasPrefix(name, "ATLAS_") {
					t.Errorf("sets %s: only ATLAS_* variables configure atlas", name)
				}
			}
			for name, v := range env {
				if secretVar(name) && !strings.HasPrefix(v, "<secret ") {
					t.Errorf("%s is set in the manifest, not from a Secret", name)
				}
			}
			port := listenPort(t, role, flags, env)

			// The guide's probes, on the port the role listens on.
			live, ready := ct.LivenessProbe, ct.ReadinessProbe
			if live == nil || live.HTTPGet == nil || live.HTTPGet.Path != "/health" {
				t.Errorf("liveness probe %+v, want GET /health", live)
			} else if p := portNumber(t, ct, live.HTTPGet.Port); p != port {
				t.Errorf("liveness probe on port %s, the role listens on %s", p, port)
			}
			if ready == nil || ready.HTTPGet == nil || ready.HTTPGet.Path != "/ready" {
				t.Errorf("readiness probe %+v, want GET /ready", ready)
			} else if p := portNumber(t, ct, ready.HTTPGet.Port); p != port {
				t.Errorf("readiness probe on port %s, the role listens on %s", p, port)
			}
			ann := d.Spec.Template.Annotations
			if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
				t.Errorf("scrape annotations %v, want port %s and /metrics", ann, port)
			}

			// Security context.
			ps := d.Spec.Template.Spec.SecurityContext
			if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 1000 ||
				ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context %+v: want runAsNonRoot, uid 1000, seccomp RuntimeDefault", ps)
			}
			cs := ct.SecurityContext
			if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
				cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
				cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container security context %+v: want a read-only root, no privilege escalation, all capabilities dropped", cs)
			}
			if sa := d.Spec.Template.Spec.ServiceAccountName; !c.accounts[sa] {
				t.Errorf("service account %q is not in the manifests", sa)
			}

			// Resources and spreading.
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := ct.Resources.Requests[r]; !ok {
					t.Errorf("no %s request", r)
				}
				if _, ok := ct.Resources.Limits[r]; !ok {
					t.Errorf("no %s limit", r)
				}
			}
			aff := d.Spec.Template.Spec.Affinity
			if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
				t.Error("no pod anti-affinity")
			} else {
				term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
				if got := c.selected(t, term.LabelSelector); len(got) != 1 || got[0] != d {
					t.Error("the anti-affinity selector does not select this deployment's own pods")
				}
			}
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("selector %v does not match the pod labels %v", d.Spec.Selector, d.Spec.Template.Labels)
			}
		})
	}
}

func TestKubernetesReferences(t *testing.T) {
	c := loadCluster(t)
	registered := registeredMetrics(t)

	services := map[string]*corev1.Service{}
	for _, s := range c.services {
		services[s.Name] = s
		got := c.selected(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(got) != 1 {
			t.Errorf("Service %s selects %d deployments, want 1", s.Name, len(got))
			continue
		}
		_, ct := roleOf(t, got[0])
		for _, p := range s.Spec.Ports {
			portNumber(t, ct, p.TargetPort)
		}
	}

	for _, ing := range c.ingresses {
		if len(ing.Spec.TLS) == 0 || ing.Spec.TLS[0].SecretName == "" {
			t.Errorf("Ingress %s: no TLS", ing.Name)
		}
		if ing.Annotations["nginx.ingress.kubernetes.io/limit-rps"] == "" {
			t.Errorf("Ingress %s: no rate limit", ing.Name)
		}
		for _, rule := range ing.Spec.Rules {
			if !slices.ContainsFunc(ing.Spec.TLS, func(tls networkingv1.IngressTLS) bool { return slices.Contains(tls.Hosts, rule.Host) }) {
				t.Errorf("Ingress %s: host %s is not covered by TLS", ing.Name, rule.Host)
			}
			for _, p := range rule.HTTP.Paths {
				if p.Path == "/metrics" || strings.HasPrefix(p.Path, "/ready") {
					t.Errorf("Ingress %s exposes %s", ing.Name, p.Path)
				}
				b := p.Backend.Service
				s := services[b.Name]
				if s == nil {
					t.Errorf("Ingress %s: path %s goes to Service %s, which is not in the manifests", ing.Name, p.Path, b.Name)
					continue
				}
				if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool {
					return sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number && b.Port.Number != 0
				}) {
					t.Errorf("Ingress %s: Service %s has no port %+v", ing.Name, b.Name, b.Port)
				}
			}
		}
	}

	partitions, err := strconv.Atoi(c.configMaps["atlas-log"].Data["ATLAS_PARTITIONS"])
	if err != nil {
		t.Fatalf("ATLAS_PARTITIONS: %v", err)
	}
	scaled := map[string]bool{}
	for _, h := range c.hpas {
		ref := h.Spec.ScaleTargetRef
		d := c.deployment(ref.Name)
		if ref.Kind != "Deployment" || d == nil {
			t.Errorf("HPA %s scales %s %s, which is not in the manifests", h.Name, ref.Kind, ref.Name)
			continue
		}
		scaled[d.Name] = true
		role, _ := roleOf(t, d)
		if role == "project" {
			t.Errorf("HPA %s scales the projector, which runs as one instance", h.Name)
		}
		if role == "process" && int(h.Spec.MaxReplicas) > partitions {
			t.Errorf("HPA %s: up to %d processors for %d partitions", h.Name, h.Spec.MaxReplicas, partitions)
		}
		hasCPU := false
		for _, m := range h.Spec.Metrics {
			switch m.Type {
			case autoscalingv2.ResourceMetricSourceType:
				hasCPU = hasCPU || m.Resource.Name == corev1.ResourceCPU
			case autoscalingv2.PodsMetricSourceType:
				checkMetrics(t, "HPA "+h.Name, []string{m.Pods.Metric.Name}, registered)
			case autoscalingv2.ExternalMetricSourceType:
				checkMetrics(t, "HPA "+h.Name, []string{m.External.Metric.Name}, registered)
			}
		}
		if !hasCPU {
			t.Errorf("HPA %s does not scale on CPU", h.Name)
		}
		if role == "process" && !slices.ContainsFunc(h.Spec.Metrics, func(m autoscalingv2.MetricSpec) bool {
			return m.Pods != nil && m.Pods.Metric.Name == "atlas_consumer_lag" || m.External != nil && m.External.Metric.Name == "atlas_consumer_lag"
		}) {
			t.Errorf("HPA %s does not scale the processors on consumer lag", h.Name)
		}
		if d.Spec.Replicas != nil && *d.Spec.Replicas < *h.Spec.MinReplicas {
			t.Errorf("%s starts with %d replicas, below its HPA's minimum %d", d.Name, *d.Spec.Replicas, *h.Spec.MinReplicas)
		}
	}
	for _, name := range []string{"atlas-processor", "atlas-api"} {
		if !scaled[name] {
			t.Errorf("no HPA for %s", name)
		}
	}
	for _, p := range c.pdbs {
		got := c.selected(t, p.Spec.Selector)
		if len(got) != 1 {
			t.Errorf("PDB %s selects %d deployments, want 1", p.Name, len(got))
		} else if p.Spec.MinAvailable != nil && got[0].Spec.Replicas != nil && p.Spec.MinAvailable.IntValue() >= int(*got[0].Spec.Replicas) {
			t.Errorf("PDB %s keeps %s of %d pods: a drain could never proceed", p.Name, p.Spec.MinAvailable.String(), *got[0].Spec.Replicas)
		}
	}
}

// TestNetworkPoliciesAdmitTheListeningPorts: with a default deny in place, every
// port a role listens on must be opened by some policy that selects its pods.
func TestNetworkPoliciesAdmitTheListeningPorts(t *testing.T) {
	c := loadCluster(t)
	denyAll := slices.ContainsFunc(c.policies, func(p *networkingv1.NetworkPolicy) bool {
		return len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
			len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	})
	if !denyAll {
		t.Error("no default-deny NetworkPolicy")
	}
	for _, d := range c.deployments {
		_, ct := roleOf(t, d)
		for _, cp := range ct.Ports {
			open := false
			for _, p := range c.policies {
				if !slices.Contains(c.selected(t, &p.Spec.PodSelector), d) && len(p.Spec.PodSelector.MatchLabels) > 0 {
					continue
				}
				for _, rule := range p.Spec.Ingress {
					for _, pp := range rule.Ports {
						if pp.Port != nil && (pp.Port.IntValue() == int(cp.ContainerPort) || pp.Port.StrVal == cp.Name && cp.Name != "") {
							open = true
						}
					}
				}
			}
			if !open {
				t.Errorf("%s listens on %d (%s), which no NetworkPolicy admits", d.Name, cp.ContainerPort, cp.Name)
			}
		}
	}
}
