package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/fieldsync/fieldsync/docs"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// The OpenAPI document builds into a complete 3.1 model with no error and
// passes the validator's own check of the document against the OpenAPI
// schema: the lint that keeps it usable by generators.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := libopenapi.NewDocument(docs.OpenAPI())
	require.NoError(t, err)
	assert.Equal(t, "3.1.0", doc.GetVersion())
	model, err := doc.BuildV3Model()
	require.NoError(t, err, "every $ref resolves and every object is well formed")
	require.NotNil(t, model)
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	ok, problems := v.ValidateDocument()
	assert.True(t, ok, "the document against the OpenAPI 3.1 schema: %v", problems)
	_, bearer := model.Model.Components.SecuritySchemes.Get("bearer")
	assert.True(t, bearer, "the bearer security scheme")
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			assert.NotEmptyf(t, op.OperationId, "%s %s has an operationId", method, path)
			assert.NotNilf(t, op.Responses.Default, "%s %s documents its error answer", method, path)
		}
	}
}

// Every route the server answers is in the document, and the document
// names no route the server lacks.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(docs.OpenAPI(), &doc))
	documented := func(method, path string) bool {
		item, ok := doc.Paths[path]
		if !ok {
			return false
		}
		_, ok = item[strings.ToLower(method)]
		if !ok && method == http.MethodHead {
			_, ok = item["get"] // Fiber answers HEAD for every GET
		}
		return ok
	}
	var served []string
	for _, r := range srv.Routes {
		assert.Truef(t, documented(r.Method, r.Path), "%s %s is served but not in docs/openapi.yaml", r.Method, r.Path)
		served = append(served, strings.ToLower(r.Method)+" "+r.Path)
	}
	for path, item := range doc.Paths {
		for method := range item {
			if method == "parameters" {
				continue
			}
			assert.Containsf(t, served, method+" "+path, "docs/openapi.yaml describes %s %s, which the server does not serve", method, path)
		}
	}
	assert.True(t, slices.ContainsFunc(srv.Routes, func(r server.Route) bool { return r.Path == "/v1/sync/push" }))
}

// GET /v1/openapi.json serves the same document, as JSON.
func TestOpenAPIServed(t *testing.T) {
	ts := startServer(t)
	r := ts.call(t, "GET", "/v1/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	var fromYAML any
	require.NoError(t, yaml.Unmarshal(docs.OpenAPI(), &fromYAML))
	want, err := json.Marshal(fromYAML)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(r.Raw))
	assert.Equal(t, "3.1.0", r.Body["openapi"])
}
