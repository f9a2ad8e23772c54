# Inputs of one deployment. terraform.tfvars.example shows every one of them
# with a comment; only project_id and adapter_config have no default.

# --- Where -------------------------------------------------------------------

variable "project_id" {
  description = "Project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits and hyphens), not a project number or name."
  }
}

variable "region" {
  description = "Region of the functions, queues, source bucket and (by default) the Firestore database."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Cloud region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, service accounts, queues, topics, metrics). Change it to run two deployments in one project."
  type        = string
  default     = "certprov"

  validation {
    # Service account IDs are 6-30 characters and the longest suffix is "-build";
    # Cloud Run's deterministic URL puts service name and project number in one
    # 63-character DNS label.
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-20 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Labels put on every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Protect the Firestore database and the CAS certificate authority from `terraform destroy`. Set false only for throw-away deployments."
  type        = bool
  default     = true
}

# --- Firestore -----------------------------------------------------------------

variable "firestore_database" {
  description = "Firestore database ID (FIRESTORE_DATABASE). A named database keeps the adapter apart from anything already in the project's (default) database."
  type        = string
  default     = "certprov"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "firestore_location" {
  description = "Firestore location (a region such as us-central1 or a multi-region such as nam5). Null means var.region. Cannot be changed after creation."
  type        = string
  default     = null
}

variable "firestore_collection" {
  description = "Collection of the progress documents (FIRESTORE_COLLECTION)."
  type        = string
  default     = "certprovProcesses"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,99}$", var.firestore_collection)) && !startswith(var.firestore_collection, "__")
    error_message = "firestore_collection must be a top-level collection ID: letters, digits, _ and -, starting with a letter."
  }
}

variable "firestore_point_in_time_recovery" {
  description = "Turn on Firestore point-in-time recovery (7 days of document versions that can be read or restored; billed as storage) for the progress database."
  type        = bool
  default     = false
}

variable "record_ttl" {
  description = "How long finished progress documents are kept before Firestore's TTL policy deletes them (RECORD_TTL, a Go duration)."
  type        = string
  default     = "720h"

  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(h|m|s|ms))+$", var.record_ttl))
    error_message = "record_ttl must be a Go duration such as 720h or 24h30m."
  }
}

# --- Pub/Sub: notifications from the Certificate Provisioning API -------------

variable "publisher_members" {
  description = "IAM members allowed to publish to the notification topic, e.g. [\"serviceAccount:...\"]: the Google identity that the Chrome Certificate Provisioning API publishes as, if the Admin console shows one when you name the topic. Empty on the first apply (the topic must exist before the Admin console step); see the README's two-pass setup."
  type        = list(string)
  default     = []

  # A typed member (TYPE:ID) is never allUsers or allAuthenticatedUsers, which
  # would let anyone start enrollments.
  validation {
    condition = alltrue([
      for m in var.publisher_members :
      can(regex("^(serviceAccount|user|group|domain|principal|principalSet):.+$", m))
    ])
    error_message = "publisher_members must be IAM members such as serviceAccount:NAME@DOMAIN or group:NAME@DOMAIN, never allUsers or allAuthenticatedUsers."
  }
}

variable "claim_retry_backoff" {
  description = "Minimum and maximum backoff between redeliveries of a notification that ClaimProcess failed (a transient error)."
  type = object({
    minimum = string
    maximum = string
  })
  default = {
    minimum = "10s"
    maximum = "600s"
  }

  validation {
    condition = alltrue([
      for d in [var.claim_retry_backoff.minimum, var.claim_retry_backoff.maximum] :
      can(regex("^[0-9]+s$", d)) && tonumber(trimsuffix(d, "s")) <= 600
    ])
    error_message = "claim_retry_backoff values must be whole seconds such as \"10s\", at most \"600s\"."
  }
}

# --- Cloud Tasks -------------------------------------------------------------

