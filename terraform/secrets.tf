# CA secrets (SCEP challenge, NDES admin password, EST password or client key)
# live in Secret Manager. Terraform creates the empty secrets and grants
# IssueCertificate access to each one; the values are added out of band
# (`gcloud secrets versions add`), so they never appear in Terraform state,
# plans or logs. IssueCertificate sees each as the environment variable the
# adapter config names (function_issue.tf).

resource "google_secret_manager_secret" "ca" {
  for_each = { for env, s in var.ca_secrets : env => s if s.create }

  project   = var.project_id
  secret_id = each.value.secret_id
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# Per-secret access for IssueCertificate only; claim and poll never see a CA
# secret.
resource "google_secret_manager_secret_iam_member" "issue_accessor" {
  for_each = var.ca_secrets

  project   = var.project_id
  secret_id = each.value.create ? google_secret_manager_secret.ca[each.key].secret_id : each.value.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.issue.member
}
