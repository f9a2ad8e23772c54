package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// A dry plan: with these two calls `tofu plan` evaluates the whole
// configuration with real variable values (validation blocks, for_each keys,
// conditionals, function calls, references) without any cloud. Every resource
// is planned as "create" with its computed attributes unknown, as a real
// provider plans a new resource; every data source reads as its configuration
// with computed attributes set to placeholders. Nothing can be applied.

func (p *server) PlanResourceChange(_ context.Context, req *tfprotov5.PlanResourceChangeRequest) (*tfprotov5.PlanResourceChangeResponse, error) {
	s, ok := p.s.resources[req.TypeName]
	if !ok {
		return &tfprotov5.PlanResourceChangeResponse{Diagnostics: errorDiag("unknown resource type " + req.TypeName)}, nil
	}
	typ := s.ValueType()
	proposed, err := req.ProposedNewState.Unmarshal(typ)
	if err != nil {
		return nil, fmt.Errorf("plan %s: proposed state: %w", req.TypeName, err)
	}
	if proposed.IsNull() { // destroy
		return &tfprotov5.PlanResourceChangeResponse{PlannedState: req.ProposedNewState}, nil
	}
	planned, err := fillComputed(s.Block, proposed, func(t tftypes.Type, _ string) tftypes.Value {
		return tftypes.NewValue(t, tftypes.UnknownValue)
	})
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", req.TypeName, err)
	}
	dv, err := tfprotov5.NewDynamicValue(typ, planned)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", req.TypeName, err)
	}
	return &tfprotov5.PlanResourceChangeResponse{PlannedState: &dv}, nil
}

func (p *server) ReadDataSource(_ context.Context, req *tfprotov5.ReadDataSourceRequest) (*tfprotov5.ReadDataSourceResponse, error) {
	s, ok := p.s.dataSources[req.TypeName]
	if !ok {
		return &tfprotov5.ReadDataSourceResponse{Diagnostics: errorDiag("unknown data source " + req.TypeName)}, nil
	}
	typ := s.ValueType()
	config, err := req.Config.Unmarshal(typ)
	if err != nil {
		return nil, fmt.Errorf("read %s: config: %w", req.TypeName, err)
	}
	state, err := fillComputed(s.Block, config, placeholder)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", req.TypeName, err)
	}
	dv, err := tfprotov5.NewDynamicValue(typ, state)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", req.TypeName, err)
	}
	return &tfprotov5.ReadDataSourceResponse{State: &dv}, nil
}

// placeholder is a known stand-in for a computed attribute a data source
// would return: "offline-NAME" for strings, null otherwise.
func placeholder(t tftypes.Type, name string) tftypes.Value {
	if t.Is(tftypes.String) {
		return tftypes.NewValue(t, "offline-"+name)
	}
	return tftypes.NewValue(t, nil)
}

// fillComputed replaces the null computed attributes of v (an object of
// block's type), in nested blocks too, with fill's value.
func fillComputed(block *tfprotov5.SchemaBlock, v tftypes.Value, fill func(tftypes.Type, string) tftypes.Value) (tftypes.Value, error) {
	if v.IsNull() || !v.IsKnown() {
		return v, nil
	}
	var attrs map[string]tftypes.Value
	if err := v.As(&attrs); err != nil {
		return v, fmt.Errorf("object: %w", err)
	}
	for _, a := range block.Attributes {
		if cur, ok := attrs[a.Name]; a.Computed && (!ok || cur.IsNull()) {
			attrs[a.Name] = fill(a.ValueType(), a.Name)
		}
	}
	for _, nb := range block.BlockTypes {
		cur, ok := attrs[nb.TypeName]
		if !ok || cur.IsNull() || !cur.IsKnown() {
			continue
		}
		var err error
		switch nb.Nesting {
		case tfprotov5.SchemaNestedBlockNestingModeSingle, tfprotov5.SchemaNestedBlockNestingModeGroup:
			attrs[nb.TypeName], err = fillComputed(nb.Block, cur, fill)
		case tfprotov5.SchemaNestedBlockNestingModeList, tfprotov5.SchemaNestedBlockNestingModeSet:
			var elems []tftypes.Value
			if err = cur.As(&elems); err == nil {
				for i := range elems {
					if elems[i], err = fillComputed(nb.Block, elems[i], fill); err != nil {
						break
					}
				}
				if err == nil {
					attrs[nb.TypeName] = tftypes.NewValue(cur.Type(), elems)
				}
			}
		case tfprotov5.SchemaNestedBlockNestingModeMap:
			var elems map[string]tftypes.Value
			if err = cur.As(&elems); err == nil {
				for k, e := range elems {
					if elems[k], err = fillComputed(nb.Block, e, fill); err != nil {
						break
					}
				}
				if err == nil {
					attrs[nb.TypeName] = tftypes.NewValue(cur.Type(), elems)
				}
			}
		}
		if err != nil {
			return v, fmt.Errorf("block %s: %w", nb.TypeName, err)
		}
	}
	return tftypes.NewValue(v.Type(), attrs), nil
}

func errorDiag(detail string) []*tfprotov5.Diagnostic {
	return []*tfprotov5.Diagnostic{{Severity: tfprotov5.DiagnosticSeverityError, Summary: "schema-only provider", Detail: detail}}
}
