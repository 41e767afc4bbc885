# shellcheck shell=bash
# Step timing shared by image/cross.sh and image/build.sh (sourced, not run):
#   step "name"   ends the running step and starts the next, printing its name
#   timings       ends the running step and prints how long each took
TIMES=()
step_start=0
step_name=
step() {
  step_end
  step_name="$*"
  step_start=$SECONDS
  printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$step_name"
}
step_end() {
  if [[ -n "$step_name" ]]; then
    TIMES+=("$(printf '%5d s  %s' $((SECONDS - step_start)) "$step_name")")
  fi
  step_name=
}
timings() {
  step_end
  printf '\n==> timings\n'
  if ((${#TIMES[@]})); then printf '%s\n' "${TIMES[@]}"; fi
}