variable "tasks_max_attempts" {
  description = "Attempts of one task, and deliveries of one notification, before Cloud Tasks gives up or Pub/Sub dead-letters it (TASKS_MAX_ATTEMPTS: the functions read the same number and turn a transient error on the last attempt into a reported failure, so every process ends)."
  type        = number
  default     = 10

  validation {
    # 5 is Pub/Sub's least max_delivery_attempts; unlimited attempts would let
    # a process wait forever.
    condition     = floor(var.tasks_max_attempts) == var.tasks_max_attempts && var.tasks_max_attempts >= 5 && var.tasks_max_attempts <= 100
    error_message = "tasks_max_attempts must be a whole number from 5 to 100."
  }
}

variable "tasks_retry_backoff" {
  description = "Minimum and maximum backoff between attempts of a failed task."
  type = object({
    minimum = string
    maximum = string
  })
  default = {
    minimum = "2s"
    maximum = "300s"
  }

  validation {
    condition = alltrue([
      for d in [var.tasks_retry_backoff.minimum, var.tasks_retry_backoff.maximum] : can(regex("^[0-9]+(\\.[0-9]+)?s$", d))
    ])
    error_message = "tasks_retry_backoff values must be durations in seconds such as \"2s\"."
  }
}

variable "api_quota_per_minute" {
  description = <<-EOT
    The project's quota of the Certificate Provisioning API, in requests per
    minute across all methods (Cloud console: APIs & Services, Chrome
    Management API, Quotas). It sets the queues' dispatch rates so that,
    together, they stay under it (tasks.tf, README "Rollout under quota"): the
    claim queue admits new enrollments at the pace the quota can finish them,
    and the poll and issue queues, whose work is in flight, get their share
    first. Raise it with the quota.
  EOT
  type        = number
  default     = 2400

  validation {
    condition     = var.api_quota_per_minute >= 60 && var.api_quota_per_minute <= 1000000 && floor(var.api_quota_per_minute) == var.api_quota_per_minute
    error_message = "api_quota_per_minute must be a whole number from 60 to 1000000."
  }
}

variable "ca_issuance_per_second" {
  description = "Issuance rate of each CA connection, by its reference in adapter_config, in certificates per second (Google CAS allows 7 CreateCertificate per second per Enterprise-tier CA). The issue queue dispatches at most the lowest of them. Empty: only the API quota bounds it."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for r in values(var.ca_issuance_per_second) : r > 0 && r <= 500])
    error_message = "ca_issuance_per_second values must be in (0, 500]."
  }
}

variable "queue_rate_limits" {
  description = "Dispatch limits of the poll, issue and claim queues. max_dispatches_per_second left out (the default) is set from api_quota_per_minute and ca_issuance_per_second (tasks.tf); set it only to override that. Every poll is one operations.get, every issue one CA request and one uploadCertificate, every claim task the claim step's four requests."
  type = object({
    poll = optional(object({
      max_dispatches_per_second = optional(number)
      max_concurrent_dispatches = optional(number, 20)
    }), {})
    issue = optional(object({
      max_dispatches_per_second = optional(number)
      max_concurrent_dispatches = optional(number, 5)
    }), {})
    claim = optional(object({
      max_dispatches_per_second = optional(number)
      max_concurrent_dispatches = optional(number, 20)
    }), {})
  })
  default = {}

  validation {
    condition = alltrue([
      for q in [var.queue_rate_limits.poll, var.queue_rate_limits.issue, var.queue_rate_limits.claim] :
      (q.max_dispatches_per_second == null ? true : q.max_dispatches_per_second > 0 && q.max_dispatches_per_second <= 500) &&
      q.max_concurrent_dispatches >= 1 && q.max_concurrent_dispatches <= 5000
    ])
    error_message = "max_dispatches_per_second must be in (0, 500] and max_concurrent_dispatches in [1, 5000]."
  }
}

