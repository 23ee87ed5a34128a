#!/bin/sh
# Checks a built realmgate image against its size budget (deploy/Dockerfile, "Size
# budget"): at most 40 MiB uncompressed, as `docker image inspect` (or podman's) reports.
#
#   deploy/check-image-size.sh IMAGE        # e.g. realmgate, or registry.example.com/realmgate:0.1.0
#
# Exit 0 within the budget; 1 over it (with the size); 2 when no engine or no image.
set -eu
BUDGET_BYTES=41943040 # 40 MiB

image="${1:?usage: deploy/check-image-size.sh IMAGE}"
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null 2>&1; then
      engine="$candidate"
      break
    fi
  done
fi
if [ -z "$engine" ]; then
  echo "check-image-size: neither docker nor podman is installed (or set CONTAINER_ENGINE)" >&2
  exit 2
fi
if ! size="$("$engine" image inspect --format '{{.Size}}' "$image")"; then
  echo "check-image-size: $engine has no image $image; build it first (see deploy/Dockerfile)" >&2
  exit 2
fi
mib() { echo "$(( ($1 + 1048575) / 1048576 )) MiB"; }
if [ "$size" -gt "$BUDGET_BYTES" ]; then
  echo "check-image-size: $image is $size bytes ($(mib "$size")), over the budget of $BUDGET_BYTES bytes ($(mib "$BUDGET_BYTES")); see deploy/Dockerfile" >&2
  exit 1
fi
echo "check-image-size: $image is $size bytes ($(mib "$size")), within the budget of $BUDGET_BYTES bytes ($(mib "$BUDGET_BYTES"))"
