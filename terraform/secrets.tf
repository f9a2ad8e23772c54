# Secrets (CA credentials such as the SCEP challenge, the NDES admin password,
# an EST password or client key; and RECORD_SEALING_KEY) live in Secret
# Manager. Terraform creates the empty secrets and grants each one to exactly
# the functions var.secret_env lists for it; the values are added out of band
# (`gcloud secrets versions add`), so they never appear in Terraform state,
# plans or logs. A function sees each of its secrets as the environment
# variable the adapter config names (function_*.tf).

locals {
  # Per function, the secret environment variables it gets.
  secret_env_by_function = {
    for fn in keys(local.names) : fn => {
      for env, s in var.secret_env : env => s if contains(s.functions, fn)
    }
  }

  # One accessor grant per (secret, function) pair.
  secret_grants = merge([
    for env, s in var.secret_env : {
      for fn in s.functions : "${env}/${fn}" => { env = env, fn = fn }
    }
  ]...)
}

resource "google_secret_manager_secret" "env" {
  for_each = { for env, s in var.secret_env : env => s if s.create }

  project   = var.project_id
  secret_id = each.value.secret_id
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secret_grants

  project   = var.project_id
  secret_id = var.secret_env[each.value.env].create ? google_secret_manager_secret.env[each.value.env].secret_id : var.secret_env[each.value.env].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.function_members[each.value.fn]
}
