# Names, URLs and the environment shared by the three functions.

locals {
  # One name per function; each function's Cloud Run service has the same name.
  names = {
    claim = "${var.name_prefix}-claim"
    poll  = "${var.name_prefix}-poll"
    issue = "${var.name_prefix}-issue"
  }

  entry_points = {
    claim = "ClaimProcess"
    poll  = "PollSignature"
    issue = "IssueCertificate"
  }

  # Cloud Run's deterministic URL of each function's service,
  # https://SERVICE-PROJECT_NUMBER.REGION.run.app. It is known before the
  # functions exist, which PollSignature needs (it enqueues polls of itself, and
  # a resource cannot read its own attributes), and it is a run.app URL, which
  # ALLOW_INTERNAL_ONLY ingress requires of Pub/Sub and Cloud Tasks. The
  # functions use it both as the task URL and as the OIDC audience.
  run_urls = {
    for k, name in local.names : k => "https://${name}-${data.google_project.this.number}.${var.region}.run.app"
  }

  # The runtime contract (notes/env.md): every function reads the same set.
  function_env = merge(
    {
      GOOGLE_CLOUD_PROJECT  = var.project_id
      CERTPROV_CONFIG       = var.adapter_config
      FIRESTORE_DATABASE    = google_firestore_database.progress.name
      FIRESTORE_COLLECTION  = var.firestore_collection
      TASKS_POLL_QUEUE      = google_cloud_tasks_queue.poll.id
      TASKS_ISSUE_QUEUE     = google_cloud_tasks_queue.issue.id
      TASKS_CLAIM_QUEUE     = google_cloud_tasks_queue.claim.id
      POLL_SIGNATURE_URL    = local.run_urls.poll
      ISSUE_CERTIFICATE_URL = local.run_urls.issue
      TASKS_SERVICE_ACCOUNT = google_service_account.tasks.email
      TASKS_MAX_ATTEMPTS    = tostring(var.tasks_max_attempts)
      RECORD_TTL            = var.record_ttl
      INVENTORY_COLLECTION  = var.inventory.collection
      INVENTORY_GRACE       = var.inventory.grace
      LOG_LEVEL             = var.log_level
      SWEEP_AFTER           = var.sweep.after
      LEASE                 = var.lease.lease
      # One sweep stops at a record boundary 10 s before PollSignature's
      # timeout; the next sweep takes the rest.
      SWEEP_BUDGET = "${max(10, local.function_limits.poll.timeout_seconds - 10)}s"
    },
    var.lease.ca_timeout == null ? {} : { CA_TIMEOUT = var.lease.ca_timeout },
    var.caller_instance_id == null ? {} : { CALLER_INSTANCE_ID = var.caller_instance_id },
    var.directory_subject == null ? {} : { DIRECTORY_SUBJECT = var.directory_subject },
    {
      for k, v in {
        POLL_INITIAL_DELAY = var.poll_schedule.initial_delay
        POLL_MULTIPLIER    = var.poll_schedule.multiplier
        POLL_MAX_DELAY     = var.poll_schedule.max_delay
        POLL_JITTER        = var.poll_schedule.jitter
        POLL_FAST_FOR      = var.poll_schedule.fast_for
        POLL_LATE_AFTER    = var.poll_schedule.late_after
        POLL_LATE_INTERVAL = var.poll_schedule.late_interval
        POLL_DEADLINE      = var.poll_schedule.deadline
      } : k => tostring(v) if v != null
    },
  )

  # Each function's size when var.function_limits leaves it out (variables.tf
  # says why; shared/tooling/simulation's cost model prices the same sizes,
  # DeployedSizes, and TestTerraformFunctionSizes holds the two together).
  function_defaults = {
    claim = { memory = "512Mi", cpu = "1", concurrency = 20, max_instances = 5, timeout_seconds = 60 }
    poll  = { memory = "256Mi", cpu = "0.25", concurrency = 1, max_instances = 100, timeout_seconds = 60 }
    issue = { memory = "512Mi", cpu = "1", concurrency = 20, max_instances = 5, timeout_seconds = 300 }
  }
  # The defaults with what var.function_limits sets on top, attribute by
  # attribute.
  function_limits = {
    for k, d in local.function_defaults : k => merge(d, {
      for a, v in try(var.function_limits[k], {}) : a => v if v != null
    })
  }

  # Cloud Run's rules for a function's size, checked at plan (function_*.tf
  # preconditions) with the merged values: below one vCPU an instance serves
  # one request at a time, and below 0.5 vCPU it gets at most 512Mi (below 1
  # vCPU at most 1Gi).
  function_size_errors = {
    for k, l in local.function_limits : k => compact([
      l.concurrency > 1 && tonumber(l.cpu) < 1 ? "function_limits.${k}: concurrency ${l.concurrency} needs cpu of at least \"1\" (cpu is \"${l.cpu}\"); more than 1 needs cpu of at least \"1\", or set concurrency = 1" : "",
      tonumber(l.cpu) < 0.5 && local.memory_mib[k] > 512 ? "function_limits.${k}: memory ${l.memory} needs cpu of at least \"0.5\" (below it Cloud Run gives at most 512Mi)" : "",
      tonumber(l.cpu) < 1 && local.memory_mib[k] > 1024 ? "function_limits.${k}: memory ${l.memory} needs cpu of at least \"1\" (below it Cloud Run gives at most 1Gi)" : "",
    ])
  }
  # Memory in MiB, from the units the provider takes (k, M, G, Mi, Gi; none:
  # bytes).
  memory_mib = {
    for k, l in local.function_limits : k => (
      tonumber(regex("^([0-9]+)", l.memory)[0]) * lookup({
        "" = 1 / 1048576, k = 1000 / 1048576, M = 1000000 / 1048576, G = 1000000000 / 1048576, Mi = 1, Gi = 1024
      }, regex("^[0-9]+([a-zA-Z]*)$", l.memory)[0], 0)
    )
  }
}
