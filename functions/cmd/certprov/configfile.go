package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// readAdapterConfig reads the adapter config JSON from a JSON file (config) or
// from the adapter_config variable of a terraform tfvars file (tfvars). It
// returns the JSON, where it came from and, from a tfvars file that sets it,
// secret_env: each secret's functions (nil otherwise).
func readAdapterConfig(config, tfvars string) ([]byte, string, map[string][]string, error) {
	switch {
	case config != "" && tfvars != "":
		return nil, "", nil, errors.New("--config and --tfvars are both set: choose one")
	case config != "":
		b, err := os.ReadFile(config)
		if err != nil {
			return nil, "", nil, fmt.Errorf("read the adapter config: %w", err)
		}
		return b, config, nil, nil
	case tfvars != "":
		b, err := os.ReadFile(tfvars)
		if err != nil {
			return nil, "", nil, fmt.Errorf("read the tfvars: %w", err)
		}
		j, secretEnv, err := readTfvars(b, tfvars)
		return j, tfvars + " (adapter_config)", secretEnv, err
	}
	return nil, "", nil, errors.New("--config FILE or --tfvars FILE is required")
}

// readTfvars returns the string value of adapter_config in a tfvars file (HCL
// native syntax, literals only) and its secret_env, as terraform reads it:
// each secret's functions, ["issue"] unless set (nil when it sets none).
func readTfvars(src []byte, name string) ([]byte, map[string][]string, error) {
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("parse %s: %w", name, diags)
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("parse %s: %w", name, diags)
	}
	attr, ok := attrs["adapter_config"]
	if !ok {
		return nil, nil, fmt.Errorf("%s sets no adapter_config", name)
	}
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("%s: adapter_config: %w (a profile variable is written $${NAME} in a tfvars file, or terraform reads it as its own)", name, diags)
	}
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return nil, nil, fmt.Errorf("%s: adapter_config is not a string (the adapter config JSON, e.g. a heredoc)", name)
	}
	attr, ok = attrs["secret_env"]
	if !ok {
		return []byte(v.AsString()), nil, nil
	}
	se, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("%s: secret_env: %w", name, diags)
	}
	if se.IsNull() || !se.CanIterateElements() {
		return nil, nil, fmt.Errorf("%s: secret_env is not a map", name)
	}
	secretEnv := map[string][]string{}
	for it := se.ElementIterator(); it.Next(); {
		k, obj := it.Element()
		fns := []string{"issue"}
		if obj.Type().IsObjectType() && obj.Type().HasAttribute("functions") {
			fns = nil
			list := obj.GetAttr("functions")
			if list.IsNull() || !list.CanIterateElements() {
				return nil, nil, fmt.Errorf("%s: secret_env.%s.functions is not a list", name, k.AsString())
			}
			for li := list.ElementIterator(); li.Next(); {
				_, fn := li.Element()
				if fn.Type() != cty.String || fn.IsNull() {
					return nil, nil, fmt.Errorf("%s: secret_env.%s.functions holds a non-string", name, k.AsString())
				}
				fns = append(fns, fn.AsString())
			}
		}
		secretEnv[k.AsString()] = fns
	}
	return []byte(v.AsString()), secretEnv, nil
}
