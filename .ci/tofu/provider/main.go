// Command tofuschemaprovider is a Terraform provider (plugin protocol 5) that
// serves schemas and nothing else, so that `tofu validate` can check
// terraform/ on a machine that cannot download providers.
//
// Installed as terraform-provider-google it serves the real hashicorp/google
// schema, read at start-up from the JSON that `tofu providers schema -json`
// printed (path in CERTPROV_PROVIDER_SCHEMA). Installed as
// terraform-provider-archive it serves a hand-written schema of the
// hashicorp/archive provider's archive_file data source, and as
// terraform-provider-time one of the hashicorp/time provider's time_sleep
// resource. The executable's name picks which one, so one build serves all.
//
// Validation of arguments, block nesting, required arguments and references is
// done by tofu itself against these schemas, exactly as with the real
// providers. `tofu plan` works as a dry evaluation (plan.go); applying,
// importing or refreshing existing state fails with an error diagnostic.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tfprotov5/tf5server"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

const schemaEnv = "CERTPROV_PROVIDER_SCHEMA"

func main() {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "terraform-provider-")
	name, _, _ = strings.Cut(name, "_") // terraform-provider-google_v7.45.0
	var (
		s   *providerSchemas
		err error
	)
	switch name {
	case "google":
		s, err = loadJSONSchema(os.Getenv(schemaEnv), "hashicorp/google")
	case "archive":
		s = archiveSchemas()
	case "time":
		s = timeSchemas()
	default:
		err = fmt.Errorf("executable name %q: want terraform-provider-google, terraform-provider-archive or terraform-provider-time", os.Args[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tofuschemaprovider: %v\n", err)
		os.Exit(1)
	}
	addr := "registry.opentofu.org/hashicorp/" + name
	if err := tf5server.Serve(addr, func() tfprotov5.ProviderServer { return &server{s: s} }); err != nil {
		fmt.Fprintf(os.Stderr, "tofuschemaprovider: serve: %v\n", err)
		os.Exit(1)
	}
}

// providerSchemas is what GetProviderSchema answers.
type providerSchemas struct {
	provider    *tfprotov5.Schema
	resources   map[string]*tfprotov5.Schema
	dataSources map[string]*tfprotov5.Schema
}

// The JSON shape of `tofu providers schema -json`.
type jsonSchemas struct {
	ProviderSchemas map[string]struct {
		Provider          jsonSchema            `json:"provider"`
		ResourceSchemas   map[string]jsonSchema `json:"resource_schemas"`
		DataSourceSchemas map[string]jsonSchema `json:"data_source_schemas"`
	} `json:"provider_schemas"`
}

type jsonSchema struct {
	Version int64     `json:"version"`
	Block   jsonBlock `json:"block"`
}

type jsonBlock struct {
	Attributes      map[string]jsonAttribute `json:"attributes"`
	BlockTypes      map[string]jsonBlockType `json:"block_types"`
	Description     string                   `json:"description"`
	DescriptionKind string                   `json:"description_kind"`
	Deprecated      bool                     `json:"deprecated"`
}

type jsonAttribute struct {
	Type            json.RawMessage `json:"type"`
	NestedType      json.RawMessage `json:"nested_type"`
	Description     string          `json:"description"`
	DescriptionKind string          `json:"description_kind"`
	Required        bool            `json:"required"`
	Optional        bool            `json:"optional"`
	Computed        bool            `json:"computed"`
	Sensitive       bool            `json:"sensitive"`
	Deprecated      bool            `json:"deprecated"`
	WriteOnly       bool            `json:"write_only"`
}

type jsonBlockType struct {
	NestingMode string    `json:"nesting_mode"`
	Block       jsonBlock `json:"block"`
	MinItems    int64     `json:"min_items"`
	MaxItems    int64     `json:"max_items"`
}

// loadJSONSchema reads the schema of provider source (e.g. "hashicorp/google")
// from the JSON file at path.
func loadJSONSchema(path, source string) (*providerSchemas, error) {
	if path == "" {
		return nil, fmt.Errorf("%s is not set: it names the provider schema JSON", schemaEnv)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read provider schema: %w", err)
	}
	var all jsonSchemas
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, fmt.Errorf("parse provider schema %s: %w", path, err)
	}
	for addr, p := range all.ProviderSchemas {
		if !strings.HasSuffix(addr, "/"+source) {
			continue
		}
		s := &providerSchemas{
			resources:   make(map[string]*tfprotov5.Schema, len(p.ResourceSchemas)),
			dataSources: make(map[string]*tfprotov5.Schema, len(p.DataSourceSchemas)),
		}
		if s.provider, err = convertSchema(p.Provider); err != nil {
			return nil, fmt.Errorf("provider block: %w", err)
		}
		for name, js := range p.ResourceSchemas {
			if s.resources[name], err = convertSchema(js); err != nil {
				return nil, fmt.Errorf("resource %s: %w", name, err)
			}
		}
		for name, js := range p.DataSourceSchemas {
			if s.dataSources[name], err = convertSchema(js); err != nil {
				return nil, fmt.Errorf("data source %s: %w", name, err)
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("%s has no schema for %s", path, source)
}

func convertSchema(js jsonSchema) (*tfprotov5.Schema, error) {
	b, err := convertBlock(js.Block)
	if err != nil {
		return nil, err
	}
	return &tfprotov5.Schema{Version: js.Version, Block: b}, nil
}

func convertBlock(jb jsonBlock) (*tfprotov5.SchemaBlock, error) {
	b := &tfprotov5.SchemaBlock{
		Description:     jb.Description,
		DescriptionKind: stringKind(jb.DescriptionKind),
		Deprecated:      jb.Deprecated,
	}
	for _, name := range sortedKeys(jb.Attributes) {
		ja := jb.Attributes[name]
		if len(ja.NestedType) > 0 {
			return nil, fmt.Errorf("attribute %s: nested attribute types need plugin protocol 6", name)
		}
		//nolint:staticcheck // ParseJSONType reads exactly the type syntax of the schema JSON.
		t, err := tftypes.ParseJSONType(ja.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: type %s: %w", name, ja.Type, err)
		}
		b.Attributes = append(b.Attributes, &tfprotov5.SchemaAttribute{
			Name:            name,
			Type:            t,
			Description:     ja.Description,
			DescriptionKind: stringKind(ja.DescriptionKind),
			Required:        ja.Required,
			Optional:        ja.Optional,
			Computed:        ja.Computed,
			Sensitive:       ja.Sensitive,
			Deprecated:      ja.Deprecated,
			WriteOnly:       ja.WriteOnly,
		})
	}
	for _, name := range sortedKeys(jb.BlockTypes) {
		jbt := jb.BlockTypes[name]
		nested, err := convertBlock(jbt.Block)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", name, err)
		}
		mode, ok := nestingModes[jbt.NestingMode]
		if !ok {
			return nil, fmt.Errorf("block %s: unknown nesting mode %q", name, jbt.NestingMode)
		}
		b.BlockTypes = append(b.BlockTypes, &tfprotov5.SchemaNestedBlock{
			TypeName: name,
			Block:    nested,
			Nesting:  mode,
			MinItems: jbt.MinItems,
			MaxItems: jbt.MaxItems,
		})
	}
	return b, nil
}

var nestingModes = map[string]tfprotov5.SchemaNestedBlockNestingMode{
	"single": tfprotov5.SchemaNestedBlockNestingModeSingle,
	"group":  tfprotov5.SchemaNestedBlockNestingModeGroup,
	"list":   tfprotov5.SchemaNestedBlockNestingModeList,
	"set":    tfprotov5.SchemaNestedBlockNestingModeSet,
	"map":    tfprotov5.SchemaNestedBlockNestingModeMap,
}

func stringKind(k string) tfprotov5.StringKind {
	if k == "markdown" {
		return tfprotov5.StringKindMarkdown
	}
	return tfprotov5.StringKindPlain
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// server answers the schema calls and the validation calls that follow them;
// everything else gets an error diagnostic. The embedded interface is nil: a
// call this type does not implement means tofu did more than validate, and the
// resulting crash says so.
type server struct {
	tfprotov5.ProviderServer
	s *providerSchemas
}

func (p *server) GetMetadata(context.Context, *tfprotov5.GetMetadataRequest) (*tfprotov5.GetMetadataResponse, error) {
	resp := &tfprotov5.GetMetadataResponse{ServerCapabilities: &tfprotov5.ServerCapabilities{}}
	for _, name := range sortedKeys(p.s.resources) {
		resp.Resources = append(resp.Resources, tfprotov5.ResourceMetadata{TypeName: name})
	}
	for _, name := range sortedKeys(p.s.dataSources) {
		resp.DataSources = append(resp.DataSources, tfprotov5.DataSourceMetadata{TypeName: name})
	}
	return resp, nil
}

func (p *server) GetProviderSchema(context.Context, *tfprotov5.GetProviderSchemaRequest) (*tfprotov5.GetProviderSchemaResponse, error) {
	return &tfprotov5.GetProviderSchemaResponse{
		ServerCapabilities:       &tfprotov5.ServerCapabilities{},
		Provider:                 p.s.provider,
		ResourceSchemas:          p.s.resources,
		DataSourceSchemas:        p.s.dataSources,
		Functions:                map[string]*tfprotov5.Function{},
		EphemeralResourceSchemas: map[string]*tfprotov5.Schema{},
	}, nil
}

func (p *server) GetResourceIdentitySchemas(context.Context, *tfprotov5.GetResourceIdentitySchemasRequest) (*tfprotov5.GetResourceIdentitySchemasResponse, error) {
	return &tfprotov5.GetResourceIdentitySchemasResponse{IdentitySchemas: map[string]*tfprotov5.ResourceIdentitySchema{}}, nil
}

func (p *server) GetFunctions(context.Context, *tfprotov5.GetFunctionsRequest) (*tfprotov5.GetFunctionsResponse, error) {
	return &tfprotov5.GetFunctionsResponse{Functions: map[string]*tfprotov5.Function{}}, nil
}

func (p *server) PrepareProviderConfig(_ context.Context, req *tfprotov5.PrepareProviderConfigRequest) (*tfprotov5.PrepareProviderConfigResponse, error) {
	return &tfprotov5.PrepareProviderConfigResponse{PreparedConfig: req.Config}, nil
}

func (p *server) ConfigureProvider(context.Context, *tfprotov5.ConfigureProviderRequest) (*tfprotov5.ConfigureProviderResponse, error) {
	return &tfprotov5.ConfigureProviderResponse{}, nil
}

func (p *server) StopProvider(context.Context, *tfprotov5.StopProviderRequest) (*tfprotov5.StopProviderResponse, error) {
	return &tfprotov5.StopProviderResponse{}, nil
}

func (p *server) ValidateResourceTypeConfig(context.Context, *tfprotov5.ValidateResourceTypeConfigRequest) (*tfprotov5.ValidateResourceTypeConfigResponse, error) {
	return &tfprotov5.ValidateResourceTypeConfigResponse{}, nil
}

func (p *server) ValidateDataSourceConfig(context.Context, *tfprotov5.ValidateDataSourceConfigRequest) (*tfprotov5.ValidateDataSourceConfigResponse, error) {
	return &tfprotov5.ValidateDataSourceConfigResponse{}, nil
}

func (p *server) ValidateEphemeralResourceConfig(context.Context, *tfprotov5.ValidateEphemeralResourceConfigRequest) (*tfprotov5.ValidateEphemeralResourceConfigResponse, error) {
	return &tfprotov5.ValidateEphemeralResourceConfigResponse{}, nil
}

func (p *server) UpgradeResourceState(context.Context, *tfprotov5.UpgradeResourceStateRequest) (*tfprotov5.UpgradeResourceStateResponse, error) {
	return &tfprotov5.UpgradeResourceStateResponse{Diagnostics: schemaOnly("upgrade resource state")}, nil
}

func (p *server) ReadResource(context.Context, *tfprotov5.ReadResourceRequest) (*tfprotov5.ReadResourceResponse, error) {
	return &tfprotov5.ReadResourceResponse{Diagnostics: schemaOnly("read a resource")}, nil
}

func (p *server) ApplyResourceChange(context.Context, *tfprotov5.ApplyResourceChangeRequest) (*tfprotov5.ApplyResourceChangeResponse, error) {
	return &tfprotov5.ApplyResourceChangeResponse{Diagnostics: schemaOnly("apply")}, nil
}

func (p *server) ImportResourceState(context.Context, *tfprotov5.ImportResourceStateRequest) (*tfprotov5.ImportResourceStateResponse, error) {
	return &tfprotov5.ImportResourceStateResponse{Diagnostics: schemaOnly("import")}, nil
}

func schemaOnly(what string) []*tfprotov5.Diagnostic {
	return []*tfprotov5.Diagnostic{{
		Severity: tfprotov5.DiagnosticSeverityError,
		Summary:  "schema-only provider",
		Detail:   "This provider only serves schemas for offline `tofu validate`; it cannot " + what + ". Use the real provider.",
	}}
}
