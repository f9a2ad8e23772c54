# The operators of the certprov CLI (functions/cmd/certprov), from
# var.operator_members. Readers look (status, timeline, list, find); actors
# also act (retry re-drives a process with a task, fail reports a failure
# with a task as its fallback), and so write the progress documents and
# enqueue the tasks the functions enqueue, carrying the tasks identity's
# OIDC token. An actor needs no reader grant: datastore.user reads too.

locals {
  operator_actors  = toset(var.operator_members.actors)
  operator_readers = setsubtract(toset(var.operator_members.readers), local.operator_actors)
  operator_database_condition = {
    title       = "${var.name_prefix}-firestore-database"
    description = "Only the certprov progress database."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.progress.name}\""
  }
}

resource "google_project_iam_member" "operator_reader" {
  for_each = local.operator_readers

  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = each.value

  dynamic "condition" {
    for_each = var.scope_firestore_grants ? [local.operator_database_condition] : []
    content {
      title       = condition.value.title
      description = condition.value.description
      expression  = condition.value.expression
    }
  }
}

resource "google_project_iam_member" "operator_actor" {
  for_each = local.operator_actors

  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value

  dynamic "condition" {
    for_each = var.scope_firestore_grants ? [local.operator_database_condition] : []
    content {
      title       = condition.value.title
      description = condition.value.description
      expression  = condition.value.expression
    }
  }
}

# retry enqueues a poll task (up to POLLING) or an issue task (from SIGNED,
# and the failure report); fail hands a report that did not go through to an
# issue task.
resource "google_cloud_tasks_queue_iam_member" "operator_enqueuer" {
  for_each = merge([
    for m in local.operator_actors : { for q in ["poll", "issue"] : "${m}/${q}" => { member = m, queue = q } }
  ]...)

  project  = var.project_id
  location = var.region
  name     = local.queue_names[each.value.queue]
  role     = "roles/cloudtasks.enqueuer"
  member   = each.value.member
}

# The tasks carry the tasks service account's OIDC token (TASKS_SERVICE_ACCOUNT):
# actAs on that one service account.
resource "google_service_account_iam_member" "operator_acts_as_tasks" {
  for_each = local.operator_actors

  service_account_id = google_service_account.tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}
