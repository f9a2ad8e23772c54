# Cloud Tasks: the poll queue carries PollSignature invocations (the first one
# from ClaimProcess, then one per poll until the signature is there or the
# deadline passes), the issue queue IssueCertificate invocations. The functions
# create the tasks themselves, with an OIDC token of the tasks service account
# and the target's run.app URL (locals.tf).

resource "google_cloud_tasks_queue" "poll" {
  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-poll"

  rate_limits {
    max_dispatches_per_second = var.queue_rate_limits.poll.max_dispatches_per_second
    max_concurrent_dispatches = var.queue_rate_limits.poll.max_concurrent_dispatches
  }

  # Bounded retries: the functions read the same number (TASKS_MAX_ATTEMPTS)
  # and report a failure on the last attempt instead of leaving the process
  # waiting (architecture invariant 3).
  retry_config {
    max_attempts  = var.tasks_max_attempts
    min_backoff   = var.tasks_retry_backoff.minimum
    max_backoff   = var.tasks_retry_backoff.maximum
    max_doublings = 5
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  # Dispatches beyond what the function can serve at once are answered 429,
  # and each spends one of the task's attempts.
  lifecycle {
    precondition {
      condition     = var.queue_rate_limits.poll.max_concurrent_dispatches <= local.function_limits.poll.max_instances * local.function_limits.poll.concurrency
      error_message = "queue_rate_limits.poll.max_concurrent_dispatches (${var.queue_rate_limits.poll.max_concurrent_dispatches}) must not exceed function_limits.poll.max_instances x concurrency (${local.function_limits.poll.max_instances * local.function_limits.poll.concurrency})."
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_tasks_queue" "issue" {
  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-issue"

  rate_limits {
    max_dispatches_per_second = var.queue_rate_limits.issue.max_dispatches_per_second
    max_concurrent_dispatches = var.queue_rate_limits.issue.max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = var.tasks_max_attempts
    min_backoff   = var.tasks_retry_backoff.minimum
    max_backoff   = var.tasks_retry_backoff.maximum
    max_doublings = 5
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  # Dispatches beyond what the function can serve at once are answered 429,
  # and each spends one of the task's attempts.
  lifecycle {
    precondition {
      condition     = var.queue_rate_limits.issue.max_concurrent_dispatches <= local.function_limits.issue.max_instances * local.function_limits.issue.concurrency
      error_message = "queue_rate_limits.issue.max_concurrent_dispatches (${var.queue_rate_limits.issue.max_concurrent_dispatches}) must not exceed function_limits.issue.max_instances x concurrency (${local.function_limits.issue.max_instances * local.function_limits.issue.concurrency})."
    }
  }

  depends_on = [google_project_service.enabled]
}
