# Identities and every grant they hold. Each function runs as its own service
# account; the callers of the functions have identities of their own. Nothing
# here, or anywhere in this module, grants to allUsers or allAuthenticatedUsers.
#
# | identity                          | acts as                              | holds (scope)                                                        |
# |-----------------------------------|--------------------------------------|----------------------------------------------------------------------|
# | claim  (NAME_PREFIX-claim@)       | ClaimProcess at run time             | datastore.user (project, IAM condition: this database)               |
# |                                   |                                      | cloudtasks.enqueuer (poll queue, issue queue)                        |
# |                                   |                                      | iam.serviceAccountUser (tasks service account only)                  |
# |                                   |                                      | secretmanager.secretAccessor (each secret_env entry listing claim)   |
# |                                   |                                      | iam.serviceAccountTokenCreator (itself; with directory_subject only) |
# | poll   (NAME_PREFIX-poll@)        | PollSignature at run time            | datastore.user (project, IAM condition: this database)               |
# |                                   |                                      | cloudtasks.enqueuer (poll queue, issue queue)                        |
# |                                   |                                      | iam.serviceAccountUser (tasks service account only)                  |
# |                                   |                                      | secretmanager.secretAccessor (each secret_env entry listing poll)    |
# |                                   |                                      | iam.serviceAccountTokenCreator (itself; with directory_subject only) |
# | issue  (NAME_PREFIX-issue@)       | IssueCertificate at run time         | datastore.user (project, IAM condition: this database)               |
# |                                   |                                      | cloudtasks.enqueuer (issue queue)                                    |
# |                                   |                                      | iam.serviceAccountUser (tasks service account only)                  |
# |                                   |                                      | secretmanager.secretAccessor (each secret_env entry listing issue,   |
# |                                   |                                      |   which is every entry by default; secrets.tf)                       |
# |                                   |                                      | custom casIssuer role (each CAS pool: create, get, CA certs; cas.tf) |
# |                                   |                                      | privateca.templateUser (each cas_certificate_templates entry)        |
# |                                   |                                      | with reconcile.enabled: custom casRevoker role (each CAS pool:       |
# |                                   |                                      |   certificates.update; reconcile.tf) and, with directory_subject,    |
# |                                   |                                      |   iam.serviceAccountTokenCreator (itself)                            |
# | tasks  (NAME_PREFIX-tasks@)       | OIDC token on every poll/issue task  | run.invoker (poll service, issue service)                            |
# | push   (NAME_PREFIX-push@)        | OIDC token of the claim subscription | run.invoker (claim service)                                          |
# | sweep  (NAME_PREFIX-sweep@)       | OIDC token of the hourly sweep job   | run.invoker (poll service; sweep.tf)                                 |
# | reconcile (NAME_PREFIX-reconcile@)| OIDC token of the reconciliation job | run.invoker (issue service; reconcile.tf; with reconcile.enabled)    |
# | build  (NAME_PREFIX-build@)       | Cloud Build, building the functions  | logging.logWriter (project: build logs)                              |
# |                                   |                                      | artifactregistry.writer (functions repository)                       |
# |                                   |                                      | storage.objectViewer (source bundle bucket)                          |
# |                                   |                                      | storage.objectAdmin (project, IAM condition: GCF's staging bucket)   |
# | Pub/Sub service agent (Google's)  | push delivery, dead-lettering        | iam.serviceAccountTokenCreator (push service account only)           |
# |                                   |                                      | pubsub.publisher (dead-letter topic); pubsub.subscriber (claim sub.) |
# | var.publisher_members             | the API publishing notifications     | pubsub.publisher (notification topic)                                |
# | var.operator_members.readers      | certprov status/timeline/list/find   | datastore.viewer (project, IAM condition: this database)             |
# | var.operator_members.actors       | certprov retry and fail, and reading | datastore.user (project, IAM condition: this database)               |
# |                                   |                                      | cloudtasks.enqueuer (poll queue, issue queue)                        |
# |                                   |                                      | iam.serviceAccountUser (tasks service account only); operators.tf    |
#
# Not in GCP IAM: the Certificate Provisioning API authorizes the three function
# identities through the Google Admin console (an admin role with the
# certificate provisioning privilege, see the README), not through IAM. The
# same holds for the Directory API reads of the directory variables: an admin
# role with the ChromeOS device and user read privileges for the claim and poll
# identities, or domain-wide delegation (var.directory_subject; README,
# "Directory variables").
#
# Deliberately not granted: logging.logWriter and monitoring.metricWriter to the
# functions. Cloud Run collects what a function writes to stdout without any
# role, and the metrics are log-based (monitoring.tf), so the functions need
# neither.

# --- Service accounts ------------------------------------------------------------