variable "sweep" {
  description = "The sweep of stranded processes (README, \"When a task is lost\"): a Cloud Scheduler job (cron `schedule` in `time_zone`; \"\" disables the job) asks PollSignature to re-drive unfinished processes whose record has not changed for `after` (SWEEP_AFTER: a Go duration, at least twice the poll schedule's longest gap, which the functions check; \"0\" turns the sweep off in the functions)."
  type = object({
    schedule  = optional(string, "17 * * * *")
    after     = optional(string, "1h")
    time_zone = optional(string, "Etc/UTC")
  })
  default = {}

  validation {
    condition     = var.sweep.schedule == "" || length(split(" ", trimspace(var.sweep.schedule))) == 5
    error_message = "sweep.schedule must be a cron expression of 5 fields, such as \"17 * * * *\", or \"\" to disable the job."
  }
  validation {
    condition     = can(regex("^(0|([0-9]+(\\.[0-9]+)?(h|m|s))+)$", var.sweep.after))
    error_message = "sweep.after must be a Go duration such as 1h or 90m, or \"0\" to turn the sweep off."
  }
}

variable "lease" {
  description = "Step lease and CA deadline (README, environment table): `lease` (LEASE) is how long a step with an external side effect keeps duplicate deliveries away while its call is in flight (a call that fails frees it at once): at least 1m and shorter than sweep.after; `ca_timeout` (CA_TIMEOUT) bounds each CA call, at most half the lease (null: half the lease). The functions check both at start."
  type = object({
    lease      = optional(string, "2m")
    ca_timeout = optional(string)
  })
  default = {}

  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(h|m|s))+$", var.lease.lease))
    error_message = "lease.lease must be a Go duration such as 2m or 150s."
  }
  validation {
    condition     = var.lease.ca_timeout == null || can(regex("^([0-9]+(\\.[0-9]+)?(h|m|s))+$", coalesce(var.lease.ca_timeout, "x")))
    error_message = "lease.ca_timeout must be a Go duration such as 45s, or null for half the lease."
  }
}

variable "poll_schedule" {
  description = "Poll schedule of PollSignature (POLL_INITIAL_DELAY, POLL_MULTIPLIER, POLL_MAX_DELAY, POLL_JITTER, POLL_FAST_FOR, POLL_LATE_AFTER, POLL_LATE_INTERVAL, POLL_DEADLINE; see the README). An attribute left null keeps the code's default."
  type = object({
    initial_delay = optional(string)
    multiplier    = optional(number)
    max_delay     = optional(string)
    jitter        = optional(number)
    fast_for      = optional(string)
    late_after    = optional(string)
    late_interval = optional(string)
    deadline      = optional(string)
  })
  default = {}

  validation {
    condition = alltrue([
      for d in [var.poll_schedule.initial_delay, var.poll_schedule.max_delay, var.poll_schedule.late_interval, var.poll_schedule.deadline] :
      d == null || can(regex("^([0-9]+(\\.[0-9]+)?(h|m|s|ms))+$", d))
    ])
    error_message = "poll_schedule durations must be Go durations such as 2s, 60s or 24h."
  }
  validation {
    condition     = var.poll_schedule.late_after == null || can(regex("^(0|([0-9]+(\\.[0-9]+)?(h|m|s|ms))+)$", var.poll_schedule.late_after))
    error_message = "poll_schedule.late_after must be a Go duration such as 10m, or \"0\" for one phase to the deadline."
  }
  validation {
    condition     = var.poll_schedule.fast_for == null || can(regex("^(0|([0-9]+(\\.[0-9]+)?(h|m|s|ms))+)$", var.poll_schedule.fast_for))
    error_message = "poll_schedule.fast_for must be a Go duration such as 10s, or \"0\" to poll in the first phase until late_after."
  }
  validation {
    # The same ranges the functions accept (shared/config).
    condition = (
      (var.poll_schedule.multiplier == null || try(var.poll_schedule.multiplier >= 1 && var.poll_schedule.multiplier <= 10, false)) &&
      (var.poll_schedule.jitter == null || try(var.poll_schedule.jitter >= 0 && var.poll_schedule.jitter <= 0.9, false))
    )
    error_message = "poll_schedule.multiplier must be from 1 to 10 and poll_schedule.jitter from 0 to 0.9."
  }
}

