package main

import (
	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// timeSchemas is the schema of the hashicorp/time provider (v0.13) as far as
// terraform/ uses it: the time_sleep resource (monitoring.tf waits with it
// until new log-based metrics can be used in alert policies). Written by hand
// like archiveSchemas; its source of truth is internal/provider/
// resource_time_sleep.go of github.com/hashicorp/terraform-provider-time. The
// provider itself has no configuration arguments.
func timeSchemas() *providerSchemas {
	sleep := &tfprotov5.Schema{Block: &tfprotov5.SchemaBlock{
		Description: "Manages a resource that delays creation and/or destruction, typically for further resources.",
		Attributes: []*tfprotov5.SchemaAttribute{
			{Name: "create_duration", Type: tftypes.String, Optional: true,
				Description: "Time duration to delay resource creation, for example 30s for 30 seconds or 5m for 5 minutes."},
			{Name: "destroy_duration", Type: tftypes.String, Optional: true,
				Description: "Time duration to delay resource destroy, for example 30s for 30 seconds or 5m for 5 minutes."},
			{Name: "triggers", Type: tftypes.Map{ElementType: tftypes.String}, Optional: true,
				Description: "Arbitrary map of values that, when changed, will run any creation or destroy delays again."},
			{Name: "id", Type: tftypes.String, Computed: true, Description: "UTC RFC3339 timestamp of the creation or import."},
		},
	}}
	return &providerSchemas{
		provider:    &tfprotov5.Schema{Block: &tfprotov5.SchemaBlock{}},
		resources:   map[string]*tfprotov5.Schema{"time_sleep": sleep},
		dataSources: map[string]*tfprotov5.Schema{},
	}
}
