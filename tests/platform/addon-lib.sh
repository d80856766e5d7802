# shellcheck shell=bash
# What the platform's add-ons (tests/platform/pebble, tests/platform/ceph)
# share: output words, the Docker CLI, a lock per add-on and the build of an
# add-on's image on the platform's Debian 13 base. Sourced, not run.

DOCKER=${DOCKER:-/usr/bin/docker}
ADDON_CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/selfhosted-test
# Names shared with tests/platform/platform (docs/contracts.md).
NETWORK=selfhosted-test
BASE_IMAGE=selfhosted-test/base:debian13
ROLE_LABEL=selfhosted-test.role

docker() { "$DOCKER" "$@"; }
ok() { echo "ok: $*"; }
changed() { echo "changed: $*"; }
die() {
  echo "error: $*" >&2
  exit 1
}

require_network() {
  docker network inspect "$NETWORK" >/dev/null 2>&1 ||
    die "network $NETWORK is missing: run tests/platform/platform up first"
}

# take_lock NAME: serialise the commands that build or (re)start add-on NAME.
# The scenarios of two lanes run `up` at the same time, and on a new machine
# two concurrent builds give two image IDs: the later `up` would restart the
# add-on under the scenario that had already read the first one's state.
take_lock() {
  mkdir -p "$ADDON_CACHE_DIR"
  exec 9>"$ADDON_CACHE_DIR/$1.lock"
  flock 9
}

# build_addon_image NAME CONTEXT PACKAGE: build image selfhosted-test/NAME from
# CONTEXT on the base image, tagged with the upstream version of Debian
# package PACKAGE in it (like the fixtures), and set IMAGE to that tag.
IMAGE=
build_addon_image() {
  local name=$1 context=$2 package=$3 log iidfile id version
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
    die "base image $BASE_IMAGE is missing: run tests/platform/platform up first"
  log=$ADDON_CACHE_DIR/logs/selfhosted-test_$name.log
  mkdir -p "$(dirname "$log")"
  iidfile=$(mktemp)
  if ! docker build --iidfile "$iidfile" --build-arg "BASE=$BASE_IMAGE" \
    --label "selfhosted-test.image=$name" "$context" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "building the $name image failed, see $log"
  fi
  id=$(<"$iidfile")
  rm -f "$iidfile"
  version=$(docker run --rm --entrypoint dpkg-query "$id" --showformat '${Version}' --show "$package")
  # "2.6.0-1+b2" -> "2.6.0" (no epoch, no Debian revision, no repack suffix)
  IMAGE=selfhosted-test/$name:$(sed -E 's/^[0-9]+://; s/-[^-]*$//; s/[+~].*$//' <<<"$version")
  if [[ $(docker image inspect --format '{{ .Id }}' "$IMAGE" 2>/dev/null || true) == "$id" ]]; then
    ok "image $IMAGE is up to date"
  else
    docker tag "$id" "$IMAGE"
    changed "built image $IMAGE"
  fi
}

# start_container ROLE WHAT WHERE [docker run options]: run $CONTAINER from
# $IMAGE (build_addon_image) on the network as $ALIAS, labelled ROLE (`platform
# down` removes it), unless it runs from that image already.
start_container() {
  local role=$1 what=$2 where=$3 state image
  shift 3
  image=$(docker image inspect --format '{{ .Id }}' "$IMAGE")
  state=$(docker container inspect --format '{{ .Image }} {{ .State.Running }}' "$CONTAINER" 2>/dev/null || true)
  if [[ $state == "$image true" ]]; then
    ok "$what is running"
    return
  fi
  [[ -z $state ]] || docker rm --force "$CONTAINER" >/dev/null
  docker run --detach --name "$CONTAINER" --label "$ROLE_LABEL=$role" \
    --network "$NETWORK" --network-alias "$ALIAS" "$@" "$IMAGE" >/dev/null
  changed "started $what ($CONTAINER, $where)"
}

remove_container() {
  if docker container inspect "$CONTAINER" >/dev/null 2>&1; then
    docker rm --force "$CONTAINER" >/dev/null
    changed "removed $CONTAINER"
  else
    ok "$CONTAINER is absent"
  fi
}

# $CONTAINER's address on the network: containers that test hosts run cannot
# resolve the platform's names.
container_address() {
  docker container inspect --format "{{ (index .NetworkSettings.Networks \"$NETWORK\").IPAddress }}" "$CONTAINER"
}
