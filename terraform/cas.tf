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

# What the cas connector (shared/ca/cas) calls, and nothing else:
# FetchCaCerts (privateca.caPools.get), CreateCertificate
# (privateca.certificates.create) and, after a retry outside the request_id
# window, GetCertificate (privateca.certificates.get). The predefined roles are
# broader (certificateManager) or too narrow (certificateRequester lacks both
# reads). A project-level custom role can only be granted in its own project,
# so there is one per project that holds a pool IssueCertificate may use.
locals {
  cas_issuer_permissions = [
    "privateca.caPools.get",
    "privateca.certificates.create",
    "privateca.certificates.get",
  ]
  cas_pools = merge(
    { for p in var.existing_cas_pools : p => p },
    var.cas == null ? {} : { created = google_privateca_ca_pool.this[0].id },
  )
  # The project of every pool: this one for the created pool, the one in the
  # name for the existing ones.
  cas_pool_projects = toset(concat(
    [for p in var.existing_cas_pools : split("/", p)[1]],
    var.cas == null ? [] : [var.project_id],
  ))
  cas_issuer_role_id = "${replace(var.name_prefix, "-", "_")}_casIssuer"
}

resource "google_project_iam_custom_role" "cas_issuer" {
  for_each = local.cas_pool_projects

  project     = each.value
  role_id     = local.cas_issuer_role_id
  title       = "certprov CAS issuer (${var.name_prefix})"
  description = "What the certprov IssueCertificate function needs on a CA pool: fetch its CA certificates, request and read certificates."
  permissions = local.cas_issuer_permissions

  depends_on = [google_project_service.enabled]
}

resource "google_privateca_ca_pool_iam_member" "issue_requester" {
  for_each = local.cas_pools

  ca_pool = each.value
  role    = google_project_iam_custom_role.cas_issuer[each.key == "created" ? var.project_id : split("/", each.value)[1]].name
  member  = google_service_account.issue.member
}

# A certificate template named by a profile (templateName) needs the use grant.
resource "google_privateca_certificate_template_iam_member" "issue_template_user" {
  for_each = toset(var.cas_certificate_templates)

  certificate_template = each.value
  role                 = "roles/privateca.templateUser"
  member               = google_service_account.issue.member
}
