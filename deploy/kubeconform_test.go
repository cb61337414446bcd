package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kubeconformModule is the module of the kubeconform tool in go.mod.
const kubeconformModule = "github.com/yannh/kubeconform"

// TestKubeconform validates the manifests with kubeconform in strict mode
// (no field Kubernetes does not know, no duplicated key). kubeconform
// fetches its JSON schemas from the internet by default; here they are
// made offline from the Kubernetes definitions its module ships
// (fixtures/cache), one schema per kind, every object closed to fields its
// definition does not list, as the strict schemas of the public registry are.
func TestKubeconform(t *testing.T) {
	schemas := strictSchemas(t)
	location := filepath.Join(schemas, "{{ .ResourceKind }}{{ .KindSuffix }}.json")
	run := func(manifest string) (string, error) {
		cmd := exec.Command("go", "tool", "kubeconform", "-strict", "-summary", "-schema-location", location, manifest)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("kubernetes/fieldsync.yaml")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Invalid: 0, Errors: 0, Skipped: 0", "every resource had a schema")
	assert.NotContains(t, out, "Valid: 0,")

	// The check can fail: a misspelt field is refused.
	raw, err := os.ReadFile("kubernetes/fieldsync.yaml")
	require.NoError(t, err)
	bad := filepath.Join(t.TempDir(), "misspelt.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(string(raw), "replicas:", "replica:", 1)), 0o600))
	out, err = run(bad)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, out)
	assert.Contains(t, out, "additional properties 'replica' not allowed")
}

// strictSchemas writes kubeconform's strict schemas into a temporary folder
// and returns it.
func strictSchemas(t *testing.T) string {
	t.Helper()
	// go.mod's version of the module, downloaded if it is not yet.
	out, err := exec.Command("go", "mod", "download", "-json", kubeconformModule).Output()
	require.NoError(t, err, "go mod download %s", kubeconformModule)
	var mod struct{ Dir string }
	require.NoError(t, json.Unmarshal(out, &mod))
	require.NotEmpty(t, mod.Dir)
	cache := filepath.Join(mod.Dir, "fixtures", "cache")
	entries, err := os.ReadDir(cache)
	require.NoError(t, err)

	var defs struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(cache, e.Name()))
		require.NoError(t, err)
		if json.Unmarshal(raw, &defs) == nil && defs.Definitions["io.k8s.api.apps.v1.Deployment"] != nil {
			break
		}
		defs.Definitions = nil
	}
	require.NotEmpty(t, defs.Definitions, "%s holds the Kubernetes definitions", cache)

	dir := t.TempDir()
	written := 0
	for name, def := range defs.Definitions {
		if _, open := def["additionalProperties"]; def["properties"] != nil && !open {
			def["additionalProperties"] = false
		}
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			kind, _ := gvk["kind"].(string)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			file := strings.ToLower(kind)
			if group != "" {
				file += "-" + strings.ToLower(strings.Split(group, ".")[0])
			}
			file += "-" + strings.ToLower(version) + ".json"
			ref, err := json.Marshal(map[string]string{"$ref": "_definitions.json#/definitions/" + name})
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, file), ref, 0o600))
			written++
		}
	}
	require.Positive(t, written)
	raw, err := json.Marshal(defs)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "_definitions.json"), raw, 0o600))
	return dir
}
