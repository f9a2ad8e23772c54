#!/usr/bin/env bash
# Offline checks of terraform/ with OpenTofu, for CI (`bash .ci/tofu.sh`):
#   1. tofu fmt -check -recursive terraform/
#   2. tofu init + tofu validate against the real hashicorp/google schema
#      (../shared/terraform/google-provider-schema.json, or
#      $CERTPROV_PROVIDER_SCHEMA), served by the schema-only provider
#      .ci/tofu/provider through a filesystem_mirror;
#   3. a copy of terraform/ with an unknown argument injected must fail
#      validate, naming the argument (proves step 2 can fail);
#   4. a dry `tofu plan` (the provider plans creates with unknown computed
#      values) with terraform.tfvars.example and with .ci/tofu/all-options.tfvars
#      must succeed, grant nothing to allUsers/allAuthenticatedUsers and keep
#      min_instance_count = 0; bad variable values must be refused;
#      and the plans must hold what issue 10 found missing (plan_checks): the
#      VPC connector on every CA-calling function, a wait before any alert on a
#      log-based metric, the CAS custom role's exact permissions, queue
#      concurrency within the functions' capacity, the sweep's deadline within
#      PollSignature's timeout (the reconciliation's within IssueCertificate's), Firestore exemptions, cleanup policies;
#   5. the deployer's roles, derived from the planned resource types
#      (.ci/tofu/deployer-roles.json), must all be in the README;
#   6. the bundle that terraform would zip (file list and generated root file,
#      evaluated by `tofu console`) must be what functions/bundle's test builds;
#   7. the three functions, built as the buildpack builds them, must start with
#      terraform.tfvars.example's adapter_config and secret_env as tofu
#      evaluates them (functions/bundle TestExampleDeploymentStarts).
# With CERTPROV_TERRAFORM_OUT set, the evaluations of 6 and 7 are copied there
# (bundle.json, example.json) for .ci/run's test step.
# OpenTofu and the provider are built once and cached (.ci/tofu/build-*.sh).
# Nothing is written into the repository: tofu works on a copy of terraform/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
schema="${CERTPROV_PROVIDER_SCHEMA:-$repo/../shared/terraform/google-provider-schema.json}"
if [[ ! -r "$schema" ]]; then
  echo "tofu.sh: provider schema $schema not readable (set CERTPROV_PROVIDER_SCHEMA)" >&2
  exit 1
