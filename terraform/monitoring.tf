# Observability: log-based metrics built from the functions' structured logs,
# one dashboard, and alert policies.
#
# Every state transition is logged once as JSON (shared/logging), which Cloud
# Logging stores as jsonPayload on resource.type="cloud_run_revision":
#   message="state transition", severity, state, from_state, process_id,
#   customer, elapsed_ms (since the process was received), ca_connection_ref,
#   profile_ref; reason and failure_message on FAILING/FAILED;
#   time_to_certificate_ms and poll_count on UPLOADED.
# A process ends in state UPLOADED, FAILED or CLAIMED_ELSEWHERE: those are the
# "outcomes" counted below.

locals {
  # Log entries of the three functions' state transitions.
  transition_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for n in values(local.names) : "\"${n}\""])})",
    "jsonPayload.message=\"state transition\"",
  ])
  outcome_filter = "${local.transition_filter} AND jsonPayload.state=(\"UPLOADED\" OR \"FAILED\" OR \"CLAIMED_ELSEWHERE\")"

  metric_types = {
    enrollments         = "logging.googleapis.com/user/${google_logging_metric.enrollments.name}"
    time_to_certificate = "logging.googleapis.com/user/${google_logging_metric.time_to_certificate.name}"
    polls               = "logging.googleapis.com/user/${google_logging_metric.polls_per_enrollment.name}"
    failures            = "logging.googleapis.com/user/${google_logging_metric.failures.name}"
    past_deadline       = "logging.googleapis.com/user/${google_logging_metric.past_deadline.name}"
    failure_unreported  = "logging.googleapis.com/user/${google_logging_metric.failure_unreported.name}"
    own_claim_refused   = "logging.googleapis.com/user/${google_logging_metric.own_claim_refused.name}"
  }
  sweep_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.names.poll}\"",
  ])
  # Functions' log entries of any of the three.
  functions_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for n in values(local.names) : "\"${n}\""])})",
  ])
  # A failure whose setFailure has not gone through after its fresh tasks
  # (IssueCertificate) or at a sweep after its re-drives (PollSignature):
  # shared/pipeline MsgFailureUnreported. The record stays FAILING and keeps
  # being retried; its device has not been told.
  failure_unreported_filter = "${local.functions_filter} AND severity=ERROR AND jsonPayload.message=\"failure not reported to the device\""
  # A claim refused after an earlier claim attempt of ours whose answer was
  # lost (shared/pipeline MsgOwnClaimRefused): the process is left alone, maybe
  # our own (see the README).
  own_claim_refused_filter = "${local.functions_filter} AND severity=ERROR AND jsonPayload.message=\"claim refused after an earlier claim attempt of this adapter\""
  # A Directory API read refused for good (403/404) for a profile's directory
  # variables (shared/pipeline MsgDirectoryRefused): the process failed before
  # signData, and every process with the same need will, until the adapter's
  # access is fixed.
  directory_refused_filter = "${local.functions_filter} AND severity=ERROR AND jsonPayload.message=\"directory look-up refused\""

  # A transition logged after the poll deadline, or a failure because of a
  # deadline, except the expected one: a device that never signed (offline)
  # fails with "no signature after N polls by the deadline ..." (shared/pipeline
  # poll.go). What is left means a deadline was not enforced, or the CA did not
  # issue in time.
  past_deadline_filter = join(" AND ", [
    local.transition_filter,
    "(jsonPayload.elapsed_ms>${var.poll_deadline_alert_hours * 3600000} OR jsonPayload.reason=~\"(?i)deadline\")",
    "NOT jsonPayload.reason=~\"^no signature after [0-9]+ polls by the deadline\"",
  ])
}

# --- Log-based metrics -------------------------------------------------------------

resource "google_logging_metric" "enrollments" {
  project     = var.project_id
  name        = "${var.name_prefix}/enrollments"
  description = "Finished enrollments (processes), by outcome and customer."
  filter      = local.outcome_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "certprov enrollments"
    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "UPLOADED, FAILED or CLAIMED_ELSEWHERE"
    }
    labels {
      key         = "customer"
      value_type  = "STRING"
      description = "Google Workspace customer ID"
    }
  }
  label_extractors = {
    outcome  = "EXTRACT(jsonPayload.state)"
    customer = "EXTRACT(jsonPayload.customer)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "time_to_certificate" {
  project         = var.project_id
  name            = "${var.name_prefix}/time_to_certificate"
  description     = "Time from the notification to the uploaded certificate."
  filter          = "${local.transition_filter} AND jsonPayload.state=\"UPLOADED\""
  value_extractor = "EXTRACT(jsonPayload.time_to_certificate_ms)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "certprov time to certificate"
  }
  # 250 ms to about 48 days in doubling steps: online clients answer in
  # seconds, offline ones in hours.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 250
    }
  }

  depends_on = [google_project_service.enabled]
}

