# Versions of Terraform/OpenTofu and of the providers this module is written
# for. .ci/tofu.sh validates it offline against the schema of exactly
# hashicorp/google 7.45.0 (see ../shared/terraform/README.md of the team).

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.45"
    }
    # Builds the source bundle of the functions (bundle.tf).
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    # Waits until new log-based metrics can be used in alert policies
    # (monitoring.tf).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}