fi
schema="$(cd "$(dirname "$schema")" && pwd)/$(basename "$schema")"

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "build or reuse OpenTofu and the schema-only provider"
tofu="$(bash "$repo/.ci/tofu/build-tofu.sh")"
mirror="$(bash "$repo/.ci/tofu/build-provider.sh")"
# Its own module (kept out of the main go.mod), so `go test ./...` at the root
# does not reach it.
(cd "$repo/.ci/tofu/provider" && GOFLAGS=-mod=mod go test -count=1 ./...)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/tofu.tfrc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.opentofu.org/hashicorp/*"]
  }
}
EOF
export TF_CLI_CONFIG_FILE="$work/tofu.tfrc"
export CERTPROV_PROVIDER_SCHEMA="$schema"
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
unset TF_DATA_DIR TF_WORKSPACE

# copy_module DIR: DIR/terraform becomes a copy of terraform/ (without local
# state or provider caches) and DIR/{go.mod,go.sum,functions,shared} links to
# the repository, so path.module/.. resolves as in the repository.
copy_module() {
  mkdir -p "$1"
  (cd "$repo" && tar --exclude=./terraform/.terraform --exclude=./terraform/.build \
    --exclude='./terraform/*.tfstate*' --exclude=./terraform/.terraform.lock.hcl -cf - ./terraform) |
    (cd "$1" && tar -xf -)
  for f in go.mod go.sum functions shared; do
    if [[ -e "$repo/$f" ]]; then ln -s "$repo/$f" "$1/$f"; fi
  done
}

step "tofu fmt -check -recursive terraform/"
"$tofu" fmt -check -recursive -diff -no-color "$repo/terraform"
echo "formatted"

step "tofu init + validate"
copy_module "$work/ok"
(cd "$work/ok/terraform" && "$tofu" init -backend=false -no-color >"$work/init.log" 2>&1) ||
  { cat "$work/init.log" >&2; exit 1; }
(cd "$work/ok/terraform" && "$tofu" validate -no-color)

step "validate must reject an unknown argument"
# Each case: file, the line after which the wrong line goes, the wrong line,
# and what the error must say.
check_rejected() {
  local name="$1" file="$2" anchor="$3" line="$4" want="$5"
  local dir="$work/bad-$name"
  copy_module "$dir"
  cp -r "$work/ok/terraform/.terraform" "$work/ok/terraform/.terraform.lock.hcl" "$dir/terraform/"
  awk -v anchor="$anchor" -v line="$line" '{ print } index($0, anchor) == 1 && !done { print line; done = 1 }' \
    "$repo/terraform/$file" >"$dir/terraform/$file"
  if cmp -s "$repo/terraform/$file" "$dir/terraform/$file"; then
    echo "tofu.sh: case $name: anchor '$anchor' not found in terraform/$file" >&2
    exit 1
  fi
  local out rc=0
  out="$(cd "$dir/terraform" && "$tofu" validate -no-color 2>&1)" || rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "tofu.sh: case $name: validate accepted terraform/$file with '$line'" >&2
    exit 1
  fi
  if ! grep -qF -- "$want" <<<"$out" || ! grep -qF -- "$file" <<<"$out"; then
    echo "tofu.sh: case $name: validate failed, but not with '$want' in $file:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "case $name: rejected as expected: $want ($file)"
}
check_rejected resource-argument tasks.tf 'resource "google_cloud_tasks_queue" "poll" {' \
  '  certprov_no_such_argument = "x"' 'An argument named "certprov_no_such_argument" is not expected here'
check_rejected nested-block-argument function_issue.tf '  service_config {' \
  '    ingress_setting = "ALLOW_ALL"' 'An argument named "ingress_setting" is not expected here'
check_rejected archive-argument bundle.tf 'data "archive_file" "bundle" {' \
  '  source_directory = ".."' 'An argument named "source_directory" is not expected here'

step "dry plan with the example and with every option"
# The schema-only provider plans every resource as a create with unknown
# computed attributes, so `tofu plan` evaluates all expressions, for_each keys
# and variable validations with real values, without a cloud.
plan_ok() {
  local name="$1" varfile="$2"
  if ! (cd "$work/ok/terraform" && "$tofu" plan -input=false -lock=false -no-color \
    -var-file="$varfile" -out="$work/$name.tfplan" >"$work/$name.log" 2>&1); then
    cat "$work/$name.log" >&2
    echo "tofu.sh: plan with $varfile failed" >&2
    exit 1
  fi
  (cd "$work/ok/terraform" && "$tofu" show -json "$work/$name.tfplan") >"$work/$name.json"
  # Nothing may be granted to everyone, and every function scales to zero.
  local bad
  bad="$(jq -r '.planned_values.root_module.resources[]
    | select((.type | endswith("_iam_member")) and ((.values.member // "") | test("^(allUsers|allAuthenticatedUsers)$")))
    | .address' "$work/$name.json")"
  if [[ -n "$bad" ]]; then echo "tofu.sh: $name grants to everyone: $bad" >&2; exit 1; fi
  bad="$(jq -r '.planned_values.root_module.resources[]
    | select(.type | test("_iam_(binding|policy)$")) | .address' "$work/$name.json")"
  if [[ -n "$bad" ]]; then echo "tofu.sh: $name uses authoritative IAM: $bad" >&2; exit 1; fi
  bad="$(jq -r '.planned_values.root_module.resources[]
    | select(.type == "google_cloudfunctions2_function" and .values.service_config[0].min_instance_count != 0)
    | .address' "$work/$name.json")"
  if [[ -n "$bad" ]]; then echo "tofu.sh: $name has functions that do not scale to zero: $bad" >&2; exit 1; fi
  plan_checks "$name"
  echo "plan $name: $(grep -E '^Plan:' "$work/$name.log")"
}

# plan_checks NAME: what a real apply needs and offline validate cannot see.
plan_checks() {
  local name="$1" json="$work/$1.json" bad
  fail() { echo "tofu.sh: plan $name: $*" >&2; exit 1; }

  # Every function that talks to a CA (claim: the NDES challenge; issue: the
  # certificate) has the VPC connector when there is one.
  bad="$(jq -r '
    if any(.resource_changes[]; .type == "google_vpc_access_connector") then
      .resource_changes[]
      | select(.type == "google_cloudfunctions2_function" and (.name == "claim" or .name == "issue"))
      | select(((.change.after.service_config[0].vpc_connector // null) == null)
               and ((.change.after_unknown.service_config[0].vpc_connector // false) != true))
      | .address
    else empty end' "$json")"
  [[ -z "$bad" ]] || fail "vpc_connector is set but these CA-calling functions do not use it: $bad"

  # An alert on a log-based metric created in the same apply gets 404 for up
  # to 10 minutes: such an alert must wait (time_sleep.log_metrics_usable);
  # alerts about single log entries use log-match conditions.
  bad="$(jq -r '
    (.configuration.root_module.resources | map({key: .address, value: (.depends_on // [])}) | from_entries) as $deps
    | .planned_values.root_module.resources[]
    | select(.type == "google_monitoring_alert_policy")
    | select([.values.conditions[].condition_threshold[]? | (.filter, (.denominator_filter // ""))]
             | any(contains("logging.googleapis.com/user/")))
    | select(($deps[.address] // []) | index("time_sleep.log_metrics_usable") | not)
    | .address' "$json")"
  [[ -z "$bad" ]] || fail "alert policies on log-based metrics without the wait: $bad"
  for a in failure_unreported own_claim_refused past_deadline; do
    jq -e --arg a "google_monitoring_alert_policy.$a" '
      .planned_values.root_module.resources[] | select(.address == $a)
      | all(.values.conditions[]; (.condition_matched_log | length) > 0)' "$json" >/dev/null ||
      fail "$a must use a log-match condition"
  done

  # CAS: only the custom role with exactly the connector's permissions, or the
  # template user role on templates.
  bad="$(jq -r '.planned_values.root_module.resources[]
    | select(.type == "google_privateca_ca_pool_iam_member" and ((.values.role // "") | startswith("roles/")))
    | "\(.address) \(.values.role)"' "$json")"
  [[ -z "$bad" ]] || fail "predefined CAS roles on pools: $bad"
  bad="$(jq -r '.planned_values.root_module.resources[]
    | select(.type == "google_project_iam_custom_role" and .name == "cas_issuer")
    | select((.values.permissions | sort) != ["privateca.caPools.get", "privateca.certificates.create", "privateca.certificates.get"])
    | "\(.address) \(.values.permissions)"' "$json")"
  [[ -z "$bad" ]] || fail "CAS custom role permissions: $bad"

  # Queue concurrency within what the function serves at once (the claim
  # queue's target is PollSignature), and the sweep
  # job's deadline within PollSignature's timeout.
  bad="$(jq -r '
    [.planned_values.root_module.resources[]] as $r
    | ($r | map(select(.type == "google_cloudfunctions2_function")) | map({key: .name, value: .values.service_config[0]}) | from_entries) as $fn
    | $r[] | select(.type == "google_cloud_tasks_queue")
    | (if .name == "claim" then "poll" else .name end) as $f
    | select(.values.rate_limits[0].max_concurrent_dispatches > ($fn[$f].max_instance_count * ($fn[$f].max_instance_request_concurrency // 1)))
    | "\(.address): \(.values.rate_limits[0].max_concurrent_dispatches) > \($fn[$f].max_instance_count) x \($fn[$f].max_instance_request_concurrency // 1)"' "$json")"
  [[ -z "$bad" ]] || fail "queue concurrency above function capacity: $bad"
  # Each job's deadline within the timeout of the function it invokes: the
  # sweep PollSignature's, the reconciliation IssueCertificate's.
  bad="$(jq -r '
    [.planned_values.root_module.resources[]] as $r
    | ([$r[] | select(.type == "google_cloudfunctions2_function") | {key: .name, value: .values.service_config[0].timeout_seconds}] | from_entries) as $t
    | {sweep: "poll", reconcile: "issue"} as $target
    | $r[] | select(.type == "google_cloud_scheduler_job")
    | ($target[.name] // "poll") as $fn
    | select((.values.attempt_deadline | rtrimstr("s") | tonumber) > $t[$fn])
    | "\(.address) attempt_deadline \(.values.attempt_deadline) > the \($fn) function timeout \($t[$fn])s"' "$json")"
  [[ -z "$bad" ]] || fail "$bad"

  # Cost and hygiene: large fields unindexed, old images and bundles cleaned up.
  jq -e '[.planned_values.root_module.resources[] | select(.type == "google_firestore_field" and (.values.index_config | length) > 0) | .values.field]
    | contains(["spki", "signData", "csr", "certificatePem", "history"])' "$json" >/dev/null ||
    fail "the progress document's blobs and arrays are not all exempt from indexing"
  jq -e 'any(.planned_values.root_module.resources[]; .type == "google_artifact_registry_repository" and (.values.cleanup_policies | length) > 0)' "$json" >/dev/null ||
    fail "the Artifact Registry repository has no cleanup policy"
  jq -e 'any(.planned_values.root_module.resources[]; .type == "google_storage_bucket" and .name == "source" and (.values.lifecycle_rule | length) > 0)' "$json" >/dev/null ||
    fail "the source bucket has no lifecycle rule"
}
plan_ok example "$repo/terraform/terraform.tfvars.example"
plan_ok all-options "$repo/.ci/tofu/all-options.tfvars"

step "variable validations refuse bad values"
plan_refused() {
  local var="$1" want="$2" out rc=0
  out="$(cd "$work/ok/terraform" && "$tofu" plan -input=false -lock=false -no-color \
    -var-file="$repo/terraform/terraform.tfvars.example" -var "$var" 2>&1)" || rc=$?
  # tofu wraps messages: compare with whitespace runs as single spaces.
  if [[ $rc -eq 0 ]] || ! tr -s ' \n' '  ' <<<"$out" | grep -qF -- "$want"; then
    echo "tofu.sh: plan with $var: exit $rc, want a failure saying '$want':" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "refused $var"
}
plan_refused 'publisher_members=["allUsers"]' "never allUsers or allAuthenticatedUsers"
plan_refused 'tasks_max_attempts=4' "tasks_max_attempts must be a whole number from 5 to 100"
plan_refused 'name_prefix=Bad_Prefix' "name_prefix must be 2-20 lowercase letters"
plan_refused 'adapter_config={"unterminated' "adapter_config must be valid JSON"
plan_refused 'secret_env={scep = {secret_id = "s"}}' "secret_env keys must be environment variable names"
plan_refused 'secret_env={S = {secret_id = "s", functions = ["tasks"]}}' "secret_env functions must list one or more of claim, poll, issue"
plan_refused 'poll_schedule={jitter = 2}' "poll_schedule.multiplier must be from 1 to 10"
plan_refused 'sweep={after = "soon"}' "sweep.after must be a Go duration"
plan_refused 'lease={lease = "soon"}' "lease.lease must be a Go duration"
plan_refused 'lease={ca_timeout = "half"}' "lease.ca_timeout must be a Go duration"
plan_refused 'sweep={schedule = "hourly"}' "sweep.schedule must be a cron expression of 5 fields"
plan_refused 'function_limits={poll = {cpu = "0.5", concurrency = 10}}' "more than 1 needs cpu of at least"
plan_refused 'function_limits={poll = {timeout_seconds = 30}}' "function_limits.poll.timeout_seconds must be at least 60"
plan_refused 'function_limits={poll = {concurrency = 10}}' "function_limits.poll: concurrency 10 needs cpu of at least"
plan_refused 'function_limits={poll = {memory = "1Gi"}}' "function_limits.poll: memory 1Gi needs cpu of at least"
plan_refused 'function_limits={issue = {memory = "512MB"}}' "function_limits memory must be a whole number with a unit of k, M, G, Mi or Gi"
plan_refused 'function_limits={poll = {memory = "600M"}}' "function_limits.poll: memory 600M needs cpu of at least \"0.5\""
plan_refused 'function_limits={claim = {cpu = "1.5"}}' "function_limits cpu must be a number of vCPUs"
plan_refused 'queue_rate_limits={poll = {max_dispatches_per_second = 5, max_concurrent_dispatches = 500}, issue = {max_dispatches_per_second = 2, max_concurrent_dispatches = 5}}' \
  "queue_rate_limits.poll.max_concurrent_dispatches (500) must not exceed function_limits.poll.max_instances x concurrency (100)"
plan_refused 'log_metric_wait=soon' "log_metric_wait must be a duration"
plan_refused 'api_quota_per_minute=10' "api_quota_per_minute must be a whole number from 60 to 1000000"
plan_refused 'queue_rate_limits={claim = {max_dispatches_per_second = 100}}' "admits more enrollments than api_quota_per_minute (2400) can finish"
plan_refused 'queue_rate_limits={claim = {max_concurrent_dispatches = 90}}' "PollSignature runs both queues' tasks"

step "the README lists every role the deployer needs (derived from the planned resource types)"
roles_map="$repo/.ci/tofu/deployer-roles.json"
missing_types="$(jq -rs --slurpfile m "$roles_map" '
  [.[].resource_changes[] | select(.mode == "managed") | .type] | unique[]
  | select(. as $t | $m[0] | has($t) | not)' "$work/example.json" "$work/all-options.json")"
if [[ -n "$missing_types" ]]; then
  echo "tofu.sh: resource types without deployer roles in .ci/tofu/deployer-roles.json:" >&2
  echo "$missing_types" >&2
  exit 1
fi
prereq="$(awk '/^### Prerequisites/ { on = 1; next } on && /^###? / { exit } on' "$repo/README.md")"
missing_roles=""
for role in $(jq -rs --slurpfile m "$roles_map" '
  [.[].resource_changes[] | select(.mode == "managed") | .type] | unique | map($m[0][.][]) | unique[]' \
  "$work/example.json" "$work/all-options.json"); do
  grep -qF -- "\`$role\`" <<<"$prereq" || missing_roles+=" $role"
done
if [[ -n "$missing_roles" ]]; then
  echo "tofu.sh: README.md's Prerequisites lack deployer roles:$missing_roles" >&2
  exit 1
fi
echo "README lists the $(jq -rs --slurpfile m "$roles_map" '[.[].resource_changes[] | select(.mode == "managed") | .type] | unique | map($m[0][.][]) | unique | length' "$work/example.json" "$work/all-options.json") roles of $(jq -rs '[.[].resource_changes[] | select(.mode == "managed") | .type] | unique | length' "$work/example.json" "$work/all-options.json") resource types"

step "bundle terraform would build = bundle functions/bundle builds"
# tofu console needs values for the required variables; any will do, the
# expressions below depend on none of them.
(cd "$work/ok/terraform" && "$tofu" console -no-color \
  -var project_id=offline-check -var 'publisher_members=["group:x@example.com"]' -var 'adapter_config={}' \
  >"$work/bundle.json" <<'EOF'
base64encode(jsonencode({files = sort(local.bundle_files), root_file = local.bundle_spec.root_file, root_content = local.bundle_root_file}))
EOF
)
# console prints a quoted string; base64 keeps HCL's escaping out of the way.
tr -d '"\n' <"$work/bundle.json" | base64 -d >"$work/bundle-terraform.json"
if [[ -z "${CERTPROV_TERRAFORM_OUT:-}" ]]; then # else .ci/run's test step runs it
  (cd "$repo" && CERTPROV_TERRAFORM_BUNDLE="$work/bundle-terraform.json" \
    go test -count=1 -v -run '^TestTerraformRendersSameBundle$' ./functions/bundle)
fi

step "the functions start with terraform.tfvars.example's adapter_config and secrets"
# What terraform gives the functions from the example: CERTPROV_CONFIG and,
# per function, the secret environment variables (values are placeholders).
(cd "$work/ok/terraform" && "$tofu" console -no-color -var-file="$repo/terraform/terraform.tfvars.example" \
  >"$work/example-env.b64" <<'EOF'
base64encode(jsonencode({adapter_config = var.adapter_config, secret_env = local.secret_env_by_function}))
EOF
)
tr -d '"\n' <"$work/example-env.b64" | base64 -d >"$work/example-env.json"
if [[ -z "${CERTPROV_TERRAFORM_OUT:-}" ]]; then # else .ci/run's test step runs it
  (cd "$repo" && CERTPROV_TERRAFORM_EXAMPLE="$work/example-env.json" \
    go test -count=1 -v -run '^TestExampleDeploymentStarts$' ./functions/bundle)
fi

# .ci/run hands both evaluations to the README's test command, where
# CERTPROV_INTEGRATION=require makes their tests fail, not skip, without them.
if [[ -n "${CERTPROV_TERRAFORM_OUT:-}" ]]; then
  mkdir -p "$CERTPROV_TERRAFORM_OUT"
  cp "$work/bundle-terraform.json" "$CERTPROV_TERRAFORM_OUT/bundle.json"
  cp "$work/example-env.json" "$CERTPROV_TERRAFORM_OUT/example.json"
fi

step "done"
