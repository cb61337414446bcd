// Package deploy_test checks the deployment files with the parsers of the
// tools that read them (compose-go for compose.yaml, the Kubernetes API
// types for the manifests), since no Docker engine or cluster runs here.
package deploy_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// shutdownTimeout is fieldsync's default --shutdown-timeout, in seconds.
const shutdownTimeout = 30

// composeEnv returns what compose.yaml's header says to set, a new map
// each time (the loader adds to it).
func composeEnv() map[string]string {
	return map[string]string{
		"FIELDSYNC_JWT_SECRET":     strings.Repeat("s", 64),
		"MINIO_ROOT_PASSWORD":      "minio-password",
		"FIELDSYNC_ADMIN_PASSWORD": "change-me-please",
	}
}

func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("fieldsync", true) })
}

func TestCompose(t *testing.T) {
	p, err := loadCompose(t, composeEnv())
	require.NoError(t, err)

	t.Run("one image, built once, run twice", func(t *testing.T) {
		one, two := p.Services["fieldsync-1"], p.Services["fieldsync-2"]
		require.NotNil(t, one.Build)
		require.NotNil(t, two.Build)
		assert.NotEmpty(t, one.Image)
		assert.Equal(t, one.Image, two.Image, "both name the same image")
		assert.Equal(t, *one.Build, *two.Build)
		root, err := filepath.Abs("..")
		require.NoError(t, err)
		assert.Equal(t, root, one.Build.Context)
		assert.FileExists(t, filepath.Join(one.Build.Context, one.Build.Dockerfile))
	})
	t.Run("nginx starts once the instances are healthy", func(t *testing.T) {
		deps := p.Services["nginx"].DependsOn
		for _, name := range []string{"fieldsync-1", "fieldsync-2"} {
			require.Contains(t, deps, name)
			assert.Equal(t, types.ServiceConditionHealthy, deps[name].Condition, name)
		}
	})
	t.Run("every awaited health has a check", func(t *testing.T) {
		for name, s := range p.Services {
			for dep, d := range s.DependsOn {
				if d.Condition == types.ServiceConditionHealthy {
					hc := p.Services[dep].HealthCheck
					if assert.NotNil(t, hc, "%s waits for %s to be healthy", name, dep) {
						assert.NotEmpty(t, hc.Test, dep)
					}
				}
			}
		}
		assert.Equal(t, types.HealthCheckTest{"CMD", "/fieldsync", "health", "--path", "/readyz"}, p.Services["fieldsync-1"].HealthCheck.Test)
	})
	t.Run("images pinned", func(t *testing.T) {
		for name, s := range p.Services {
			assertPinned(t, s.Image, name)
		}
		assert.Regexp(t, `:RELEASE\.\d{4}-\d{2}-\d{2}T`, p.Services["minio"].Image, "MinIO is pinned to a release")
	})
	t.Run("variables are fieldsync's", func(t *testing.T) {
		for name := range p.Services["fieldsync-1"].Environment {
			assertKnownVariable(t, name)
		}
	})
	t.Run("secrets must be given", func(t *testing.T) {
		for name := range composeEnv() {
			env := composeEnv()
			delete(env, name)
			_, err := loadCompose(t, env)
			if assert.Error(t, err, "without %s", name) {
				assert.Contains(t, err.Error(), "set "+name)
			}
		}
	})
}

func lastPathElement(image string) string { return image[strings.LastIndex(image, "/")+1:] }

// pinnedTag is a full release: major.minor.patch (with an optional
// variant) or a MinIO release stamp.
var pinnedTag = regexp.MustCompile(`^(\d+\.\d+\.\d+(-[a-z0-9]+)?|RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)$`)

// assertPinned checks that image names a fixed release, never latest or a
// moving major or minor tag.
func assertPinned(t *testing.T, image, where string) {
	t.Helper()
	_, tag, ok := strings.Cut(lastPathElement(image), ":")
	if assert.True(t, ok, "%s: %s has a tag", where, image) {
		assert.Regexp(t, pinnedTag, tag, "%s: %s is pinned to a release", where, image)
	}
}

// assertKnownVariable checks that fieldsync reads a FIELDSYNC_* variable.
func assertKnownVariable(t *testing.T, name string) {
	t.Helper()
	if !strings.HasPrefix(name, "FIELDSYNC_") {
		return
	}
	src, err := os.ReadFile("../cmd/fieldsync/cli.go")
	require.NoError(t, err)
	assert.Contains(t, string(src), `"`+name+`"`, "fieldsync reads %s", name)
}

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	text := string(raw)
	// The data folder exists in the image, owned by the user that runs it.
	assert.Contains(t, text, "ENV FIELDSYNC_ADDR=0.0.0.0:8080 FIELDSYNC_DATA_DIR=/data")
	assert.Regexp(t, `(?m)^RUN mkdir -p /out/data && chown 65532:65532 /out/data`, text)
	assert.Regexp(t, `(?m)^COPY --from=build --chown=65532:65532 /out/data /data$`, text)
	assert.Regexp(t, `(?m)^USER 65532:65532$`, text)
	assert.Regexp(t, `(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`, text, "the user 65532 is distroless' nonroot")
	// The build image is the Go release go.mod names.
	mod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	require.NotNil(t, goVersion)
	assert.Regexp(t, `(?m)^FROM golang:`+regexp.QuoteMeta(string(goVersion[1]))+` AS build$`, text)
	assertPinned(t, "golang:"+string(goVersion[1]), "go.mod")
	assert.NotContains(t, text, ":latest")
	// distroless has no shell: the health check is the binary itself, in
	// exec form.
	assert.Regexp(t, `(?m)^HEALTHCHECK .*CMD \["/fieldsync", "health"\]$`, text)
	assert.NotRegexp(t, `(?m)^(HEALTHCHECK .*CMD [^\[]|[^#\n]*\b(curl|wget|sh -c)\b)`, text)
}

