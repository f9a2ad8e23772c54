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
# redeploys the functions; no change, no redeploy. The previous object is
# deleted by the same apply (see the bucket below for what remains of it).

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
  force_destroy               = !var.deletion_protection

  # What happens to the previous bundle: its object name is part of the
  # resource's identity, so an apply with a new bundle uploads the new object
  # and deletes the previous one (terraform replaces
  # google_storage_bucket_object.bundle). Cloud Functions does not need it any
  # more: it copied the source it built from into its own staging bucket
  # (iam.tf, build_staging_objects). With versioning on, the deleted object
  # stays as a noncurrent version for 30 days (a rollback within that time can
  # restore it; normally a rollback re-applies an older checkout, which
  # uploads its bundle again), then the lifecycle rule removes it.
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_object" "bundle" {
  bucket       = google_storage_bucket.source.name
  name         = "function-source-${data.archive_file.bundle.output_sha256}.zip"
  source       = data.archive_file.bundle.output_path
  content_type = "application/zip"
}

# Images of the three functions. A repository of our own lets the build
# identity write here and nowhere else. Every build pushes new images; the
# cleanup policies keep the 5 newest versions of each image (the running
# revisions and a few to roll back to) and delete other versions older than
# 30 days.
resource "google_artifact_registry_repository" "functions" {
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  format        = "DOCKER"
  description   = "Images of the certprov functions, built by Cloud Build."
  labels        = var.labels

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.enabled]
}
