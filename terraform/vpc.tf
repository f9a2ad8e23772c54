# Optional Serverless VPC Access connector, for a CA that only a private
# network reaches (NDES or EST on premises over VPN or Interconnect). Only
# IssueCertificate uses it; with egress PRIVATE_RANGES_ONLY (the default) only
# traffic to private addresses goes through it.

resource "google_vpc_access_connector" "ca" {
  count = var.vpc_connector == null ? 0 : 1

  project       = var.project_id
  region        = var.region
  name          = "${substr(var.name_prefix, 0, 18)}-ca" # at most 25 characters
  network       = var.vpc_connector.network
  ip_cidr_range = var.vpc_connector.ip_cidr_range
  machine_type  = var.vpc_connector.machine_type
  min_instances = var.vpc_connector.min_instances
  max_instances = var.vpc_connector.max_instances

  depends_on = [google_project_service.enabled]
}

locals {
  # The functions that call a CA (shared/pipeline: claim.go fetches the SCEP
  # challenge, issue.go requests the certificate). .ci/tofu.sh checks the plan:
  # with vpc_connector set, claim and issue have it.
  ca_functions = ["claim", "issue"]
  vpc_connector_of = {
    for fn in keys(local.names) : fn => contains(local.ca_functions, fn) ? one(google_vpc_access_connector.ca[*].id) : null
  }
  vpc_egress_of = {
    for fn in keys(local.names) : fn => contains(local.ca_functions, fn) && var.vpc_connector != null ? var.vpc_connector.egress_settings : null
  }
}
