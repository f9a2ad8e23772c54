# Firestore: one progress document per process (shared/progress), in a Native
# mode database. The code does single-document gets and transactions, and one
# query: the sweep's (sweep.tf), which needs the composite index below.

resource "google_firestore_database" "progress" {
  project     = var.project_id
  name        = var.firestore_database
  location_id = coalesce(var.firestore_location, var.region)
  type        = "FIRESTORE_NATIVE"

  # Point-in-time recovery keeps 7 days of versions to read or restore from
  # (billed as storage); off by default.
  point_in_time_recovery_enablement = var.firestore_point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"

  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # ABANDON leaves the database (and every process's history) in place on
  # destroy; DELETE only when protection is off.
  deletion_policy = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.enabled]
}

# TTL policy: Firestore deletes a finished progress document once its expireAt
# (set to finish time + RECORD_TTL, only on finished documents) has passed.
# The empty index_config exempts expireAt from single-field indexing: nothing
# queries it, and an indexed, monotonically increasing timestamp hotspots.
resource "google_firestore_field" "expire_at" {
  project    = var.project_id
  database   = google_firestore_database.progress.name
  collection = var.firestore_collection
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

# The certificate inventory (shared/inventory): one document per uploaded
# certificate, deleted by Firestore once its expireAt (the certificate's
# not-after + INVENTORY_GRACE) has passed, independently of the progress
# documents. expireAt is exempt from indexing as above; the inventory's
# queries (certprov certs, the reconciliation) use single-field indexes only.
resource "google_firestore_field" "inventory_expire_at" {
  lifecycle {
    precondition {
      condition     = var.inventory.collection != var.firestore_collection
      error_message = "inventory.collection must differ from firestore_collection: the inventory has a TTL of its own."
    }
  }

  project    = var.project_id
  database   = google_firestore_database.progress.name
  collection = var.inventory.collection
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

# Large and never queried fields of the progress document (shared/progress
# Record): blobs, arrays and long texts. Firestore indexes every field by
# default, which costs index storage and write latency and, for blobs over
# 1500 bytes, makes the index entry useless. The empty index_config exempts
# each from single-field indexing; functions/bundle's
# TestFirestoreExemptions checks that every blob and array field is listed.
locals {
  firestore_unindexed_fields = [
    "spki",
    "signData",
    "csr",
    "certificatePem",
    "history",
    "lastError",
    "failureMessage",
  ]
}

resource "google_firestore_field" "unindexed" {
  for_each = toset(local.firestore_unindexed_fields)

  project    = var.project_id
  database   = google_firestore_database.progress.name
  collection = var.firestore_collection
  field      = each.value

  index_config {}
}

# The sweep's query (store/firestore Stale): state IN [unfinished states] AND
# updatedAt < T ORDER BY updatedAt.
resource "google_firestore_index" "stale" {
  project     = var.project_id
  database    = google_firestore_database.progress.name
  collection  = var.firestore_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "state"
    order      = "ASCENDING"
  }
  fields {
    field_path = "updatedAt"
    order      = "ASCENDING"
  }
}

# The operator CLI's queries (store/firestore List and ByProcessID, for
# certprov list, status and find): an equality filter on one of these fields,
# optionally createdAt >= T, ORDER BY createdAt DESC. Firestore merges these
# indexes when a query combines several equality filters. deviceId,
# deviceSerial and userEmail are the subject of a process (certprov find
# --device, --serial, --user).
resource "google_firestore_index" "operator" {
  for_each = toset(["state", "customer", "profileRef", "processId", "deviceId", "deviceSerial", "userEmail"])

  project     = var.project_id
  database    = google_firestore_database.progress.name
  collection  = var.firestore_collection
  query_scope = "COLLECTION"

  fields {
    field_path = each.value
    order      = "ASCENDING"
  }
  fields {
    field_path = "createdAt"
    order      = "DESCENDING"
  }
}