resource "google_service_account" "claim" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-claim"
  display_name = "certprov ClaimProcess"
  description  = "Runs ClaimProcess. Firestore (this database), enqueues poll and issue tasks."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "poll" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-poll"
  display_name = "certprov PollSignature"
  description  = "Runs PollSignature. Firestore (this database), enqueues polls and issue tasks."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "issue" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-issue"
  display_name = "certprov IssueCertificate"
  description  = "Runs IssueCertificate. Firestore (this database), CA secrets, CAS pool, enqueues issue tasks."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "tasks" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-tasks"
  display_name = "certprov Cloud Tasks invoker"
  description  = "OIDC identity of poll and issue tasks. May only invoke PollSignature and IssueCertificate."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "claim_invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "certprov Pub/Sub push invoker"
  description  = "OIDC identity of the claim push subscription. May only invoke ClaimProcess."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "certprov function builds"
  description  = "Cloud Build identity that builds the three functions from the source bundle."

  depends_on = [google_project_service.enabled]
}

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # The functions' runtime identities, for the grants they share.
  function_members = {
    claim = google_service_account.claim.member
    poll  = google_service_account.poll.member
    issue = google_service_account.issue.member
  }
}

# --- Firestore -------------------------------------------------------------------
# Firestore has no IAM below the database (no per-collection or per-document
# grants), so read/write of the progress documents is datastore.user on the
# project, narrowed by an IAM condition to this deployment's database.

resource "google_project_iam_member" "firestore_user" {
  for_each = local.function_members

  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value

  dynamic "condition" {
    for_each = var.scope_firestore_grants ? [1] : []
    content {
      title       = "${var.name_prefix}-firestore-database"
      description = "Only the certprov progress database."
      expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.progress.name}\""
    }
  }
}

# --- Cloud Tasks: who enqueues where -----------------------------------------------
# What shared/pipeline enqueues: ClaimProcess the first poll, or the issue task
# when a redelivered notification finds its process already signed;
# PollSignature the next poll and the issue task; IssueCertificate a later
# issue task when the CA answers "pending". Enqueueing a task that carries the
# tasks service account's OIDC token also needs iam.serviceAccounts.actAs on
# that one service account.

locals {
  enqueues = {
    claim = ["poll", "issue", "claim"]
    poll  = ["poll", "issue", "claim"]
    issue = ["issue"]
  }
  queue_names = {
    poll  = google_cloud_tasks_queue.poll.name
    issue = google_cloud_tasks_queue.issue.name
    claim = google_cloud_tasks_queue.claim.name
  }
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = merge([
    for fn, queues in local.enqueues : { for q in queues : "${fn}/${q}" => { fn = fn, queue = q } }
  ]...)

  project  = var.project_id
  location = var.region
  name     = local.queue_names[each.value.queue]
  role     = "roles/cloudtasks.enqueuer"
  member   = local.function_members[each.value.fn]
}

resource "google_service_account_iam_member" "enqueuers_act_as_tasks" {
  for_each = local.enqueues

  service_account_id = google_service_account.tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.function_members[each.key]
}

# --- Invokers: who may call which function ------------------------------------------
# A Cloud Functions (2nd gen) function is served by a Cloud Run service of the
# same name; invoking it takes run.invoker on that service.

resource "google_cloud_run_v2_service_iam_member" "tasks_invokes_poll" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.poll.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks.member
}

resource "google_cloud_run_v2_service_iam_member" "tasks_invokes_issue" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.issue.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks.member
}

resource "google_cloud_run_v2_service_iam_member" "push_invokes_claim" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.claim.name
  role     = "roles/run.invoker"
  member   = google_service_account.claim_invoker.member
}

# --- Pub/Sub service agent -------------------------------------------------------------

# Mints the push subscription's OIDC token as the push service account.
resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.claim_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Forwards undeliverable notifications to the dead-letter topic...
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

# ...and acknowledges them on the claim subscription once forwarded.
resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.claim.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- Build ---------------------------------------------------------------------------------

resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Cloud Functions copies the source into its own staging bucket
# (gcf-v2-sources-PROJECT_NUMBER-REGION, created by the service, so it cannot
# be a resource here) and the build reads it from there.
resource "google_project_iam_member" "build_staging_objects" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = google_service_account.build.member

  condition {
    title       = "${var.name_prefix}-gcf-staging-bucket"
    description = "Only Cloud Functions' source staging bucket of this region."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}\")"
  }
}

# --- Directory API, domain-wide delegation (only with var.directory_subject) --------

# With domain-wide delegation the claim and poll functions (the claim step, and
# the sweep's re-drive of a claimed process, build the certificate request)
# sign a JWT for DIRECTORY_SUBJECT as themselves through the IAM Credentials
# API: each may mint tokens for its own service account and no other.
resource "google_service_account_iam_member" "directory_delegation_self" {
  for_each = var.directory_subject == null ? {} : merge({
    claim = google_service_account.claim
    poll  = google_service_account.poll
    # The reconciliation (reconcile.tf) reads device and user statuses.
  }, var.reconcile.enabled ? { issue = google_service_account.issue } : {})

  service_account_id = each.value.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value.member
}
