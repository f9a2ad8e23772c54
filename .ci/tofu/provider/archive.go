package main

import (
	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// archiveSchemas is the schema of the hashicorp/archive provider (v2.7) as far
// as terraform/ uses it: the archive_file data source. It is written by hand
// because that provider cannot be downloaded here; its source of truth is
// internal/provider/data_source_archive_file.go of
// github.com/hashicorp/terraform-provider-archive. The provider itself has no
// configuration arguments.
func archiveSchemas() *providerSchemas {
	str := func(name, desc string, required, optional, computed bool) *tfprotov5.SchemaAttribute {
		return &tfprotov5.SchemaAttribute{
			Name: name, Type: tftypes.String, Description: desc,
			Required: required, Optional: optional, Computed: computed,
		}
	}
	file := &tfprotov5.Schema{Block: &tfprotov5.SchemaBlock{
		Description: "Generates an archive from content, a file, or directory of files.",
		Attributes: []*tfprotov5.SchemaAttribute{
			str("id", "The sha1 checksum hash of the output.", false, false, true),
			str("type", "The type of archive to generate: zip or tar.gz.", true, false, false),
			str("source_content", "Add only this content to the archive with source_content_filename as the filename.", false, true, false),
			str("source_content_filename", "Set this as the filename when using source_content.", false, true, false),
			str("source_file", "Package this file into the archive.", false, true, false),
			str("source_dir", "Package entire contents of this directory into the archive.", false, true, false),
			{
				Name: "excludes", Type: tftypes.Set{ElementType: tftypes.String}, Optional: true,
				Description: "Files/directories to ignore when reading source_dir.",
			},
			{
				Name: "exclude_symlink_directories", Type: tftypes.Bool, Optional: true,
				Description: "Whether symbolically linked directories are excluded.",
			},
			str("output_path", "The output of the archive file.", true, false, false),
			{Name: "output_size", Type: tftypes.Number, Computed: true, Description: "The byte size of the output archive file."},
			str("output_file_mode", "Octal file mode for all archived files.", false, true, false),
			str("output_md5", "MD5 of output file", false, false, true),
			str("output_sha", "SHA1 checksum of output file", false, false, true),
			str("output_sha256", "SHA256 checksum of output file", false, false, true),
			str("output_base64sha256", "Base64 Encoded SHA256 checksum of output file", false, false, true),
			str("output_sha512", "SHA512 checksum of output file", false, false, true),
			str("output_base64sha512", "Base64 Encoded SHA512 checksum of output file", false, false, true),
		},
		BlockTypes: []*tfprotov5.SchemaNestedBlock{{
			TypeName: "source",
			Nesting:  tfprotov5.SchemaNestedBlockNestingModeSet,
			Block: &tfprotov5.SchemaBlock{
				Description: "A single source file to include into the archive.",
				Attributes: []*tfprotov5.SchemaAttribute{
					str("content", "Add this content to the archive with filename as the filename.", true, false, false),
					str("filename", "Set this as the filename when declaring a source.", true, false, false),
				},
			},
		}},
	}}
	return &providerSchemas{
		provider:    &tfprotov5.Schema{Block: &tfprotov5.SchemaBlock{}},
		resources:   map[string]*tfprotov5.Schema{},
		dataSources: map[string]*tfprotov5.Schema{"archive_file": file},
	}
}