variable "poll_deadline_alert_hours" {
  description = "A process that logs a transition more than this many hours after it started counts as past its deadline (alert). Keep it at the poll deadline (POLL_DEADLINE, 24h by default)."
  type        = number
  default     = 24

  validation {
    condition     = var.poll_deadline_alert_hours > 0
    error_message = "poll_deadline_alert_hours must be positive."
  }
}

# --- Functions -----------------------------------------------------------------

variable "go_runtime" {
  description = "Cloud Functions Go runtime. It must be at least the go directive of go.mod (the build does not download another toolchain)."
  type        = string
  default     = "go126"

  validation {
    condition     = can(regex("^go1[0-9]{2}$", var.go_runtime))
    error_message = "go_runtime must be a Go runtime ID such as go126."
  }
}

variable "adapter_config" {
  description = "The adapter config as JSON (CERTPROV_CONFIG): CA connections, profiles and allowed customers, keyed by the references set in the Admin console. It names secrets only by environment variable (see secret_env), never holds them."
  type        = string

  validation {
    condition     = can(jsondecode(var.adapter_config))
    error_message = "adapter_config must be valid JSON (use file(\"adapter-config.json\") or jsonencode({...}))."
  }
}

variable "caller_instance_id" {
  description = "callerInstanceId the adapter claims processes with (CALLER_INSTANCE_ID). Null keeps the code's default, certprov-adapter-PROJECT_ID. Keep it stable: it tells this deployment's processes from other adapters'."
  type        = string
  default     = null
}

variable "directory_subject" {
  description = "Email of a Google Workspace administrator whose directory read access the claim and poll functions use through domain-wide delegation, for the directory variables (DIRECTORY_SUBJECT). Null: the functions' service accounts read the directory with an admin role of their own (see the README, Directory variables)."
  type        = string
  default     = null
}

variable "log_level" {
  description = "Log level of the functions (LOG_LEVEL)."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be one of debug, info, warn, error."
  }
}

