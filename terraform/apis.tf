# The APIs this deployment uses. Nothing is disabled on destroy: other things in
# the project may use the same APIs.

locals {
  apis = toset(concat(
    [
      "admin.googleapis.com",                # Admin SDK Directory API: directory variables (read-only)
      "artifactregistry.googleapis.com",     # images of the functions
      "chromemanagement.googleapis.com",     # Certificate Provisioning API (claim, signData, upload, setFailure)
      "cloudbuild.googleapis.com",           # builds the functions from the source bundle
      "cloudfunctions.googleapis.com",       # the three functions
      "cloudresourcemanager.googleapis.com", # data.google_project (project number)
      "cloudscheduler.googleapis.com",       # the hourly sweep of stranded processes
      "cloudtasks.googleapis.com",           # poll and issue queues
      "firestore.googleapis.com",            # progress documents
      "iam.googleapis.com",                  # service accounts
      "iamcredentials.googleapis.com",       # OIDC tokens for Pub/Sub push and Cloud Tasks
      "logging.googleapis.com",              # log-based metrics
      "monitoring.googleapis.com",           # dashboard and alerts
      "pubsub.googleapis.com",               # notifications
      "run.googleapis.com",                  # the functions' Cloud Run services
      "secretmanager.googleapis.com",        # CA secrets
      "storage.googleapis.com",              # source bundle bucket
    ],
    var.cas != null || length(var.existing_cas_pools) > 0 ? ["privateca.googleapis.com"] : [],
    var.vpc_connector != null ? ["vpcaccess.googleapis.com", "compute.googleapis.com"] : [],
  ))
}

resource "google_project_service" "enabled" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.enabled]
}
