# The daily reconciliation (README, "Revocation"), off by default
# (var.reconcile.enabled). A Cloud Scheduler job posts {"dryRun": ...} to
# IssueCertificate's /reconcile path (shared/adapter ReconcilePath): the
# function reads the certificate inventory, asks the Directory API (as for the
# directory variables: its admin role or DIRECTORY_SUBJECT's domain-wide
# delegation, read-only scopes) which devices are deprovisioned, disabled or
# deleted and which users are suspended or deleted, and revokes their
# certificates where the CA connection can (Google CAS: RevokeCertificate,
# which needs privateca.certificates.update on the pool, granted below), and
# logs a WARNING for each it can only report (SCEP, EST), which the metric
# and the alert below count.
#
# Identity: google_service_account.reconcile, the job's OIDC identity. It may
# only invoke IssueCertificate.

resource "google_service_account" "reconcile" {
  count = var.reconcile.enabled ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-reconcile"
  display_name = "certprov reconciliation invoker"
  description  = "OIDC identity of the daily reconciliation job. May only invoke IssueCertificate."

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_run_v2_service_iam_member" "reconcile_invokes_issue" {
  count = var.reconcile.enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.issue.name
  role     = "roles/run.invoker"
  member   = google_service_account.reconcile[0].member
}

resource "google_cloud_scheduler_job" "reconcile" {
  count = var.reconcile.enabled ? 1 : 0

  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-reconcile"
  description      = "Revokes (or, in a dry run, lists) the certificates of deprovisioned devices and suspended users."
  schedule         = var.reconcile.schedule
  time_zone        = var.reconcile.time_zone
  attempt_deadline = "${min(1800, local.function_limits.issue.timeout_seconds)}s"

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "${local.run_urls.issue}/reconcile"
    body        = base64encode(jsonencode({ dryRun = var.reconcile.dry_run }))
    headers = {
      "Content-Type" = "application/json"
    }
    oidc_token {
      service_account_email = google_service_account.reconcile[0].email
      audience              = local.run_urls.issue
    }
  }

  depends_on = [google_project_service.enabled, google_cloud_run_v2_service_iam_member.reconcile_invokes_issue]
}

# RevokeCertificate needs privateca.certificates.update, which the issuer
# role (cas.tf) leaves out: a role of its own, granted to IssueCertificate on
# the pools only when the reconciliation is on.
resource "google_project_iam_custom_role" "cas_revoker" {
  for_each = var.reconcile.enabled ? local.cas_pool_projects : toset([])

  project     = each.value
  role_id     = "${replace(var.name_prefix, "-", "_")}_casRevoker"
  title       = "certprov CAS revoker (${var.name_prefix})"
  description = "What the certprov reconciliation needs on a CA pool: revoke certificates (RevokeCertificate)."
  permissions = ["privateca.certificates.update"]

  depends_on = [google_project_service.enabled]
}

resource "google_privateca_ca_pool_iam_member" "issue_revoker" {
  for_each = var.reconcile.enabled ? local.cas_pools : {}

  ca_pool = each.value
  role    = google_project_iam_custom_role.cas_revoker[each.key == "created" ? var.project_id : split("/", each.value)[1]].name
  member  = google_service_account.issue.member
}

locals {
  revocation_report_only_filter = "${local.functions_filter} AND severity=WARNING AND jsonPayload.message=\"certificate must be revoked in the CA: its connector cannot revoke\""
}

resource "google_logging_metric" "revocation_report_only" {
  count = var.reconcile.enabled ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}/revocation_report_only"
  description = "Certificates the reconciliation could only report: their CA connection (SCEP, EST) cannot revoke; the administrator must revoke them in the CA."
  filter      = local.revocation_report_only_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "certprov certificates to revoke in the CA"
    labels {
      key         = "ca_connection_ref"
      value_type  = "STRING"
      description = "The CA connection that issued it."
    }
  }
  label_extractors = {
    ca_connection_ref = "EXTRACT(jsonPayload.ca_connection_ref)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "revocation_report_only" {
  count = var.reconcile.enabled ? 1 : 0

  project               = var.project_id
  display_name          = "certprov: certificates to revoke in the CA"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  # About single log entries: a log-match condition, which needs no metric.
  conditions {
    display_name = "a certificate could only be reported for revocation"
    condition_matched_log {
      filter = local.revocation_report_only_filter
      label_extractors = {
        serial = "EXTRACT(jsonPayload.certificate_serial)"
        issuer = "EXTRACT(jsonPayload.issuer)"
      }
    }
  }
  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The reconciliation found a certificate of a deprovisioned, disabled or deleted device, or of a
      suspended or deleted user, whose CA connection cannot revoke through the adapter (SCEP and EST
      have no revocation in their protocols). Revoke it in the CA by the serial and issuer in the log
      entry, or list them all with `certprov certs list --json | jq '.certificates[] | select(.revocation.reportedOnly)'`.
      See the README, "Revocation".
    EOT
  }
}