variable "function_limits" {
  description = <<-EOT
    Per-function limits; an attribute left out takes the function's default
    (locals.tf, function_defaults). max_instances bounds cost and the load on
    the API and the CA; concurrency is how many requests one instance serves at
    once (max_instance_request_concurrency); cpu is its vCPUs; timeout_seconds
    bounds one invocation. ClaimProcess and IssueCertificate default to one
    vCPU and 512Mi serving 20 requests at once. PollSignature, whose requests
    are one operations.get each (and under quota the claim step's), defaults to
    0.25 vCPU and 256Mi serving one at a time, up to 100 instances (the 5 x 20
    requests at once it served before; the poll and claim queues dispatch 20 +
    20 at most by default): a quarter of the price per billed second, and at the dispatch rates the API quota allows
    fewer requests overlap than would make a shared vCPU cheaper (README
    "Polls at the client's check-ins and a quarter-vCPU poller"). Cloud Run serves more than one request per instance only with
    at least one vCPU, and below 0.5 vCPU gives at most 512Mi. Every queue's
    max_concurrent_dispatches must fit in its function's max_instances x
    concurrency (tasks.tf), or the excess is answered 429 and spends task
    attempts.
  EOT
  type = map(object({
    memory          = optional(string)
    cpu             = optional(string)
    concurrency     = optional(number)
    max_instances   = optional(number)
    timeout_seconds = optional(number)
  }))
  default = {}

  validation {
    condition     = length(setsubtract(keys(var.function_limits), ["claim", "poll", "issue"])) == 0
    error_message = "function_limits keys must be claim, poll or issue."
  }
  validation {
    condition = alltrue([
      for l in values(var.function_limits) :
      (l.max_instances == null || (l.max_instances >= 1 && l.max_instances <= 1000)) &&
      (l.timeout_seconds == null || (l.timeout_seconds >= 1 && l.timeout_seconds <= 3600))
    ])
    error_message = "max_instances must be 1-1000 and timeout_seconds 1-3600."
  }
  validation {
    condition = alltrue([
      for l in values(var.function_limits) :
      l.concurrency == null || (l.concurrency >= 1 && l.concurrency <= 1000 && floor(l.concurrency) == l.concurrency)
    ])
    error_message = "function_limits concurrency must be a whole number from 1 to 1000."
  }
  validation {
    condition = alltrue([
      for l in values(var.function_limits) :
      l.cpu == null || try(tonumber(l.cpu) >= 0.08 && (tonumber(l.cpu) <= 1 || floor(tonumber(l.cpu)) == tonumber(l.cpu)), false)
    ])
    error_message = "function_limits cpu must be a number of vCPUs: from 0.08 to 1, or a whole number above."
  }
  validation {
    condition = alltrue([
      for l in values(var.function_limits) :
      l.memory == null || can(regex("^[1-9][0-9]*(k|M|G|Mi|Gi)?$", l.memory))
    ])
    error_message = "function_limits memory must be a whole number with a unit of k, M, G, Mi or Gi (none: bytes), such as \"256Mi\" or \"1Gi\"."
  }
  validation {
    # The sweep (sweep.tf) runs inside one PollSignature invocation: a batch of
    # up to 200 records, one transaction and one enqueue each.
    condition     = coalesce(try(var.function_limits.poll.timeout_seconds, null), 60) >= 60
    error_message = "function_limits.poll.timeout_seconds must be at least 60: one sweep batch (up to 200 processes) runs in one PollSignature invocation."
  }
}

variable "http_ingress" {
  description = "Ingress of the three functions. ALLOW_INTERNAL_ONLY admits Pub/Sub and Cloud Tasks of this project when they call the run.app URL, which is what this module configures. ALLOW_ALL is the fallback if a VPC Service Controls setup keeps them out; IAM still admits only the invoker identities."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_ALL"], var.http_ingress)
    error_message = "http_ingress must be ALLOW_INTERNAL_ONLY or ALLOW_ALL."
  }
}

# --- CA secrets and connectivity ------------------------------------------------

