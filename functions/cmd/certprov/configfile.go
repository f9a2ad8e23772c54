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
// returns the JSON and where it came from.
func readAdapterConfig(config, tfvars string) ([]byte, string, error) {
	switch {
	case config != "" && tfvars != "":
		return nil, "", errors.New("--config and --tfvars are both set: choose one")
	case config != "":
		b, err := os.ReadFile(config)
		if err != nil {
			return nil, "", fmt.Errorf("read the adapter config: %w", err)
		}
		return b, config, nil
	case tfvars != "":
		b, err := os.ReadFile(tfvars)
		if err != nil {
			return nil, "", fmt.Errorf("read the tfvars: %w", err)
		}
		j, err := tfvarsAdapterConfig(b, tfvars)
		return j, tfvars + " (adapter_config)", err
	}
	return nil, "", errors.New("--config FILE or --tfvars FILE is required")
}

// tfvarsAdapterConfig returns the string value of adapter_config in a tfvars
// file (HCL native syntax, literals only).
func tfvarsAdapterConfig(src []byte, name string) ([]byte, error) {
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("parse %s: %w", name, diags)
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return nil, fmt.Errorf("parse %s: %w", name, diags)
	}
	attr, ok := attrs["adapter_config"]
	if !ok {
		return nil, fmt.Errorf("%s sets no adapter_config", name)
	}
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s: adapter_config: %w (a profile variable is written $${NAME} in a tfvars file, or terraform reads it as its own)", name, diags)
	}
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return nil, fmt.Errorf("%s: adapter_config is not a string (the adapter config JSON, e.g. a heredoc)", name)
	}
	return []byte(v.AsString()), nil
}
