#!/bin/sh
# Score one image with uflowd using curl; optionally save its heatmap.
#
#   UFLOW_MODEL=bottle examples/curl/score.sh part.jpg [heatmap.png]
#
# Prints `IMAGE LABEL score=S [normalized=N]` (LABEL: anomalous, normal, or unknown when the
# model has no calibrated threshold). Exit status: 0 normal (or unknown), 1 anomalous, 2 error.
#
# Settings (environment): UFLOW_URL (default http://localhost:8080), UFLOW_MODEL (required),
# UFLOW_API_KEY (when the server has --api-key-file). The key goes to curl on its standard
# input (-H @-), not on its command line, so `ps` does not show it.
# Needs curl, sed and base64 (coreutils); no jq: uflowd's answers are compact one-line JSON.
set -eu

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: UFLOW_MODEL=NAME $0 IMAGE [HEATMAP.png]" >&2; exit 2; }
img=$1
heat=${2:-}
url=${UFLOW_URL:-http://localhost:8080}
model=${UFLOW_MODEL:?set UFLOW_MODEL to the model name (see: curl $url/v1/models)}
[ -r "$img" ] || { echo "$img: cannot read" >&2; exit 2; }

case $img in
  *.png|*.PNG) type=image/png ;;
  *.jpg|*.jpeg|*.JPG|*.JPEG) type=image/jpeg ;;
  *) type=application/octet-stream ;;   # uflowd recognises the format from the bytes
esac
if [ -n "$heat" ]; then want_heat=true; else want_heat=false; fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM
auth_header() { [ -z "${UFLOW_API_KEY:-}" ] || printf 'Authorization: Bearer %s\n' "$UFLOW_API_KEY"; }

code=$(auth_header | curl -sS --max-time 60 -o "$out" -w '%{http_code}' -H @- -H "Content-Type: $type" \
         --data-binary @"$img" "$url/v1/models/$model/predict?heatmap=$want_heat") || {
  echo "cannot reach $url" >&2; exit 2; }

if [ "$code" != 200 ]; then
  msg=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$out")
  echo "$img: error: HTTP $code: ${msg:-$(head -c 200 "$out")}" >&2
  exit 2
fi

label=$(sed -n 's/.*"label":\([^,}]*\).*/\1/p' "$out" | tr -d '"')
[ "$label" = null ] && label=unknown
score=$(sed -n 's/.*"score":\([-0-9.eE+]*\).*/\1/p' "$out")
norm=$(sed -n 's/.*"normalized_score":\([-0-9.eE+]*\).*/\1/p' "$out")
line="$img $label score=$score"
[ -z "$norm" ] || line="$line normalized=$norm"

if [ -n "$heat" ]; then
  sed -n 's/.*"heatmap":{"png_base64":"\([^"]*\)".*/\1/p' "$out" | base64 -d >"$heat"
  line="$line heatmap=$heat"
fi
echo "$line"
[ "$label" = anomalous ] && exit 1
exit 0