variable "secret_env" {
  description = <<-EOT
    Secrets the functions read as environment variables, keyed by the variable's
    name: the CA secrets the adapter config refers to by name (e.g. a SCEP
    connection's "challenge": {"type": "static", "secretEnv": "SCEP_CHALLENGE"})
    and RECORD_SEALING_KEY. functions lists
    which functions get the variable (and the accessor grant); by default only
    issue. ClaimProcess builds SCEP connections with a challenge (it puts it into the
    CSR), so such a connection's secrets go to ["claim", "issue"];
    RECORD_SEALING_KEY (32 random bytes, base64; required with a SCEP challenge)
    goes to all three. With create = true (the default) the secret is created
    empty; add its value with `gcloud secrets versions add SECRET_ID
    --data-file=-` before the apply that deploys the functions, so no secret
    value ever enters Terraform state. With create = false the secret must
    already exist in this project.
  EOT
  type = map(object({
    secret_id = string
    version   = optional(string, "latest")
    create    = optional(bool, true)
    functions = optional(list(string), ["issue"])
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.secret_env) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "secret_env keys must be environment variable names in upper case, e.g. SCEP_CHALLENGE."
  }
  validation {
    condition     = alltrue([for s in values(var.secret_env) : can(regex("^[A-Za-z0-9_-]{1,255}$", s.secret_id))])
    error_message = "secret_env secret_id must be a Secret Manager secret ID (letters, digits, _ and -)."
  }
  validation {
    condition     = alltrue([for s in values(var.secret_env) : s.version == "latest" || can(regex("^[1-9][0-9]*$", s.version))])
    error_message = "secret_env version must be \"latest\" or a version number."
  }
  validation {
    condition = alltrue([
      for s in values(var.secret_env) :
      length(s.functions) > 0 && length(setsubtract(s.functions, ["claim", "poll", "issue"])) == 0
    ])
    error_message = "secret_env functions must list one or more of claim, poll, issue."
  }
}

variable "vpc_connector" {
  description = "Optional Serverless VPC Access connector for the functions that call a CA (IssueCertificate, and ClaimProcess for an NDES challenge), to reach a CA on a private network (on-premises over VPN/Interconnect). Null means none."
  type = object({
    network         = string
    ip_cidr_range   = string
    egress_settings = optional(string, "PRIVATE_RANGES_ONLY")
    machine_type    = optional(string, "e2-micro")
    min_instances   = optional(number, 2)
    max_instances   = optional(number, 3)
  })
  default = null

  validation {
    condition     = var.vpc_connector == null || can(cidrnetmask(try(var.vpc_connector.ip_cidr_range, ""))) && endswith(try(var.vpc_connector.ip_cidr_range, ""), "/28")
    error_message = "vpc_connector.ip_cidr_range must be an unused /28 range, e.g. 10.8.0.0/28."
  }
  validation {
    condition     = var.vpc_connector == null || contains(["PRIVATE_RANGES_ONLY", "ALL_TRAFFIC"], try(var.vpc_connector.egress_settings, ""))
    error_message = "vpc_connector.egress_settings must be PRIVATE_RANGES_ONLY or ALL_TRAFFIC."
  }
}

variable "cas" {
  description = "Optional Google CAS pool with a self-signed root CA for users who have no CA. Null means none; point the adapter config's CA connection at the pool this creates (output cas_pool)."
  type = object({
    pool_id       = optional(string, "certprov-pool")
    ca_id         = optional(string, "certprov-root")
    tier          = optional(string, "DEVOPS")
    common_name   = string
    organization  = optional(string)
    lifetime      = optional(string, "315360000s")
    key_algorithm = optional(string, "EC_P256_SHA256")
  })
  default = null

  validation {
    condition     = var.cas == null || contains(["DEVOPS", "ENTERPRISE"], try(var.cas.tier, ""))
    error_message = "cas.tier must be DEVOPS or ENTERPRISE."
  }
}

variable "existing_cas_pools" {
  description = "Full names of existing CAS pools IssueCertificate may request certificates from (projects/P/locations/L/caPools/POOL)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.existing_cas_pools : can(regex("^projects/[^/]+/locations/[^/]+/caPools/[^/]+$", p))])
    error_message = "existing_cas_pools entries must look like projects/P/locations/L/caPools/POOL."
  }
}

variable "cas_certificate_templates" {
  description = "Full names of the CAS certificate templates the profiles name (projects/P/locations/L/certificateTemplates/T); IssueCertificate gets roles/privateca.templateUser on each."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for t in var.cas_certificate_templates : can(regex("^projects/[^/]+/locations/[^/]+/certificateTemplates/[^/]+$", t))])
    error_message = "cas_certificate_templates entries must look like projects/P/locations/L/certificateTemplates/T."
  }
}

# --- Monitoring ------------------------------------------------------------------

variable "notification_channels" {
  description = "Cloud Monitoring notification channel IDs (projects/P/notificationChannels/N) the alert policies notify."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "notification_channels entries must look like projects/P/notificationChannels/ID."
  }
}

