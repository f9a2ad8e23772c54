# What the administrator needs after `terraform apply`: the topic to enter in
# the Admin console, the identities to authorize there, and where to look.

output "notification_topic" {
  description = "Pub/Sub topic to name in the Google Admin console as the destination of certificate provisioning notifications."
  value       = google_pubsub_topic.notifications.id
}

output "function_service_accounts" {
  description = "Runtime identities of the functions. In the Admin console, give these the admin role that allows certificate provisioning (claim, signData, upload, setFailure)."
  value = {
    claim = google_service_account.claim.email
    poll  = google_service_account.poll.email
    issue = google_service_account.issue.email
  }
}

output "invoker_service_accounts" {
  description = "Identities that may invoke the functions: the claim push subscription's, the Cloud Tasks tasks' and the sweep job's."
  value = {
    claim_push = google_service_account.claim_invoker.email
    tasks      = google_service_account.tasks.email
    sweep      = google_service_account.sweep.email
  }
}

output "sweep_job" {
  description = "The Cloud Scheduler job of the sweep of stranded processes (null when sweep.schedule is \"\")."
  value       = one(google_cloud_scheduler_job.sweep[*].id)
}

output "function_urls" {
  description = "run.app URLs of the functions (internal ingress: reachable only from this project's Pub/Sub and Cloud Tasks)."
  value       = local.run_urls
}

output "functions" {
  description = "Function names, for `gcloud functions describe` and the log filters."
  value       = local.names
}

output "queues" {
  description = "Cloud Tasks queues (TASKS_POLL_QUEUE, TASKS_ISSUE_QUEUE, TASKS_CLAIM_QUEUE)."
  value = {
    poll  = google_cloud_tasks_queue.poll.id
    issue = google_cloud_tasks_queue.issue.id
    claim = google_cloud_tasks_queue.claim.id
  }
}

output "dead_letter_subscription" {
  description = "Pull subscription holding notifications that ClaimProcess could not handle."
  value       = google_pubsub_subscription.dead_letter.id
}

output "firestore" {
  description = "Firestore database and collection of the progress documents."
  value = {
    database   = google_firestore_database.progress.name
    collection = var.firestore_collection
  }
}

output "source_object" {
  description = "Source bundle object the functions were built from; its name carries the bundle's SHA-256."
  value       = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.bundle.name}"
}

output "cas_pool" {
  description = "CAS pool created for the adapter (null when var.cas is null)."
  value       = one(google_privateca_ca_pool.this[*].id)
}

output "dashboard" {
  description = "Cloud Monitoring dashboard."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.certprov.id), 3)}?project=${var.project_id}"
}

output "log_filter" {
  description = "Cloud Logging filter of all state transitions; add AND jsonPayload.process_id=\"...\" for one process."
  value       = local.transition_filter
}

output "operator_env" {
  description = "The environment of the certprov CLI for this deployment (the functions' own variables, without the adapter config): export these before certprov status, find, retry or fail."
  value = {
    for k, v in local.function_env : k => v
    if contains(["GOOGLE_CLOUD_PROJECT", "FIRESTORE_DATABASE", "FIRESTORE_COLLECTION", "TASKS_POLL_QUEUE", "TASKS_ISSUE_QUEUE",
    "POLL_SIGNATURE_URL", "ISSUE_CERTIFICATE_URL", "TASKS_SERVICE_ACCOUNT", "TASKS_MAX_ATTEMPTS", "RECORD_TTL", "LEASE", "CALLER_INSTANCE_ID"], k)
  }
}
