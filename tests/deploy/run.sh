#!/usr/bin/env bash
# Container + Kubernetes deploy test (issue 6). Builds the Dockerfile with podman from a
# locally debootstrapped Debian base (no registry needed), runs the image read-only with a
# model mounted read-only, scores an image over HTTP, checks the uid, the HEALTHCHECK and a
# clean drain on `podman stop`, then validates every manifest in deploy/kubernetes offline
# against the Kubernetes API models (python3-kubernetes), with negative tests.
#
# Usage: tests/deploy/run.sh            (as root, or with sudo available)
# Env:   UFLOW_CI_CACHE       cache dir (default /var/cache/uflow-ci): base rootfs tarball
#        UFLOW_DEBIAN_MIRROR  Debian mirror (default: the machine's apt sources)
#        DEPLOY_SKIP_CONTAINER=1  only validate the manifests
#        DEPLOY_KEEP=1            keep the test container and temp dir
# Prints one "PASS|FAIL|SKIP <check>" line per check and a summary; exits non-zero on failure.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/deploy
CACHE=${UFLOW_CI_CACHE:-/var/cache/uflow-ci}
BASE=localhost/debian:bookworm
IMAGE=localhost/uflowd:test
NAME=uflowd-deploy-test-$$
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
t0=$(date +%s)
pass=0; fail=0; skip=0; failed=()
ok()   { echo "PASS $1${2:+ — $2}"; pass=$((pass + 1)); }
bad()  { echo "FAIL $1${2:+ — $2}"; fail=$((fail + 1)); failed+=("$1"); }
skp()  { echo "SKIP $1${2:+ — $2}"; skip=$((skip + 1)); }
note() { echo "  $*"; }
now_ms() { date +%s%3N; }

