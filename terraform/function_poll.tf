# PollSignature (HTTP function): invoked by the poll queue. Asks the API for
# the signData operation; while it is not done, enqueues the next poll (with
# backoff, until the deadline); once it is, verifies the signature, assembles
# the CSR and enqueues the issue task.
#
# Identity: google_service_account.poll (iam.tf). Invoked only by
# google_service_account.tasks, the OIDC identity of the queues' tasks.
#
# Its own URL (POLL_SIGNATURE_URL, for the polls it enqueues) comes from
# local.run_urls, not from this resource: a resource cannot refer to itself.

resource "google_cloudfunctions2_function" "poll" {
  project     = var.project_id
  location    = var.region
  name        = local.names.poll
  description = "Certificate provisioning: poll the signData operation and assemble the CSR (Cloud Tasks)."
  labels      = var.labels

  build_config {
    runtime           = var.go_runtime
    entry_point       = local.entry_points.poll
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.bundle.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.poll.email
    min_instance_count               = 0
    max_instance_count               = local.function_limits.poll.max_instances
    available_memory                 = local.function_limits.poll.memory
    available_cpu                    = local.function_limits.poll.cpu
    max_instance_request_concurrency = local.function_limits.poll.concurrency
    timeout_seconds                  = local.function_limits.poll.timeout_seconds
    ingress_settings                 = var.http_ingress
    all_traffic_on_latest_revision   = true
    environment_variables            = local.function_env

    # Secrets as environment variables named as the adapter config refers to
    # them, only those var.secret_env gives this function; the values stay in
    # Secret Manager (secrets.tf).
    dynamic "secret_environment_variables" {
      for_each = local.secret_env_by_function.poll
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret_id
        version    = secret_environment_variables.value.version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.function_size_errors.poll) == 0
      error_message = join("; ", local.function_size_errors.poll)
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
