# ClaimProcess (HTTP function): receives a notification pushed by the
# claim subscription (pubsub.tf), gets and claims the process, builds the CSR
# body, calls signData once and enqueues the first poll.
#
# Identity: google_service_account.claim (iam.tf). Invoked only by
# google_service_account.claim_invoker, the push subscription's OIDC identity.

resource "google_cloudfunctions2_function" "claim" {
  project     = var.project_id
  location    = var.region
  name        = local.names.claim
  description = "Certificate provisioning: claim a process and ask the client to sign (Pub/Sub push)."
  labels      = var.labels

  build_config {
    runtime           = var.go_runtime
    entry_point       = local.entry_points.claim
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.bundle.name
      }
    }
  }

  # No event_trigger: the push subscription in pubsub.tf is the trigger, because
  # only a subscription of our own can have a dead-letter topic.
  service_config {
    service_account_email            = google_service_account.claim.email
    min_instance_count               = 0
    max_instance_count               = local.function_limits.claim.max_instances
    available_memory                 = local.function_limits.claim.memory
    available_cpu                    = local.function_limits.claim.cpu
    max_instance_request_concurrency = local.function_limits.claim.concurrency
    timeout_seconds                  = local.function_limits.claim.timeout_seconds
    ingress_settings                 = var.http_ingress
    all_traffic_on_latest_revision   = true
    environment_variables            = local.function_env

    # Secrets as environment variables named as the adapter config refers to
    # them, only those var.secret_env gives this function; the values stay in
    # Secret Manager (secrets.tf).
    dynamic "secret_environment_variables" {
      for_each = local.secret_env_by_function.claim
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret_id
        version    = secret_environment_variables.value.version
      }
    }

    # Optional route to a CA on a private network (vpc.tf): a SCEP
    # connection's NDES challenge is fetched here.
    vpc_connector                 = local.vpc_connector_of.claim
    vpc_connector_egress_settings = local.vpc_egress_of.claim
  }

  lifecycle {
    precondition {
      condition     = length(local.function_size_errors.claim) == 0
      error_message = join("; ", local.function_size_errors.claim)
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_source_reader,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_staging_objects,
    # A revision that cannot read its secrets does not start.
    google_secret_manager_secret_iam_member.accessor,
    google_secret_manager_secret.env,
  ]
}