func TestKubernetes(t *testing.T) {
	raw, err := os.ReadFile("kubernetes/fieldsync.yaml")
	require.NoError(t, err)
	var (
		deployment appsv1.Deployment
		service    corev1.Service
		config     corev1.ConfigMap
		budget     policyv1.PodDisruptionBudget
		uploads    corev1.PersistentVolumeClaim
	)
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var meta struct{ Kind string }
		require.NoError(t, yaml.Unmarshal(doc, &meta))
		var into any
		switch meta.Kind {
		case "Deployment":
			into = &deployment
		case "Service":
			into = &service
		case "ConfigMap":
			into = &config
		case "PodDisruptionBudget":
			into = &budget
		case "PersistentVolumeClaim":
			into = &uploads
		default:
			t.Fatalf("unexpected kind %q", meta.Kind)
		}
		require.NoError(t, yaml.UnmarshalStrict(doc, into), "%s: every field is one Kubernetes knows", meta.Kind)
	}
	require.Len(t, deployment.Spec.Template.Spec.Containers, 1)
	c := deployment.Spec.Template.Spec.Containers[0]

	t.Run("image pinned", func(t *testing.T) {
		assertPinned(t, c.Image, "the Deployment")
		assert.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy)
	})
	t.Run("two instances, one kept through disruptions", func(t *testing.T) {
		require.NotNil(t, deployment.Spec.Replicas)
		assert.Equal(t, int32(2), *deployment.Spec.Replicas)
		require.NotNil(t, budget.Spec.MinAvailable, "the budget keeps a number of pods")
		assert.Equal(t, intstr.FromInt32(1), *budget.Spec.MinAvailable)
		assert.Less(t, budget.Spec.MinAvailable.IntVal, *deployment.Spec.Replicas, "a drain can still evict one")
		require.NotNil(t, budget.Spec.Selector)
		assert.Equal(t, deployment.Spec.Selector.MatchLabels, budget.Spec.Selector.MatchLabels)
		assert.Equal(t, deployment.Spec.Selector.MatchLabels, deployment.Spec.Template.Labels)
		ru := deployment.Spec.Strategy.RollingUpdate
		require.NotNil(t, ru, "a rolling update")
		require.NotNil(t, ru.MaxUnavailable)
		assert.Equal(t, intstr.FromInt32(0), *ru.MaxUnavailable, "no instance goes before its successor is ready")
		spread := deployment.Spec.Template.Spec.TopologySpreadConstraints
		require.Len(t, spread, 1)
		assert.Equal(t, "kubernetes.io/hostname", spread[0].TopologyKey)
		require.NotNil(t, spread[0].LabelSelector)
		assert.Equal(t, deployment.Spec.Selector.MatchLabels, spread[0].LabelSelector.MatchLabels)
	})
	t.Run("probes", func(t *testing.T) {
		for name, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
			require.NotNil(t, p, name)
			require.NotNil(t, p.HTTPGet, name)
			assert.Equal(t, name, p.HTTPGet.Path)
			assert.Equal(t, intstr.FromString("http"), p.HTTPGet.Port, name)
		}
		require.Len(t, c.Ports, 1)
		assert.Equal(t, "http", c.Ports[0].Name)
	})
	t.Run("resources", func(t *testing.T) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			q, ok := c.Resources.Requests[r]
			assert.True(t, ok && q.Sign() > 0, "requests %s", r)
		}
		limit, ok := c.Resources.Limits[corev1.ResourceMemory]
		require.True(t, ok, "a memory limit")
		assert.Positive(t, limit.Cmp(c.Resources.Requests[corev1.ResourceMemory]), "the limit is above the request")
	})
	t.Run("rolling updates drain", func(t *testing.T) {
		require.NotNil(t, c.Lifecycle)
		require.NotNil(t, c.Lifecycle.PreStop)
		require.NotNil(t, c.Lifecycle.PreStop.Sleep, "distroless has no shell: the kubelet sleeps")
		sleep := c.Lifecycle.PreStop.Sleep.Seconds
		assert.Positive(t, sleep)
		grace := deployment.Spec.Template.Spec.TerminationGracePeriodSeconds
		require.NotNil(t, grace)
		assert.GreaterOrEqual(t, *grace, sleep+shutdownTimeout, "the grace period covers the delay and the drain")
		assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
		assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	})
	t.Run("secrets", func(t *testing.T) {
		documented := map[string]bool{}
		for _, m := range regexp.MustCompile(`--from-literal=([a-z0-9-]+)=`).FindAllStringSubmatch(string(raw), -1) {
			documented[m[1]] = true
		}
		for _, e := range c.Env {
			assertKnownVariable(t, e.Name)
			ref := e.ValueFrom.SecretKeyRef
			require.NotNil(t, ref, e.Name)
			assert.Equal(t, "fieldsync-secrets", ref.Name)
			assert.True(t, documented[ref.Key], "the header's kubectl command creates %s", ref.Key)
			require.NotNil(t, ref.Optional, "%s says whether it may be missing", e.Name)
			assert.Equal(t, e.Name == "FIELDSYNC_ADMIN_PASSWORD", *ref.Optional,
				"only the first admin's password may be left out (fieldsync then says what is missing)")
		}
	})
	t.Run("resumable uploads shared by the pods", func(t *testing.T) {
		// A resumed upload lands on whichever pod the Service picks: the
		// bytes already received must be on a volume every pod mounts.
		dir := config.Data["FIELDSYNC_UPLOAD_DIR"]
		require.NotEmpty(t, dir, "the ConfigMap sets the uploads folder")
		var volume string
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir {
				volume = m.Name
				assert.False(t, m.ReadOnly)
			}
		}
		require.NotEmpty(t, volume, "%s is a mounted volume", dir)
		var claim string
		for _, v := range deployment.Spec.Template.Spec.Volumes {
			if v.Name == volume {
				require.NotNil(t, v.PersistentVolumeClaim, "%s is a claim, not a pod's own disk", volume)
				claim = v.PersistentVolumeClaim.ClaimName
			}
		}
		assert.Equal(t, uploads.Name, claim)
		assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, uploads.Spec.AccessModes,
			"every pod writes it at once")
		require.NotNil(t, uploads.Spec.StorageClassName, "the claim names a class that offers ReadWriteMany")
	})
	t.Run("config", func(t *testing.T) {
		for name := range config.Data {
			assertKnownVariable(t, name)
			assert.NotRegexp(t, `SECRET|PASSWORD|ACCESS_KEY|MONGO_URI`, name, "credentials come from the Secret, not the ConfigMap")
		}
		assert.Equal(t, "0.0.0.0:8080", config.Data["FIELDSYNC_ADDR"])
		require.Len(t, service.Spec.Ports, 1)
		assert.Equal(t, "http", service.Spec.Ports[0].TargetPort.StrVal)
		assert.Equal(t, deployment.Spec.Selector.MatchLabels, service.Spec.Selector)
	})
}

