#!/usr/bin/env bash
# Rehearses tools/gpu-session.sh on this CPU machine as the GPU machine will see it: a bare Debian bookworm root
# (debootstrap) with python3, cmake, ninja, g++ and nothing else of ours — no make, none of the -dev packages —
# the venv's torch wheel (+ transformers, peft) mounted where the GPU machine keeps its python (/opt/torch/.venv),
# the CUDA toolkit without nccl.h (the GPU machine's has none), and a copy of what the device tool sends: the files
# git tracks or does not ignore, plus .debs/. The GPU steps then report "no-gpu"; everything before them must pass.
#
#   tools/gpu-rehearsal.sh            # root in /srv/agora-bare (AGORA_BARE_ROOT), results in gpu-results-rehearsal/
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/versions.env"
bare="${AGORA_BARE_ROOT:-/srv/agora-bare}"
results="$root/gpu-results-rehearsal"

[[ -d "$root/.debs" ]] || "$root/tools/gpu-debs.sh"
if [[ ! -x "$bare/usr/bin/g++" ]]; then
  command -v debootstrap > /dev/null || apt-get install -y -qq debootstrap
  debootstrap --variant=minbase --include=python3,cmake,ninja-build,g++,xz-utils,procps,binutils \
    "$DEBIAN_SUITE" "$bare" http://deb.debian.org/debian
fi
# The toolkit as hard links (no copy of 2.7 GB), less NCCL.
if [[ ! -d "$bare/usr/local/cuda-$CUDA_VERSION" ]]; then
  cp -al "/usr/local/cuda-$CUDA_VERSION" "$bare/usr/local/"
  rm -f "$bare/usr/local/cuda-$CUDA_VERSION"/include/nccl*.h "$bare/usr/local/cuda-$CUDA_VERSION"/lib64/libnccl*
  ln -sfn "cuda-$CUDA_VERSION" "$bare/usr/local/cuda"
fi
# The tree the device tool would send.
rm -rf "$bare/work/agora" && mkdir -p "$bare/work/agora"
(cd "$root" && { git ls-files -co --exclude-standard; find .debs -type f; } | tar -cf - -T -) | tar -xf - -C "$bare/work/agora"

# A venv of the root's own python3 whose site-packages are the host venv's (same 3.11 ABI), mounted.
venv="$bare/opt/torch/.venv"
site="lib/python3.11/site-packages"
mkdir -p "$venv/bin" "$venv/$site"
ln -sfn /usr/bin/python3 "$venv/bin/python3"
ln -sfn python3 "$venv/bin/python"
printf 'home = /usr/bin\ninclude-system-site-packages = false\n' > "$venv/pyvenv.cfg"
mounts=(proc sys dev "opt/torch/.venv/$site")
cleanup() {
  for m in "${mounts[@]}"; do umount -l "$bare/$m" 2> /dev/null || true; done
}
trap cleanup EXIT
for m in proc sys dev; do mount --bind "/$m" "$bare/$m"; done
mount --bind "$AGORA_VENV/$site" "$venv/$site"

start=$SECONDS
chroot "$bare" /usr/bin/env -i HOME=/root PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:/usr/bin:/bin \
  OUT=/work/out AGORA_COMMIT="$(git -C "$root" rev-parse HEAD)" AGORA_DEADLINE_S="${AGORA_DEADLINE_S:-3600}" \
  AGORA_BUILD_TIMEOUT_S=3000 AGORA_STEPS="${AGORA_STEPS:-}" AGORA_GPU_TARGETS="${AGORA_GPU_TARGETS:-}" \
  bash -c 'rm -rf /work/out && cd /work/agora && bash tools/gpu-session.sh'
echo "gpu-rehearsal: ${SECONDS}s from the chroot's start"
rm -rf "$results" && cp -r "$bare/work/out" "$results"
ls -la "$results"
