# Pub/Sub: the Certificate Provisioning API publishes one message per process
# to the notification topic; a push subscription delivers it to ClaimProcess.
#
# Why a push subscription of our own rather than the function's event_trigger:
# an event_trigger makes Eventarc create and own the subscription, and neither
# google_cloudfunctions2_function (its event_trigger block has retry_policy but
# no dead-letter setting) nor any other resource can configure that
# subscription's dead-letter policy or backoff. Our subscription has both:
# bounded redelivery with exponential backoff, then the dead-letter topic. The
# push body is the standard wrapped Pub/Sub message, with the top-level
# deliveryAttempt that the dead-letter policy adds; ClaimProcess is an HTTP
# function that decodes it as such (a CloudEvent function would lose the
# attempt, and the last delivery could not report the failure).

resource "google_pubsub_topic" "notifications" {
  project = var.project_id
  name    = "${var.name_prefix}-notifications"
  labels  = var.labels

  # Long enough to survive a day-long outage of the functions.
  message_retention_duration = "86400s"

  depends_on = [google_project_service.enabled]
}

# Who may publish notifications: the identity the administrator names (the one
# the Certificate Provisioning API publishes as). Nobody else.
resource "google_pubsub_topic_iam_member" "notification_publishers" {
  for_each = toset(var.publisher_members)

  project = var.project_id
  topic   = google_pubsub_topic.notifications.name
  role    = "roles/pubsub.publisher"
  member  = each.value
}

# Notifications that ClaimProcess failed on tasks_max_attempts times.
# Nothing consumes it automatically: the dead-letter alert (monitoring.tf)
# tells a person to look, and the pull subscription keeps the messages for
# inspection and replay.
resource "google_pubsub_topic" "dead_letter" {
  project = var.project_id
  name    = "${var.name_prefix}-notifications-dead-letter"
  labels  = var.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.name_prefix}-notifications-dead-letter"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = var.labels

  message_retention_duration = "604800s" # 7 days, the maximum
  ack_deadline_seconds       = 60
  expiration_policy {
    ttl = "" # never expires
  }
}

resource "google_pubsub_subscription" "claim" {
  project = var.project_id
  name    = "${var.name_prefix}-claim"
  topic   = google_pubsub_topic.notifications.id
  labels  = var.labels

  # Longer than one ClaimProcess invocation may take, so a slow success is not
  # redelivered while it runs.
  ack_deadline_seconds       = min(600, local.function_limits.claim.timeout_seconds + 30)
  message_retention_duration = "86400s"
  expiration_policy {
    ttl = "" # never expires, even without traffic
  }

  push_config {
    # The function's own URL: an HTTP function needs no topic in the path.
    push_endpoint = google_cloudfunctions2_function.claim.service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.claim_invoker.email
      audience              = google_cloudfunctions2_function.claim.service_config[0].uri
    }
  }

  # A transient error (ClaimProcess returns non-2xx) is redelivered with
  # exponential backoff; after tasks_max_attempts deliveries (the same bound as
  # the queues', which ClaimProcess reads as TASKS_MAX_ATTEMPTS) the message goes to
  # the dead-letter topic instead of retrying for the whole retention period.
  retry_policy {
    minimum_backoff = var.claim_retry_backoff.minimum
    maximum_backoff = var.claim_retry_backoff.maximum
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.tasks_max_attempts
  }

  # Pushing needs the push identity's invoker grant and Pub/Sub's right to mint
  # its token; forwarding dead letters needs the publisher grant (iam.tf).
  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invokes_claim,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}
