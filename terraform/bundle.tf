# The functions' source bundle: one zip with the Go module's files that the
# functions need and a generated root package (bundle/function.go.tftpl), since
# the Go buildpack builds the package at the root of the upload and the
# repository has no root package. All three functions deploy from it with
# different entry points.
#
# bundle/files.json is the one list of files; functions/bundle's test reads the
# same list, renders the same zip and builds it the way the buildpack does.
#
# The object is named after the zip's SHA-256: any change to a bundled file
# changes the name, which changes build_config.source and rebuilds and
# redeploys the functions; no change, no redeploy.

locals {
  bundle_spec = jsondecode(file("${path.module}/bundle/files.json"))
  repo_root   = "${path.module}/.."

  bundle_files = setsubtract(
    toset(flatten([for p in local.bundle_spec.include : tolist(fileset(local.repo_root, p))])),
    toset(flatten([for p in local.bundle_spec.exclude : tolist(fileset(local.repo_root, p))])),
  )

  go_module = regex("(?m)^module[ \\t]+(\\S+)", file("${local.repo_root}/go.mod"))[0]

  bundle_root_file = templatefile("${path.module}/bundle/${local.bundle_spec.root_template}", {
    module = local.go_module
  })
}

data "archive_file" "bundle" {
  type        = "zip"
  output_path = "${path.module}/.build/function-source.zip"

  dynamic "source" {
    for_each = local.bundle_files
    content {
      filename = source.value
      content  = file("${local.repo_root}/${source.value}")
    }
  }

  source {
    filename = local.bundle_spec.root_file
    content  = local.bundle_root_file
  }
}

resource "google_storage_bucket" "source" {
  project  = var.project_id
  name     = "${var.project_id}-${var.name_prefix}-source"
  location = var.region
  labels   = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Bundles are small and named by content; old ones stay for rebuilds of
  # earlier revisions (automatic runtime updates rebuild from the source).
  force_destroy = !var.deletion_protection

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_object" "bundle" {
  bucket       = google_storage_bucket.source.name
  name         = "function-source-${data.archive_file.bundle.output_sha256}.zip"
  source       = data.archive_file.bundle.output_path
  content_type = "application/zip"
}

# Images of the three functions. A repository of our own lets the build
# identity write here and nowhere else.
resource "google_artifact_registry_repository" "functions" {
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  format        = "DOCKER"
  description   = "Images of the certprov functions, built by Cloud Build."
  labels        = var.labels

  depends_on = [google_project_service.enabled]
}
