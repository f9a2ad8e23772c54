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
#   5. the bundle that terraform would zip (file list and generated root file,
#      evaluated by `tofu console`) must be what functions/bundle's test builds.
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
  echo "plan $name: $(grep -E '^Plan:' "$work/$name.log")"
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
plan_refused 'sweep={schedule = "hourly"}' "sweep.schedule must be a cron expression of 5 fields"

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
(cd "$repo" && CERTPROV_TERRAFORM_BUNDLE="$work/bundle-terraform.json" \
  go test -count=1 -v -run '^TestTerraformRendersSameBundle$' ./functions/bundle)

step "done"
