// Package docs holds fieldsync's documentation; its Go side embeds the
// OpenAPI document (openapi.yaml), the one description of the HTTP
// contract, so that the server can serve it and the tests can check every
// exchange against it.
package docs

import (
	"bytes"
	_ "embed"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns a copy of the OpenAPI 3.1 document, as YAML.
func OpenAPI() []byte { return bytes.Clone(openAPI) }