WORK=$(mktemp -d /tmp/uflow-deploy.XXXXXX)
cleanup() {
  if [ -z "${DEPLOY_KEEP:-}" ]; then
    podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

summary() {
  echo "deploy: $pass passed, $fail failed, $skip skipped in $(( $(date +%s) - t0 )) s${failed[*]:+ (failed: ${failed[*]})}"
  [ "$fail" -eq 0 ]
  exit $?
}

# --- 0. tools ----------------------------------------------------------------------------
need=()
for p in podman runc debootstrap python3-kubernetes python3-yaml curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  rc=$?
  [ $rc -eq 0 ] && ok tools "installed ${need[*]}" || { bad tools "apt-get install ${need[*]} failed"; summary; }
else
  ok tools "podman runc debootstrap python3-kubernetes present"
fi

# --- 1. container ------------------------------------------------------------------------
container_tests() {
  $SUDO mkdir -p "$CACHE"
  # The stock containers.conf (crun, huge default ulimits) does not work on these machines.
  export CONTAINERS_CONF=$WORK/containers.conf
  cat > "$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
  if [ "$(id -u)" -ne 0 ]; then
    skp container "podman here needs root (run as root or under sudo)"; return
  fi

  # 1a. base image: debootstrap once, keep the rootfs tarball, import it when missing.
  local tarball=$CACHE/debian-bookworm-minbase.tar s=$(date +%s)
  if podman image exists "$BASE"; then
    ok base-image "$BASE cached"
  else
    if [ ! -s "$tarball" ]; then
      local mirror rootfs=$WORK/rootfs
      mirror=$(python3 "$HERE/apt_sources.py" mirror) || { bad base-image "no Debian mirror in apt sources"; return; }
      note "debootstrap --variant=minbase bookworm $rootfs $mirror"
      if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$WORK/debootstrap.log" 2>&1; then
        tail -20 "$WORK/debootstrap.log"; bad base-image "debootstrap failed"; return
      fi
      # apt inside the image uses the same mirror (plus -updates and -security, as here).
      python3 "$HERE/apt_sources.py" list > "$rootfs/etc/apt/sources.list"
      # slim it like debian:bookworm-slim: no docs (but the copyright files), man pages or
      # translations, now and in later apt installs
      printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
        'path-exclude /usr/share/lintian/*' > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
      find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
      find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
      find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
      rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian/* \
             "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
             "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
      tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$rootfs"
    fi
    if podman import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE" > "$WORK/import.log" 2>&1; then
      ok base-image "$BASE imported from $tarball in $(( $(date +%s) - s )) s"
    else
      cat "$WORK/import.log"; bad base-image "podman import failed"; return
    fi
  fi

  # 1b. build (the build stage runs the unit tests).
  s=$(date +%s)
  local rev
  rev=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
  if podman build --format docker --network host --build-arg BASE_IMAGE=$BASE \
       --build-arg REVISION="$rev" -t $IMAGE "$ROOT" > "$WORK/build.log" 2>&1; then
    local size
    size=$(podman image inspect --format '{{.Size}}' $IMAGE)
    ok image-build "$(( $(date +%s) - s )) s, image $(( size / 1000000 )) MB ($size bytes)"
  else
    tail -40 "$WORK/build.log"; bad image-build "podman build failed ($WORK/build.log)"; return
  fi
  # Keep the build cache bounded: tag the current build stage (fully cached, ~1 s), so its
  # layers (apt, sources, build) stay, then drop the dangling layers of earlier builds.
  podman build --format docker --network host --target build --build-arg BASE_IMAGE=$BASE \
    -t localhost/uflowd-build:cache "$ROOT" > "$WORK/build-cache.log" 2>&1 &&
    podman image prune -f > /dev/null 2>&1
  if grep -q "^Ok:" "$WORK/build.log"; then
    grep -E "^(Ok|Fail|Expected Fail|Skipped|Timeout):" "$WORK/build.log" | tr -s ' ' | paste -sd' ' |
      sed 's/^/  unit tests in the build stage: /'
  else
    note "build stage cached (sources unchanged since the last build, unit tests passed then)"
  fi

  # 1c. image metadata.
  local cfg
  cfg=$(podman image inspect --format '{{json .Config}}|{{json .Labels}}|{{json .HealthCheck}}' $IMAGE)
  if python3 - "$cfg" <<'EOF'
import json, sys
c, labels, hc = (json.loads(x) for x in sys.argv[1].split("|", 2))
errs = []
if c.get("User") != "10001": errs.append("User %r" % c.get("User"))
if c.get("Entrypoint") != ["uflowd"]: errs.append("Entrypoint %r" % c.get("Entrypoint"))
if c.get("Cmd") != ["--models", "/models", "--listen", "0.0.0.0:8080"]: errs.append("Cmd %r" % c.get("Cmd"))
if "8080/tcp" not in (c.get("ExposedPorts") or {}): errs.append("no EXPOSE 8080")
if "/models" not in (c.get("Volumes") or {}): errs.append("no VOLUME /models")
if not hc or "--healthcheck" not in " ".join(hc.get("Test", [])): errs.append("HEALTHCHECK %r" % hc)
for k in ("title", "description", "version", "revision", "licenses"):
    if "org.opencontainers.image." + k not in (labels or {}): errs.append("label " + k)
if errs: sys.exit("; ".join(errs))
EOF
  then ok image-config "USER 10001, ENTRYPOINT uflowd, EXPOSE 8080, VOLUME /models, HEALTHCHECK, OCI labels"
  else bad image-config; fi

  # 1d. a model, made by the image's own CLI, mounted read-only.
  mkdir -p "$WORK/models" && chmod 0777 "$WORK/models"
  if podman run --rm --read-only --network none -v "$WORK/models:/out" --entrypoint uflow $IMAGE \
       create --out /out/demo.safetensors --seed 1 > "$WORK/create.log" 2>&1; then
    chmod 0755 "$WORK/models"
    ok model "uflow create in the image -> demo.safetensors ($(stat -c %s "$WORK/models/demo.safetensors") bytes)"
  else
    cat "$WORK/create.log"; bad model "uflow create in the image failed"; return
  fi

  # 1e. run: read-only root, tmpfs /tmp, published on 127.0.0.1 only.
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local url=http://127.0.0.1:$port
  if ! podman run -d --name "$NAME" --read-only --tmpfs /tmp:rw,size=64m,mode=1777 \
         --cap-drop ALL --security-opt no-new-privileges --cpus 2 --memory 1g \
         -p 127.0.0.1:$port:8080 -v "$WORK/models:/models:ro" $IMAGE > "$WORK/run.log" 2>&1; then
    cat "$WORK/run.log"; bad run "podman run failed"; return
  fi
  s=$(now_ms)
  local code=000
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/readyz" || true)
    [ "$code" = 200 ] && break
    [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || break
    sleep 0.1
  done
  if [ "$code" = 200 ]; then
    ok ready "/readyz 200 after $(( $(now_ms) - s )) ms on $url"
  else
    podman logs "$NAME" 2>&1 | tail -20; bad ready "/readyz $code"; return
  fi

  if podman healthcheck run "$NAME" >/dev/null 2>&1; then
    ok healthcheck "HEALTHCHECK (uflowd --healthcheck) healthy"
  else
    bad healthcheck "podman healthcheck run: unhealthy"
  fi

  local body=$WORK/predict.json
  code=$(curl -s -o "$body" -w '%{http_code}' --max-time 30 -H 'Content-Type: image/jpeg' \
           --data-binary @"$ROOT/tests/golden/inputs/defect_640x480.jpg" \
           "$url/v1/models/demo/predict?heatmap=true&mask=true")
  local res
  if [ "$code" = 200 ] && res=$(python3 - "$body" <<'EOF'
import json, math, sys
d = json.load(open(sys.argv[1]))
s = d["score"]
assert isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s), s
assert d["model"] == "demo", d["model"]
assert d["heatmap"]["png_base64"] and d["mask"]["width"] > 0
print("score %.6g, model_version %s, inference %.1f ms" % (s, d["model_version"], d["timing_ms"]["inference"]))
EOF
  ); then ok predict "POST /v1/models/demo/predict 200: $res"
  else bad predict "HTTP $code: $(head -c 300 "$body")"; fi

  local uid_exec uid_host pid
  uid_exec=$(podman exec "$NAME" id -u 2>/dev/null)
  pid=$(podman inspect --format '{{.State.Pid}}' "$NAME")
  uid_host=$(awk '/^Uid:/{print $2}' "/proc/$pid/status" 2>/dev/null)
  if [ "$uid_exec" = 10001 ] && [ "$uid_host" = 10001 ]; then
    ok uid "uflowd (pid $pid) runs as uid 10001 (podman exec id -u: $uid_exec)"
  else
    bad uid "exec id -u=$uid_exec, /proc/$pid uid=$uid_host"
  fi

  if ! podman exec "$NAME" sh -c 'touch /usr/x' 2>/dev/null && podman exec "$NAME" sh -c 'touch /tmp/x' 2>/dev/null; then
    ok read-only "root fs read-only, /tmp (tmpfs) writable"
  else
    bad read-only "root fs writable or /tmp not writable"
  fi

  # 1f. drain: a burst of requests, SIGTERM while they run; all must answer 200 and the
  # container must exit 0 well within the 30 s grace period.
  local n=24 i
  mkdir -p "$WORK/burst"
  for i in $(seq 1 $n); do
    curl -s -o "$WORK/burst/$i.json" -w '%{http_code} %{time_total}\n' --max-time 60 \
      -H 'Content-Type: image/jpeg' --data-binary @"$ROOT/tests/golden/inputs/defect_640x480.jpg" \
      "$url/v1/models/demo/predict?heatmap=true&overlay=true&mask=true" > "$WORK/burst/$i.code" 2>/dev/null &
  done
  # stop once every request is in (inflight + done = n), while most are still queued/running
  local inflight
  for _ in $(seq 1 100); do
    inflight=$(curl -s --max-time 1 "$url/metrics" | awk '/^uflowd_inflight_requests /{print $2}')
    [ "${inflight:-0}" -ge $((n / 2)) ] 2>/dev/null && break
    sleep 0.02
  done
  sleep 0.1
  s=$(now_ms)
  podman stop -t 30 "$NAME" > /dev/null 2>&1
  local stop_ms=$(( $(now_ms) - s ))
  wait
  local exit_code codes n200=0 late=0
  exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
  for i in $(seq 1 $n); do
    read -r c tt < "$WORK/burst/$i.code" || c=000
    [ "$c" = 200 ] && n200=$((n200 + 1))
    codes+="$c "
  done
  note "answers: $(echo $codes | tr ' ' '\n' | sort | uniq -c | tr -s ' ' | paste -sd,)"
  podman logs "$NAME" > "$WORK/container.log" 2>&1
  grep -iE "ready:|drain|signal|shutdown|exit" "$WORK/container.log" | tail -6 | sed 's/^/  log: /'
  # uflowd logs how many requests it had when SIGTERM came: the drain must have had work
  local drained
  drained=$(sed -n 's/.*draining: \([0-9]*\) requests in flight.*/\1/p' "$WORK/container.log" | head -1)
  if [ "$n200" -eq $n ] && [ "$exit_code" = 0 ] && [ "$stop_ms" -lt 30000 ] && [ "${drained:-0}" -gt 0 ]; then
    ok drain "podman stop -t 30 with $drained of $n requests in flight: all $n answered 200, exit 0 after $stop_ms ms"
  else
    bad drain "$n200/$n answered 200, exit code $exit_code, stop took $stop_ms ms, in flight at SIGTERM: ${drained:-none logged}"
  fi
}

if [ -n "${DEPLOY_SKIP_CONTAINER:-}" ]; then
  skp container "DEPLOY_SKIP_CONTAINER set"
else
  container_tests
fi

# --- 2. Kubernetes manifests ---------------------------------------------------------------
s=$(date +%s)
if out=$(/usr/bin/python3 "$HERE/validate_k8s.py" "$ROOT/deploy/kubernetes" 2>&1); then
  echo "$out" | sed 's/^/  /'
  ok k8s-manifests "deploy/kubernetes valid against the Kubernetes API models"
else
  echo "$out" | sed 's/^/  /'
  bad k8s-manifests
fi
# negative tests: each bad/*.yaml must be rejected with the error its "# expect:" line names
for f in "$HERE"/bad/*.yaml; do
  b=$(basename "$f" .yaml)
  expect=$(sed -n '1s/^# expect: //p' "$f")
  if out=$(/usr/bin/python3 "$HERE/validate_k8s.py" "$f" 2>&1); then
    bad "k8s-reject-$b" "validator accepted a bad manifest"
  elif [ -n "$expect" ] && grep -qF -- "$expect" <<< "$out"; then
    ok "k8s-reject-$b" "$(grep -m1 -F -- "$expect" <<< "$out" | sed 's/^error //' | cut -c1-160)"
  else
    echo "$out" | sed 's/^/  /'; bad "k8s-reject-$b" "rejected, but not with: $expect"
  fi
done

summary
