#!/usr/bin/env bash
# Proves the Dockerfile's build stage builds, without Docker:
#   1. assembles the build context Docker would send (the repository filtered
#      by .dockerignore, with Docker's rules: the last matching pattern wins,
#      a pattern matching a parent directory matches what is inside it);
#   2. lays out the build stage's file system from its COPY lines (a source
#      missing from the context fails, as `docker build` would);
#   3. runs the stage's RUN cargo command there with --offline (the registry
#      cache of this machine instead of the network), the target directory
#      under target/image-build so later runs reuse the compiled dependencies;
#   4. checks the binary the runtime stage copies exists and runs.
#
#   scripts/image.sh check     (run by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
WORK="$ROOT/target/image-context"
export CARGO_TARGET_DIR="$ROOT/target/image-build"

log() { printf '[image] %s\n' "$*" >&2; }

check() {
  local started=$SECONDS
  # Prints the stage's working directory and RUN command.
  local layout
  layout="$(python3 - "$ROOT" "$WORK" <<'PY'
import os, re, shlex, shutil, sys

root, work = sys.argv[1], sys.argv[2]
context, stage = os.path.join(work, "context"), os.path.join(work, "stage")

# --- the build stage of the Dockerfile -------------------------------------
lines, current = [], ""
for raw in open(os.path.join(root, "Dockerfile")):
    line = raw.rstrip("\n")
    if not current and (not line.strip() or line.lstrip().startswith("#")):
        continue
    if line.endswith("\\"):
        current += line[:-1] + " "
        continue
    lines.append((current + line).strip())
    current = ""
build, in_build = [], False
for line in lines:
    word = line.split(None, 1)[0].upper()
    if word == "FROM":
        in_build = bool(re.search(r"\bAS\s+build\s*$", line, re.I))
        continue
    if in_build:
        build.append(line)
if not build:
    sys.exit("Dockerfile: no stage named `build`")
workdir, copies, runs = "/", [], []
for line in build:
    word, rest = line.split(None, 1)
    word = word.upper()
    if word == "WORKDIR":
        workdir = os.path.join(workdir, rest.strip())
    elif word in ("COPY", "ADD"):
        args = shlex.split(rest)
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        copies.append((workdir, args[:-1], args[-1]))
    elif word == "RUN":
        runs.append((workdir, rest.strip()))
cargo = [(w, r) for w, r in runs if r.split()[0] == "cargo"]
if len(cargo) != 1 or len(runs) != 1:
    sys.exit(f"Dockerfile: the build stage should RUN one cargo command, found {runs}")

# --- .dockerignore -----------------------------------------------------------
patterns = []
ignore = os.path.join(root, ".dockerignore")
for raw in open(ignore) if os.path.exists(ignore) else []:
    p = raw.strip()
    if not p or p.startswith("#"):
        continue
    negated = p.startswith("!")
    p = os.path.normpath(p.lstrip("!").strip().lstrip("/"))
    patterns.append((negated, p))

def match(pattern, path):
    # Go's filepath.Match plus `**` (any number of directories).
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None

def excluded(path):
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        if any(match(pattern, p) for p in prefixes):
            result = not negated
    return result

def reincluded_below(directory):
    # An exception pattern could re-include something under `directory`.
    return any(neg and (p.startswith(directory + "/") or "*" in p) for neg, p in patterns)

# --- the context ---------------------------------------------------------------
shutil.rmtree(work, ignore_errors=True)
os.makedirs(context)
sent = 0
for dirpath, dirnames, filenames in os.walk(root):
    rel_dir = os.path.relpath(dirpath, root)
    rel_dir = "" if rel_dir == "." else rel_dir
    keep = []
    for d in dirnames:
        rel = os.path.join(rel_dir, d)
        if rel in ("target", ".git") and excluded(rel):
            continue  # never walked: gigabytes, and excluded anyway
        if excluded(rel) and not reincluded_below(rel):
            continue
        keep.append(d)
    dirnames[:] = keep
    for f in filenames:
        rel = os.path.join(rel_dir, f)
        if excluded(rel):
            continue
        os.makedirs(os.path.join(context, rel_dir), exist_ok=True)
        # copy2 keeps modification times: an unchanged file does not make
        # cargo rebuild the crate on the next run.
        shutil.copy2(os.path.join(root, rel), os.path.join(context, rel))
        sent += 1
for forbidden in (".git", "target", ".env"):
    if os.path.exists(os.path.join(context, forbidden)):
        sys.exit(f".dockerignore lets {forbidden} into the build context")
print(f"context: {sent} files", file=sys.stderr)

# --- the stage's file system from its COPY lines ------------------------------
for wd, sources, dest in copies:
    target = os.path.join(stage, os.path.join(wd, dest).lstrip("/"))
    for src in sources:
        origin = os.path.join(context, src)
        if not os.path.exists(origin):
            sys.exit(f"Dockerfile: COPY {src}: not found in the build context (.dockerignore?)")
        if os.path.isdir(origin):
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            into = target if dest.endswith("/") else os.path.dirname(target)
            os.makedirs(into, exist_ok=True)
            shutil.copy2(origin, into if dest.endswith("/") else target)
wd, command = cargo[0]
print(os.path.join(stage, wd.lstrip("/")))
print(command)
PY
)"
  local dir command
  dir="$(sed -n 1p <<<"$layout")"
  command="$(sed -n 2p <<<"$layout")"
  log "context assembled in $((SECONDS - started)) s; in $dir: ${command/cargo/cargo --offline}"
  local build_started=$SECONDS
  (cd "$dir" && eval "${command/cargo/cargo --offline}")
  log "cargo: $((SECONDS - build_started)) s (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  # The runtime stage copies /src/target/release/smap-identity.
  local binary
  binary="$(sed -n 's|^COPY --from=build /src/target/\([^ ]*\) .*|\1|p' Dockerfile)"
  [[ -n "$binary" && -x "$CARGO_TARGET_DIR/$binary" ]] || {
    log "the runtime stage copies target/$binary, which the build did not produce"
    exit 1
  }
  "$CARGO_TARGET_DIR/$binary" --help | grep -q migrate || {
    log "target/$binary does not run"
    exit 1
  }
  log "target/$binary built and runs; whole check $((SECONDS - started)) s"
}

case "${1:-}" in
  check) check ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