// TestDeployGuide checks that docs/deploy.md names only settings fieldsync
// reads, files that exist and the manifests' real values.
func TestDeployGuide(t *testing.T) {
	raw, err := os.ReadFile("../docs/deploy.md")
	require.NoError(t, err)
	guide := string(raw)
	for _, v := range regexp.MustCompile(`FIELDSYNC_[A-Z0-9_]+`).FindAllString(guide, -1) {
		assertKnownVariable(t, v)
	}
	for _, m := range regexp.MustCompile("`((?:deploy|docs)/[^` ]+)`").FindAllStringSubmatch(guide, -1) {
		assert.FileExists(t, filepath.Join("..", m[1]))
	}
	for _, want := range []string{
		"user create admin --role admin", // the real subcommand
		"--path /readyz",                 // compose's health check
		"docker compose -f deploy/compose.yaml up -d",
	} {
		assert.Contains(t, guide, want)
	}
	// The values the guide quotes are the files' own.
	quoted := map[string]map[string]string{
		"nginx.conf": {
			"client_max_body_size 26m": "client_max_body_size 26m",
			"proxy_read_timeout 75s":   "proxy_read_timeout 75s",
		},
		"kubernetes/fieldsync.yaml": {
			"terminationGracePeriodSeconds: 45": "terminationGracePeriodSeconds: 45",
			"sleep\n(5 s)":                      "sleep: {seconds: 5}",
			"Requests are 500m CPU and 128 MiB": "requests: {cpu: 500m, memory: 128Mi}",
			"the memory\nlimit 512 MiB":         "limits: {memory: 512Mi}",
			"Deployment of **two** replicas":    "replicas: 2",
		},
	}
	for file, pairs := range quoted {
		src, err := os.ReadFile(file)
		require.NoError(t, err)
		for inGuide, inFile := range pairs {
			assert.Contains(t, guide, inGuide)
			assert.Contains(t, string(src), inFile, file)
		}
	}
	// Every key the Deployment takes from the Secret is created by the guide.
	manifest, err := os.ReadFile("kubernetes/fieldsync.yaml")
	require.NoError(t, err)
	keys := regexp.MustCompile(`name: fieldsync-secrets, key: ([a-z0-9-]+)`).FindAllStringSubmatch(string(manifest), -1)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		assert.Contains(t, guide, "--from-literal="+k[1]+"=")
	}
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), "(docs/deploy.md)", "the README links the guide")
}