variable "log_metric_wait" {
  description = "How long the first apply waits between creating the log-based metrics and the alert policy that needs one (failure_rate): Cloud Monitoring may answer 404 for up to 10 minutes after a metric is created. Runs in parallel with the function builds, and again only when the metric is replaced."
  type        = string
  default     = "600s"

  validation {
    condition     = can(regex("^[0-9]+(s|m)$", var.log_metric_wait))
    error_message = "log_metric_wait must be a duration in seconds or minutes such as \"600s\" or \"10m\"."
  }
}

variable "failure_rate_threshold" {
  description = "Alert when more than this fraction of finished enrollments failed over alert_window."
  type        = number
  default     = 0.2

  validation {
    condition     = var.failure_rate_threshold > 0 && var.failure_rate_threshold < 1
    error_message = "failure_rate_threshold must be between 0 and 1."
  }
}

variable "alert_window" {
  description = "Window the failure rate is computed over."
  type        = string
  default     = "3600s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.alert_window))
    error_message = "alert_window must be whole seconds such as \"3600s\"."
  }
}

variable "scope_firestore_grants" {
  description = "Limit the functions' roles/datastore.user grant with an IAM condition to this deployment's Firestore database. Firestore has no per-collection or per-document IAM, so the database is the narrowest scope; set false only if your organisation forbids conditional grants."
  type        = bool
  default     = true
}

# --- Operators: who may run the certprov CLI against this deployment ----------

variable "operator_members" {
  description = "IAM members who operate the adapter with the certprov CLI. readers may run status, timeline, list and find (roles/datastore.viewer on this database); actors may also run retry and fail (roles/datastore.user on this database, roles/cloudtasks.enqueuer on the poll and issue queues, roles/iam.serviceAccountUser on the tasks service account only). certprov fail also calls setFailure, which the Certificate Provisioning API authorizes through the Google Admin console, not IAM (see the README, \"Who may do what\")."
  type = object({
    readers = optional(list(string), [])
    actors  = optional(list(string), [])
  })
  default = {}

  validation {
    condition = alltrue([
      for m in concat(var.operator_members.readers, var.operator_members.actors) :
      can(regex("^(serviceAccount|user|group|domain|principal|principalSet):.+$", m))
    ])
    error_message = "operator_members.readers and .actors must be IAM members such as user:NAME@DOMAIN or group:NAME@DOMAIN, never allUsers or allAuthenticatedUsers."
  }
}

variable "inventory" {
  description = "The certificate inventory (README, \"Certificate inventory\"): `collection` (INVENTORY_COLLECTION) holds one document per uploaded certificate, deleted by Firestore's TTL policy `grace` (INVENTORY_GRACE, a Go duration) after the certificate's not-after."
  type = object({
    collection = optional(string, "certprovCertificates")
    grace      = optional(string, "2160h")
  })
  default = {}

  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(h|m|s))+$", var.inventory.grace))
    error_message = "inventory.grace must be a Go duration such as 2160h."
  }
  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,99}$", var.inventory.collection)) && !startswith(var.inventory.collection, "__")
    error_message = "inventory.collection must be a collection id (a letter, then letters, digits, _ or -), of its own: not firestore_collection."
  }
}

variable "reconcile" {
  description = "The daily reconciliation (README, \"Revocation\"): when `enabled`, a Cloud Scheduler job (cron `schedule` in `time_zone`) with its own identity posts to IssueCertificate's /reconcile, which revokes the certificates of devices deprovisioned, disabled or deleted and of users suspended or deleted (Directory API), where the CA allows it, and logs (metric and alert) those it can only report. `dry_run` (the default) only reports what it would revoke: turn it off once the dry run's logs look right. Off by default."
  type = object({
    enabled   = optional(bool, false)
    dry_run   = optional(bool, true)
    schedule  = optional(string, "23 4 * * *")
    time_zone = optional(string, "Etc/UTC")
  })
  default = {}

  validation {
    condition     = length(split(" ", trimspace(var.reconcile.schedule))) == 5
    error_message = "reconcile.schedule must be a cron expression of 5 fields, such as \"23 4 * * *\"."
  }
}