# poll_count is logged with the outcome; enrollments that finish without it
# (nothing was polled) are not in the distribution.
resource "google_logging_metric" "polls_per_enrollment" {
  project         = var.project_id
  name            = "${var.name_prefix}/polls_per_enrollment"
  description     = "operations.get calls per finished enrollment: the cost side of the poll schedule."
  filter          = "${local.outcome_filter} AND jsonPayload.poll_count>=0"
  value_extractor = "EXTRACT(jsonPayload.poll_count)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "certprov polls per enrollment"
    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "UPLOADED, FAILED or CLAIMED_ELSEWHERE"
    }
  }
  label_extractors = {
    outcome = "EXTRACT(jsonPayload.state)"
  }
  bucket_options {
    explicit_buckets {
      bounds = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597]
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "failures" {
  project     = var.project_id
  name        = "${var.name_prefix}/failures"
  description = "Failed enrollments, by reason and by the state they failed in."
  filter      = "${local.transition_filter} AND jsonPayload.state=\"FAILED\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "certprov failures"
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Why the process failed: the leading phrase of jsonPayload.reason"
    }
    labels {
      key         = "from_state"
      value_type  = "STRING"
      description = "State the process was in when it failed"
    }
  }
  # reason is an error text that may carry ids; its leading phrase (up to the
  # first colon) keeps the label's values few. The full text stays in the log.
  label_extractors = {
    reason     = "REGEXP_EXTRACT(jsonPayload.reason, \"^([^:]{1,80})\")"
    from_state = "EXTRACT(jsonPayload.from_state)"
  }

  depends_on = [google_project_service.enabled]
}

# A transition logged after the poll deadline, or a deadline failure other
# than an offline device's (local.past_deadline_filter).
resource "google_logging_metric" "past_deadline" {
  project     = var.project_id
  name        = "${var.name_prefix}/past_deadline"
  description = "State transitions of processes older than the poll deadline, and deadline failures other than a device that never signed."
  filter      = local.past_deadline_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "certprov transitions past deadline"
  }

  depends_on = [google_project_service.enabled]
}

# The sweep (sweep.tf): processes it found stranded and re-drove, and those it
# had to give up on (setFailure never went through).
resource "google_logging_metric" "sweep_redriven" {
  project     = var.project_id
  name        = "${var.name_prefix}/sweep_redriven"
  description = "Processes the sweep found stranded (a dropped task) and re-drove, by state."
  filter      = "${local.sweep_filter} AND jsonPayload.message=\"stale process re-driven\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "certprov processes re-driven by the sweep"
    labels {
      key        = "state"
      value_type = "STRING"
    }
  }
  label_extractors = {
    state = "EXTRACT(jsonPayload.state)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "failure_unreported" {
  project     = var.project_id
  name        = "${var.name_prefix}/failure_unreported"
  description = "Failures whose setFailure has not gone through after every bounded retry: the record stays FAILING, the device has not been told."
  filter      = local.failure_unreported_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "certprov failures not reported to the device"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "incomplete_certificates" {
  project     = var.project_id
  name        = "${var.name_prefix}/incomplete_certificates"
  description = "Issued certificates that lack a SAN, a key usage or an extended key usage the request asked for (refused where the CA connection sets refuseIncomplete)."
  filter      = "${local.functions_filter} AND jsonPayload.message=\"issued certificate lacks what the request asked for\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "certprov incomplete certificates"
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

resource "google_logging_metric" "own_claim_refused" {
  project     = var.project_id
  name        = "${var.name_prefix}/own_claim_refused"
  description = "Claims refused although an earlier claim attempt of this adapter may have claimed the process (its answer was lost)."
  filter      = local.own_claim_refused_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "certprov own claims refused"
  }

  depends_on = [google_project_service.enabled]
}

# Cloud Monitoring answers 404 "Cannot find metric(s) ... it could take up to
# 10 minutes to become available" to an alert policy on a log-based metric
# created moments before (terraform-provider-google issue 11102). The alerts
# about single log entries use log-match conditions and need no metric; the
# one that needs a metric (failure_rate) waits for this, which sleeps once
# after the metrics it guards are created or replaced. It runs while the
# functions build, so a first apply takes little longer.
resource "time_sleep" "log_metrics_usable" {
  create_duration = var.log_metric_wait
  triggers = {
    enrollments = google_logging_metric.enrollments.id
  }
}

# --- Alert policies ---------------------------------------------------------------------

resource "google_monitoring_alert_policy" "failure_unreported" {
  project               = var.project_id
  display_name          = "certprov: failures not reported to the device"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  # About single log entries: a log-match condition, which needs no metric (a
  # metric created in the same apply is not usable for minutes).
  conditions {
    display_name = "a failure has not reached its device"
    condition_matched_log {
      filter = local.failure_unreported_filter
      label_extractors = {
        customer   = "EXTRACT(jsonPayload.customer)"
        process_id = "EXTRACT(jsonPayload.process_id)"
      }
    }
  }
  alert_strategy {
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A process failed, and setFailure has not gone through after the queue's retries and three fresh tasks
      (the Certificate Provisioning API or Firestore down, a permission missing, or a broken release). Its
      record stays FAILING and every sweep tries again; the device has not been told yet. The processes:

          gcloud logging read '${local.functions_filter} AND jsonPayload.message=("failure not reported to the device" OR "stale process re-driven")' --project=${var.project_id} --freshness=7d --format='table(timestamp, jsonPayload.customer, jsonPayload.process_id, jsonPayload.state, jsonPayload.sweeps, jsonPayload.reason, jsonPayload.last_error)'
    EOT
  }
}

resource "google_monitoring_alert_policy" "own_claim_refused" {
  project               = var.project_id
  display_name          = "certprov: a claim refused after our own earlier attempt"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "claim refused after an earlier claim attempt of this adapter"
    condition_matched_log {
      filter = local.own_claim_refused_filter
      label_extractors = {
        customer   = "EXTRACT(jsonPayload.customer)"
        process_id = "EXTRACT(jsonPayload.process_id)"
      }
    }
  }
  alert_strategy {
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The API refused a claim although an earlier delivery of this adapter may have claimed the process
      (its answer was lost). The adapter left the process alone (CLAIMED_ELSEWHERE), since another adapter may
      hold it. If no other adapter serves this customer, the process was ours: its device retries by itself
      after about a day or a reboot. See the README, "A refused claim after a lost answer".
    EOT
  }
}

