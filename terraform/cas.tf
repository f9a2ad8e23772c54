# Optional Google CAS pool with a self-signed root CA, for users who have no CA
# of their own: point a CA connection of the adapter config at the pool
# (output cas_pool). IssueCertificate may request certificates from it, and
# from any pool listed in var.existing_cas_pools, and do nothing else there.

resource "google_privateca_ca_pool" "this" {
  count = var.cas == null ? 0 : 1

  project  = var.project_id
  location = var.region
  name     = var.cas.pool_id
  tier     = var.cas.tier
  labels   = var.labels

  publishing_options {
    publish_ca_cert = true
    publish_crl     = var.cas.tier == "ENTERPRISE"
  }

  issuance_policy {
    # The adapter sends a CSR built from the process (csr_based); nothing is
    # issued from a config alone.
    allowed_issuance_modes {
      allow_csr_based_issuance    = true
      allow_config_based_issuance = false
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_privateca_certificate_authority" "root" {
  count = var.cas == null ? 0 : 1

  project                  = var.project_id
  location                 = var.region
  pool                     = google_privateca_ca_pool.this[0].name
  certificate_authority_id = var.cas.ca_id
  type                     = "SELF_SIGNED"
  lifetime                 = var.cas.lifetime
  labels                   = var.labels

  deletion_protection = var.deletion_protection
  # Without protection (throw-away deployments) destroy really deletes.
  skip_grace_period                      = !var.deletion_protection
  ignore_active_certificates_on_deletion = !var.deletion_protection

  key_spec {
    algorithm = var.cas.key_algorithm
  }

  config {
    subject_config {
      subject {
        common_name  = var.cas.common_name
        organization = var.cas.organization
      }
    }
    x509_config {
      ca_options {
        is_ca = true
      }
      key_usage {
        base_key_usage {
          cert_sign = true
          crl_sign  = true
        }
        extended_key_usage {}
      }
    }
  }
}

resource "google_privateca_ca_pool_iam_member" "issue_requester" {
  for_each = merge(
    { for p in var.existing_cas_pools : p => p },
    var.cas == null ? {} : { created = google_privateca_ca_pool.this[0].id },
  )

  ca_pool = each.value
  # certificateManager: certificates.create plus the reads the connector makes:
  # caPools.get (FetchCaCerts, to check the chain of what it uploads) and
  # certificates.get (a retry after the request_id window fetches the
  # certificate it already has). certificateRequester alone lacks both.
  role   = "roles/privateca.certificateManager"
  member = google_service_account.issue.member
}

# A certificate template named by a profile (templateName) needs the use grant.
resource "google_privateca_certificate_template_iam_member" "issue_template_user" {
  for_each = toset(var.cas_certificate_templates)

  certificate_template = each.value
  role                 = "roles/privateca.templateUser"
  member               = google_service_account.issue.member
}
