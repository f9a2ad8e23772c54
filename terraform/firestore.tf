# Firestore: one progress document per process (shared/progress), in a Native
# mode database. The code does single-document gets and transactions, and one
# query: the sweep's (sweep.tf), which needs the composite index below.

resource "google_firestore_database" "progress" {
  project     = var.project_id
  name        = var.firestore_database
  location_id = coalesce(var.firestore_location, var.region)
  type        = "FIRESTORE_NATIVE"

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