resource "google_monitoring_alert_policy" "directory_refused" {
  project               = var.project_id
  display_name          = "certprov: the Directory API refused a directory variable's read"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "directory look-up refused"
    condition_matched_log {
      filter = local.directory_refused_filter
      label_extractors = {
        customer = "EXTRACT(jsonPayload.customer)"
        action   = "EXTRACT(jsonPayload.action)"
      }
    }
  }
  alert_strategy {
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The Directory API answered 403 or 404 to a read for a profile's directory variables (such as
      $${DEVICE_ASSET_ID}): the process failed before signData, and its device was told. The log entry's
      "action" says what to fix: usually the read privilege of the functions' admin role, or the
      domain-wide delegation. See the README, "Directory variables".
    EOT
  }
}

resource "google_monitoring_alert_policy" "failure_rate" {
  project               = var.project_id
  display_name          = "certprov: enrollment failure rate above ${var.failure_rate_threshold * 100}%"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  # A ratio over a window needs the log-based metric, which Cloud Monitoring
  # may not know for up to 10 minutes after it is created (404 "Cannot find
  # metric(s)", terraform-provider-google issue 11102): wait first.
  depends_on = [time_sleep.log_metrics_usable]

  conditions {
    display_name = "FAILED / all finished enrollments over ${var.alert_window}"
    condition_threshold {
      filter             = "metric.type=\"${local.metric_types.enrollments}\" AND resource.type=\"cloud_run_revision\" AND metric.label.outcome=\"FAILED\""
      denominator_filter = "metric.type=\"${local.metric_types.enrollments}\" AND resource.type=\"cloud_run_revision\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.failure_rate_threshold
      duration           = "0s"
      aggregations {
        alignment_period     = var.alert_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = var.alert_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      More than ${var.failure_rate_threshold * 100}% of the enrollments that finished in the last ${var.alert_window} failed.
      Reasons, newest first:

          gcloud logging read '${local.transition_filter} AND jsonPayload.state="FAILED"' --project=${var.project_id} --freshness=1d --format='table(timestamp, jsonPayload.customer, jsonPayload.process_id, jsonPayload.from_state, jsonPayload.reason)'
    EOT
  }
}

resource "google_monitoring_alert_policy" "past_deadline" {
  project               = var.project_id
  display_name          = "certprov: processes past their deadline"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  # About single log entries: a log-match condition (no metric needed).
  conditions {
    display_name = "transitions after ${var.poll_deadline_alert_hours}h or deadline failures, not an offline device's"
    condition_matched_log {
      filter = local.past_deadline_filter
      label_extractors = {
        customer   = "EXTRACT(jsonPayload.customer)"
        process_id = "EXTRACT(jsonPayload.process_id)"
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
      A process did something after its ${var.poll_deadline_alert_hours}h deadline, or failed because the CA did not issue in time.
      A device that never signed (offline) failing at its deadline is expected and does not alert.
      The processes concerned:

          gcloud logging read '${local.past_deadline_filter}' --project=${var.project_id} --freshness=1d --format='table(timestamp, jsonPayload.customer, jsonPayload.process_id, jsonPayload.state, jsonPayload.elapsed_ms, jsonPayload.reason)'
    EOT
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "certprov: notifications dead-lettered"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "messages waiting in ${google_pubsub_subscription.dead_letter.name}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ClaimProcess failed on a notification ${var.tasks_max_attempts} times; Pub/Sub moved it to the dead-letter topic, so its process was not started.
      Look at the messages, fix the cause (usually in the ClaimProcess logs), then replay them by publishing their data to ${google_pubsub_topic.notifications.name} again:

          gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name} --project=${var.project_id} --limit=10
          gcloud logging read 'resource.type="cloud_run_revision" AND resource.labels.service_name="${local.names.claim}" AND severity>=WARNING' --project=${var.project_id} --freshness=1d
    EOT
  }
}

# --- Dashboard ------------------------------------------------------------------------------

locals {
  # The chart tiles of the dashboard, laid out two per row.
  dashboard_tiles = [
    {
      title = "Enrollments by outcome"
      chart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "STACKED_BAR"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type=\"${local.metric_types.enrollments}\" resource.type=\"cloud_run_revision\""
              aggregation = {
                alignmentPeriod    = "3600s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["metric.label.outcome"]
              }
            }
          }
        }]
      }
    },
    {
      title = "Failures by reason"
      chart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "STACKED_BAR"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type=\"${local.metric_types.failures}\" resource.type=\"cloud_run_revision\""
              aggregation = {
                alignmentPeriod    = "3600s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["metric.label.reason"]
              }
            }
          }
        }]
      }
    },
    {
      title = "Time to certificate (p50, p95)"
      chart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [for p in ["50", "95"] : {
          plotType       = "LINE"
          legendTemplate = "p${p}"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type=\"${local.metric_types.time_to_certificate}\" resource.type=\"cloud_run_revision\""
              aggregation = {
                alignmentPeriod    = "3600s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_PERCENTILE_${p}"
              }
            }
          }
        }]
      }
    },
    {
      title = "Polls per enrollment (p50, p95)"
      chart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [for p in ["50", "95"] : {
          plotType       = "LINE"
          legendTemplate = "p${p}"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type=\"${local.metric_types.polls}\" resource.type=\"cloud_run_revision\""
              aggregation = {
                alignmentPeriod    = "3600s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_PERCENTILE_${p}"
              }
            }
          }
        }]
      }
    },
    {
      title = "Tasks waiting per queue"
      chart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "LINE"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type=\"cloudtasks.googleapis.com/queue/depth\" resource.type=\"cloud_tasks_queue\" resource.label.queue_id=(\"${google_cloud_tasks_queue.poll.name}\" OR \"${google_cloud_tasks_queue.issue.name}\")"
              aggregation = {
                alignmentPeriod    = "300s"
                perSeriesAligner   = "ALIGN_MEAN"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["resource.label.queue_id"]
              }
            }
          }
        }]
      }
    },
    {
      title = "Function requests by response class"
      chart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "STACKED_BAR"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type=\"run.googleapis.com/request_count\" resource.type=\"cloud_run_revision\" resource.label.service_name=(${join(" OR ", [for n in values(local.names) : "\"${n}\""])})"
              aggregation = {
                alignmentPeriod    = "300s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["resource.label.service_name", "metric.label.response_code_class"]
              }
            }
          }
        }]
      }
    },
    {
      title = "Dead-lettered notifications waiting"
      chart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "LINE"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" resource.type=\"pubsub_subscription\" resource.label.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\""
              aggregation = {
                alignmentPeriod  = "300s"
                perSeriesAligner = "ALIGN_MAX"
              }
            }
          }
        }]
      }
    },
  ]
}

resource "google_monitoring_dashboard" "certprov" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "certprov: certificate provisioning (${var.name_prefix})"
    mosaicLayout = {
      columns = 48
      tiles = concat(
        [for i, t in local.dashboard_tiles : {
          xPos   = (i % 2) * 24
          yPos   = floor(i / 2) * 16
          width  = 24
          height = 16
          widget = { title = t.title, xyChart = t.chart }
        }],
        [{
          xPos   = 0
          yPos   = ceil(length(local.dashboard_tiles) / 2) * 16
          width  = 48
          height = 16
          widget = {
            title = "Warnings and errors of the functions"
            logsPanel = {
              filter        = "resource.type=\"cloud_run_revision\" resource.labels.service_name=(${join(" OR ", [for n in values(local.names) : "\"${n}\""])}) severity>=WARNING"
              resourceNames = ["projects/${var.project_id}"]
            }
          }
        }],
      )
    }
  })

  depends_on = [google_project_service.enabled]
}
