# Cloud Tasks: the poll queue carries PollSignature invocations (the first one
# from ClaimProcess, then one per poll until the signature is there or the
# deadline passes), the issue queue IssueCertificate invocations, and the claim
# queue the claims that met the API's quota (PollSignature at /claim). The
# functions create the tasks themselves, with an OIDC token of the tasks service
# account and the target's run.app URL (locals.tf).
#
# Pacing under the API quota (README "Rollout under quota";
# shared/pipeline/quota.go computes the same numbers for the local run):
#   budget B = api_quota_per_minute / 60 x (1 - 0.05) requests per second
#              (5% kept for the sweep, the operator command and failures);
#   an enrollment takes about C = 5.6 requests (measured by the rollout
#   benchmark: 5.58): the claim step's 3 (get, claim, signData), about 1.6
#   operations.get, 1 uploadCertificate;
#   claim queue: B / C tasks per second, the enrollments the budget can
#                finish;
#   poll queue:  B x 2/C per second, more than the admitted enrollments poll,
#   issue queue: B x 2/C per second, at most the lowest ca_issuance_per_second:
#                work in flight gets its share first and a backlog of it drains.
# Example: 2,400/min gives B = 38/s: claim 6.8/s, poll 13.6/s, issue 13.6/s
# (7/s with a CAS Enterprise CA): 50,000 enrollments in about 2 hours, the
# floor that the quota sets.

locals {
  api_budget_per_second = var.api_quota_per_minute / 60 * (1 - 0.05)
  calls_per_enrollment  = 5.6 # pipeline.CallsPerEnrollment
  ca_rate_limit         = length(var.ca_issuance_per_second) > 0 ? min(values(var.ca_issuance_per_second)...) : local.api_budget_per_second * 2 / local.calls_per_enrollment
  queue_rates = {
    claim = coalesce(var.queue_rate_limits.claim.max_dispatches_per_second, local.api_budget_per_second / local.calls_per_enrollment)
    poll  = coalesce(var.queue_rate_limits.poll.max_dispatches_per_second, local.api_budget_per_second * 2 / local.calls_per_enrollment)
    issue = coalesce(var.queue_rate_limits.issue.max_dispatches_per_second, min(local.api_budget_per_second * 2 / local.calls_per_enrollment, local.ca_rate_limit))
  }
}

resource "google_cloud_tasks_queue" "poll" {
  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-poll"

  rate_limits {
    max_dispatches_per_second = local.queue_rates.poll
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
    max_dispatches_per_second = local.queue_rates.issue
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

# The claims that met the API's quota wait here, dispatched at the pace the
# quota can finish (local.queue_rates.claim), instead of spending Pub/Sub's
# deliveries; a claim task that meets 429 again hands on to a fresh task. A
# task may wait in the queue for days; only failed dispatches spend attempts.
resource "google_cloud_tasks_queue" "claim" {
  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-claim"

  rate_limits {
    max_dispatches_per_second = local.queue_rates.claim
    max_concurrent_dispatches = var.queue_rate_limits.claim.max_concurrent_dispatches
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

  lifecycle {
    # Claim tasks run on PollSignature beside the polls: its instances must
    # serve both queues' dispatches at once, or the excess is answered 429.
    precondition {
      condition     = var.queue_rate_limits.poll.max_concurrent_dispatches + var.queue_rate_limits.claim.max_concurrent_dispatches <= local.function_limits.poll.max_instances * local.function_limits.poll.concurrency
      error_message = "queue_rate_limits.poll.max_concurrent_dispatches + claim.max_concurrent_dispatches (${var.queue_rate_limits.poll.max_concurrent_dispatches + var.queue_rate_limits.claim.max_concurrent_dispatches}) must not exceed function_limits.poll.max_instances x concurrency (${local.function_limits.poll.max_instances * local.function_limits.poll.concurrency}): PollSignature runs both queues' tasks."
    }
    # An explicit claim rate must leave the quota room to finish what it
    # admits (about 5.6 requests per enrollment).
    precondition {
      condition     = local.queue_rates.claim * local.calls_per_enrollment <= var.api_quota_per_minute / 60
      error_message = "queue_rate_limits.claim.max_dispatches_per_second (${local.queue_rates.claim}) admits more enrollments than api_quota_per_minute (${var.api_quota_per_minute}) can finish: at most ${floor(var.api_quota_per_minute / 60 / local.calls_per_enrollment * 1000) / 1000} per second (${local.calls_per_enrollment} requests each)."
    }
  }

  depends_on = [google_project_service.enabled]
}
