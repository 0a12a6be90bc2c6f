package schemas

import _ "embed"

//go:embed openapi.json
var openAPI []byte

// OpenAPI is the query API's OpenAPI 3.1 document, served at /openapi.json.
func OpenAPI() []byte { return openAPI }
