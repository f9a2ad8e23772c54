package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// A resource schema in the JSON shape of `tofu providers schema -json`.
const testSchema = `{
  "format_version": "1.0",
  "provider_schemas": {
    "registry.opentofu.org/hashicorp/google": {
      "provider": {"version": 0, "block": {"attributes": {"project": {"type": "string", "optional": true}}}},
      "resource_schemas": {
        "google_thing": {"version": 1, "block": {
          "attributes": {
            "name": {"type": "string", "required": true},
            "id": {"type": "string", "optional": true, "computed": true},
            "tags": {"type": ["map", "string"], "optional": true},
            "creds": {"type": "string", "optional": true, "sensitive": true, "write_only": true}
          },
          "block_types": {
            "part": {"nesting_mode": "list", "max_items": 2, "block": {
              "attributes": {"size": {"type": "number", "optional": true}, "uri": {"type": "string", "computed": true}}
            }}
          }
        }}
      },
      "data_source_schemas": {
        "google_project": {"version": 0, "block": {"attributes": {
          "project_id": {"type": "string", "optional": true},
          "number": {"type": "string", "computed": true}
        }}}
      }
    }
  }
}`

func loadTestSchema(t *testing.T) *providerSchemas {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(path, []byte(testSchema), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := loadJSONSchema(path, "hashicorp/google")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadJSONSchema(t *testing.T) {
	s := loadTestSchema(t)
	r, ok := s.resources["google_thing"]
	if !ok {
		t.Fatal("google_thing missing")
	}
	if r.Version != 1 {
		t.Errorf("version = %d, want 1", r.Version)
	}
	attrs := map[string]*tfprotov5.SchemaAttribute{}
	for _, a := range r.Block.Attributes {
		attrs[a.Name] = a
	}
	if a := attrs["name"]; a == nil || !a.Required || !a.Type.Is(tftypes.String) {
		t.Errorf("name = %+v, want a required string", a)
	}
	if a := attrs["tags"]; a == nil || !a.Type.Is(tftypes.Map{ElementType: tftypes.String}) {
		t.Errorf("tags = %+v, want map(string)", a)
	}
	if a := attrs["creds"]; a == nil || !a.Sensitive || !a.WriteOnly {
		t.Errorf("creds = %+v, want sensitive and write-only", a)
	}
	if len(r.Block.BlockTypes) != 1 || r.Block.BlockTypes[0].Nesting != tfprotov5.SchemaNestedBlockNestingModeList || r.Block.BlockTypes[0].MaxItems != 2 {
		t.Errorf("block types = %+v, want one list block with max 2", r.Block.BlockTypes)
	}
	if _, ok := s.dataSources["google_project"]; !ok {
		t.Error("data source google_project missing")
	}
	if _, err := loadJSONSchema(filepath.Join(t.TempDir(), "none.json"), "hashicorp/google"); err == nil {
		t.Error("a missing schema file loaded without error")
	}
}

func TestFillComputed(t *testing.T) {
	s := loadTestSchema(t)
	block := s.resources["google_thing"].Block
	typ := s.resources["google_thing"].ValueType().(tftypes.Object)
	partType := typ.AttributeTypes["part"].(tftypes.List).ElementType.(tftypes.Object)
	config := tftypes.NewValue(typ, map[string]tftypes.Value{
		"name":  tftypes.NewValue(tftypes.String, "a"),
		"id":    tftypes.NewValue(tftypes.String, nil),
		"tags":  tftypes.NewValue(tftypes.Map{ElementType: tftypes.String}, nil),
		"creds": tftypes.NewValue(tftypes.String, nil),
		"part": tftypes.NewValue(typ.AttributeTypes["part"], []tftypes.Value{
			tftypes.NewValue(partType, map[string]tftypes.Value{
				"size": tftypes.NewValue(tftypes.Number, 3),
				"uri":  tftypes.NewValue(tftypes.String, nil),
			}),
		}),
	})
	planned, err := fillComputed(block, config, func(t tftypes.Type, _ string) tftypes.Value {
		return tftypes.NewValue(t, tftypes.UnknownValue)
	})
	if err != nil {
		t.Fatal(err)
	}
	var attrs map[string]tftypes.Value
	if err := planned.As(&attrs); err != nil {
		t.Fatal(err)
	}
	if attrs["id"].IsKnown() {
		t.Error("computed id stayed known; a real provider plans it unknown")
	}
	if !attrs["tags"].IsKnown() || !attrs["tags"].IsNull() {
		t.Error("optional, not computed tags changed")
	}
	var name string
	if err := attrs["name"].As(&name); err != nil || name != "a" {
		t.Errorf("name = %q (%v), want the configured a", name, err)
	}
	var parts []tftypes.Value
	if err := attrs["part"].As(&parts); err != nil || len(parts) != 1 {
		t.Fatalf("part = %v (%v)", attrs["part"], err)
	}
	var part map[string]tftypes.Value
	if err := parts[0].As(&part); err != nil {
		t.Fatal(err)
	}
	if part["uri"].IsKnown() {
		t.Error("computed uri in a nested block stayed known")
	}

	// Data sources read as their config plus placeholders, all known.
	ds := s.dataSources["google_project"]
	read, err := fillComputed(ds.Block, tftypes.NewValue(ds.ValueType(), map[string]tftypes.Value{
		"project_id": tftypes.NewValue(tftypes.String, "p"),
		"number":     tftypes.NewValue(tftypes.String, nil),
	}), placeholder)
	if err != nil {
		t.Fatal(err)
	}
	if !read.IsFullyKnown() {
		t.Error("data source result has unknown values")
	}
}
