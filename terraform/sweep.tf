# The sweep of stranded processes (README, "When a task is lost: the sweep").
# A task whose every attempt failed is dropped by Cloud Tasks; once an hour a
# Cloud Scheduler job posts to PollSignature's /sweep path (shared/adapter
# SweepPath), which re-drives the unfinished processes whose record has not
# changed for SWEEP_AFTER.
#
# Identity: google_service_account.sweep, the job's OIDC identity. It may only
# invoke PollSignature. The query it triggers needs google_firestore_index.stale.

resource "google_service_account" "sweep" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-sweep"
  display_name = "certprov sweep invoker"
  description  = "OIDC identity of the hourly sweep job. May only invoke PollSignature."

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_run_v2_service_iam_member" "sweep_invokes_poll" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.poll.name
  role     = "roles/run.invoker"
  member   = google_service_account.sweep.member
}

resource "google_cloud_scheduler_job" "sweep" {
  count = var.sweep.schedule == "" ? 0 : 1

  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-sweep"
  description = "Re-drives certprov processes stranded by a dropped task."
  schedule    = var.sweep.schedule
  time_zone   = var.sweep.time_zone
  # Not longer than the invocation it waits for: PollSignature's timeout.
  attempt_deadline = "${min(1800, local.function_limits.poll.timeout_seconds)}s"

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    # The path routes the request; the new release ignores the body. The body
    # is what releases before the /sweep route read (they serve every path as
    # the poll route and take {"sweep":true} there), so the job sweeps with
    # either release while a deploy is under way. Both releases accept it.
    uri  = "${local.run_urls.poll}/sweep"
    body = base64encode("{\"sweep\":true}")
    headers = {
      "Content-Type" = "application/json"
    }
    oidc_token {
      service_account_email = google_service_account.sweep.email
      # Cloud Run checks the token's audience against the service URL, not
      # the request's path.
      audience = local.run_urls.poll
    }
  }

  depends_on = [google_project_service.enabled, google_cloud_run_v2_service_iam_member.sweep_invokes_poll]
}
