# Every optional part of terraform/ switched on, for the dry plan in
# .ci/tofu.sh (terraform.tfvars.example covers the defaults).
project_id          = "certprov-ci-check"
region              = "europe-west1"
name_prefix         = "cp-all"
labels              = { env = "ci" }
deletion_protection = false

publisher_members = ["serviceAccount:publisher@example.iam.gserviceaccount.com", "group:pki-admins@example.com"]
operator_members  = { readers = ["group:helpdesk@example.com", "group:pki-admins@example.com"], actors = ["group:pki-admins@example.com"] }
adapter_config    = "{\"allowedCustomers\":[\"C0abc1234\"],\"caConnections\":{},\"profiles\":{}}"

firestore_database     = "(default)"
firestore_location     = "eur3"
firestore_collection   = "processes"
record_ttl             = "24h"
scope_firestore_grants = false

claim_retry_backoff = { minimum = "5s", maximum = "300s" }

tasks_max_attempts  = 20
tasks_retry_backoff = { minimum = "1s", maximum = "60s" }
api_quota_per_minute   = 6000
ca_issuance_per_second = { dev = 7 }
queue_rate_limits = {
  poll  = { max_dispatches_per_second = 10, max_concurrent_dispatches = 50 }
  issue = { max_dispatches_per_second = 1, max_concurrent_dispatches = 1 }
  claim = { max_concurrent_dispatches = 20 }
}
poll_schedule             = { initial_delay = "1s", multiplier = 2, max_delay = "30s", jitter = 0.1, late_after = "15m", late_interval = "10m", deadline = "12h" }
poll_deadline_alert_hours = 12

go_runtime         = "go126"
caller_instance_id = "certprov-ci"
directory_subject  = "certprov-reader@example.com"
log_level          = "debug"
http_ingress       = "ALLOW_ALL"
function_limits = {
  issue = { memory = "512Mi", cpu = "1", max_instances = 3, timeout_seconds = 120 }
  poll  = { memory = "512M" } # 488 MiB: within the 512 MiB of a quarter vCPU
}

secret_env = {
  SCEP_CHALLENGE     = { secret_id = "cp-scep-challenge", functions = ["claim", "issue"] }
  RECORD_SEALING_KEY = { secret_id = "cp-record-sealing-key", functions = ["claim", "poll", "issue"] }
  EST_PASSWORD       = { secret_id = "existing-est-password", create = false, version = "3" }
}
vpc_connector = {
  network       = "default"
  ip_cidr_range = "10.8.0.0/28"
}
cas = {
  common_name  = "CI Root"
  organization = "Example"
  tier         = "ENTERPRISE"
}
existing_cas_pools = ["projects/other-pki/locations/europe-west1/caPools/devices"]
cas_certificate_templates = ["projects/other-pki/locations/europe-west1/certificateTemplates/chromeos"]

notification_channels  = ["projects/certprov-ci-check/notificationChannels/123"]
failure_rate_threshold = 0.5
alert_window           = "1800s"

inventory = { collection = "certificates", grace = "720h" }
reconcile = { enabled = true, dry_run = false, schedule = "5 3 * * *" }
