package ticketing

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
)

// openAPIYAML is the OpenAPI 3 description of the API, served as JSON at
// {prefix}/openapi.json and kept true by TestOpenAPI_ResponsesMatchSpec (and every API test validates the responses it sees).
//
//go:embed openapi.yaml
var openAPIYAML []byte

// OpenAPI returns the parsed and validated OpenAPI description of the API.
func OpenAPI() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("ticketing: openapi: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("ticketing: openapi: %w", err)
	}
	return doc, nil
}

func openAPIJSON() ([]byte, error) {
	doc, err := OpenAPI()
	if err != nil {
		return nil, err
	}
	b, err := doc.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("ticketing: openapi: %w", err)
	}
	return b, nil
}
