# IssueCertificate (HTTP function): invoked by the issue queue. Sends the CSR to
# the CA connection the process names (CAS, SCEP, EST, ...), stores the
# certificate and uploads it, or reports the failure with setFailure.
#
# Identity: google_service_account.issue (iam.tf). Invoked only by
# google_service_account.tasks. The only function with CAS rights and by
# default the only one with CA secrets; it has the VPC connector, if any.

resource "google_cloudfunctions2_function" "issue" {
  project     = var.project_id
  location    = var.region
  name        = local.names.issue
  description = "Certificate provisioning: get the certificate from the CA and upload it (Cloud Tasks)."
  labels      = var.labels

  build_config {
    runtime           = var.go_runtime
    entry_point       = local.entry_points.issue
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
    service_account_email            = google_service_account.issue.email
    min_instance_count               = 0
    max_instance_count               = local.function_limits.issue.max_instances
    available_memory                 = local.function_limits.issue.memory
    available_cpu                    = local.function_limits.issue.cpu
    max_instance_request_concurrency = local.function_limits.issue.concurrency
    timeout_seconds                  = local.function_limits.issue.timeout_seconds
    ingress_settings                 = var.http_ingress
    all_traffic_on_latest_revision   = true
    environment_variables            = local.function_env

    # Secrets as environment variables named as the adapter config refers to
    # them, only those var.secret_env gives this function; the values stay in
    # Secret Manager (secrets.tf).
    dynamic "secret_environment_variables" {
      for_each = local.secret_env_by_function.issue
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret_id
        version    = secret_environment_variables.value.version
      }
    }

    # Optional route to a CA on a private network (vpc.tf).
    vpc_connector                 = local.vpc_connector_of.issue
    vpc_connector_egress_settings = local.vpc_egress_of.issue
  }

  lifecycle {
    precondition {
      condition     = length(local.function_size_errors.issue) == 0
      error_message = join("; ", local.function_size_errors.issue)
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
