#!/bin/sh
# scripts/sdk-test.sh BUILD_DIR: what a plugin author gets from `make install`, used the way
# an author would use it, with nothing of the source or build tree.
#   1. make install DESTDIR=TMP (a temporary root: nothing on the machine changes);
#   2. the installed headers, docs and every command's --help cite no source path and no
#      file that is not installed; equimod-sdk.pc states the ABI of plugin.h;
#   3. the installed examples/ (one plugin of each kind) are copied out and built with
#      their Makefile through `pkg-config equimod-sdk` only; `equimod new` writes one
#      skeleton of each kind, built the same way; a C++17 plugin (tests/plugins/cxx) is
#      built with g++ against the installed headers;
#   4. the installed equimod lists them, and with `equimod check` (when the program has
#      that command) validates every one;
#   5. a few steps of SimCLR+EquiMod train with them (example dataset, backbone, method and
#      equivariance module, the installed augmentations plus the example and a skeleton).
# Called by scripts/test.sh after `make check`, and by `make installcheck`.
set -eu
build=$(cd "${1:?usage: sdk-test.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/eqm_sdk_install_XXXXXX)
trap '[ -n "${EQM_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

echo "== make install DESTDIR=$tmp/root"
make -s -C "$build" install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "make install"; }
pc=$(find "$tmp/root" -name equimod-sdk.pc | head -1)
[ -n "$pc" ] || fail "equimod-sdk.pc not installed"
# pkg-config --define-prefix relocates the prefix to where the .pc file lies (pkgconf).
PKG_CONFIG="pkg-config --define-prefix"
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH # the machine's own .pc files are not needed
export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR
eqm=$($PKG_CONFIG --variable=equimod equimod-sdk)
plugindir=$($PKG_CONFIG --variable=plugindir equimod-sdk)
docdir=$($PKG_CONFIG --variable=docdir equimod-sdk)
configsdir=$($PKG_CONFIG --variable=configsdir equimod-sdk)
incdir=$($PKG_CONFIG --variable=includedir equimod-sdk)
case $eqm in "$tmp/root"/*) ;; *) fail "pkg-config --variable=equimod gave $eqm, not under $tmp/root";; esac
[ -x "$eqm" ] || fail "equimod program $eqm not installed"
for f in README.md ABI.md method-reference.md examples/Makefile; do
  [ -f "$docdir/$f" ] || fail "$docdir/$f not installed"
done
[ -f "$configsdir/quickstart.ini" ] || fail "configs not installed in $configsdir"
man=$(find "$tmp/root" -path '*/man1/equimod.1' | head -1)
[ -n "$man" ] || fail "man page equimod.1 not installed"
# The installed program finds the installed plugins and nothing else.
EQUIMOD_PLUGIN_SYSTEM_PATH=$plugindir
EQUIMOD_PLUGIN_PATH=
export EQUIMOD_PLUGIN_SYSTEM_PATH EQUIMOD_PLUGIN_PATH

echo "== ABI version in equimod-sdk.pc"
major=$(sed -n 's/^#define EQM_ABI_MAJOR \([0-9]*\)$/\1/p' "$incdir/equimod/plugin.h")
minor=$(sed -n 's/^#define EQM_ABI_MINOR \([0-9]*\)$/\1/p' "$incdir/equimod/plugin.h")
v=$($PKG_CONFIG --modversion equimod-sdk)
[ "$v" = "$major.$minor" ] || fail "equimod-sdk.pc Version $v, plugin.h says ABI $major.$minor"
$PKG_CONFIG --atleast-version="$major.$minor" equimod-sdk || fail "--atleast-version"
"$eqm" --version | grep -q "plugin ABI $major\.$minor" || fail "equimod --version: ABI"

echo "== installed text cites only installed files"
# Source paths (host/..., sdk/..., tests/..., plugins/...), the test suite, and the
# shared reference METHOD.md that is not installed.
bad='(^|[^a-z_])(host|sdk|tests|plugins|scripts)/[a-z]|Check suite|METHOD\.md'
cites=$(grep -rnE "$bad" "$incdir/equimod" "$docdir"/*.md "$docdir"/examples "$man" || true)
[ -z "$cites" ] || { echo "$cites"; fail "installed headers/docs cite source paths"; }
# Help texts (every command's --help and every plugin's describe): the same rule.
bad_help=$bad
for c in $("$eqm" --help | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1}'); do
  out=$("$eqm" "$c" --help 2>&1 | grep -nE "$bad_help" || true)
  [ -z "$out" ] || { echo "equimod $c --help: $out"; fail "help text cites a source path"; }
done
for p in $("$eqm" plugins 2>/dev/null | awk 'NR > 1 {print $1 "/" $2}'); do
  out=$("$eqm" describe "$p" 2>&1 | grep -nE "$bad_help" || true)
  [ -z "$out" ] || { echo "equimod describe $p: $out"; fail "describe text cites a source path"; }
done

echo "== installed examples build out of tree"
cp -R "$docdir/examples" "$tmp/ex"
make -s -C "$tmp/ex" PKG_CONFIG="$PKG_CONFIG" CFLAGS="-O2 -Wall -Wextra -Werror" \
  >"$tmp/ex.log" 2>&1 || { cat "$tmp/ex.log"; fail "examples do not build"; }
n_ex=$(ls "$tmp/ex"/*.so | wc -l)
[ "$n_ex" -ge 4 ] || fail "only $n_ex example plugins built"
# Nothing of the source or build tree was used.
if grep -rqsF -e "$src" -e "$build" "$tmp/ex.log"; then fail "example build used the source tree"; fi

echo "== equimod new, one skeleton per kind"
for kind in dataset augment backbone method equimod; do
  (cd "$tmp" && "$eqm" new "$kind" "my_$kind" "new/$kind" >/dev/null) || fail "equimod new $kind"
  make -s -C "$tmp/new/$kind" PKG_CONFIG="$PKG_CONFIG" CFLAGS="-O2 -Wall -Wextra -Werror" \
    >"$tmp/new.log" 2>&1 || { cat "$tmp/new.log"; fail "skeleton $kind does not build"; }
  [ -f "$tmp/new/$kind/my_$kind.so" ] || fail "skeleton $kind: no my_$kind.so"
done
(cd "$tmp" && "$eqm" new augment my_augment "new/augment" >/dev/null 2>&1) &&
  fail "equimod new overwrote an existing skeleton"

echo "== a C++17 plugin against the installed headers"
mkdir "$tmp/cxx"
${CXX:-g++} -std=c++17 -pedantic -Wall -Wextra -Werror -O2 -fPIC -fvisibility=hidden -shared \
  $($PKG_CONFIG --cflags equimod-sdk) -o "$tmp/cxx/cxx_negate.so" \
  "$src/tests/plugins/cxx/cxx_negate.cpp" || fail "the C++17 plugin does not build"

paths="--plugin-path $tmp/ex"
for kind in dataset augment backbone method equimod; do paths="$paths --plugin-path $tmp/new/$kind"; done
# shellcheck disable=SC2086
listed=$("$eqm" $paths plugins 2>"$tmp/plugins.err")
for n in example_invert example_shapes example_mlp example_simclr example_equimod my_dataset \
         my_augment my_backbone my_method my_equimod; do
  echo "$listed" | grep -qE "^[a-z]+ +$n " || { cat "$tmp/plugins.err"; fail "$n not listed"; }
done

if "$eqm" check --help >/dev/null 2>&1; then
  echo "== equimod check on every example and skeleton"
  for so in "$tmp"/ex/*.so "$tmp"/new/*/*.so "$tmp"/cxx/cxx_negate.so; do
    "$eqm" check "$so" >"$tmp/check.log" 2>&1 || { cat "$tmp/check.log"; fail "equimod check $so"; }
    tail -n 1 "$tmp/check.log"
  done
fi

echo "== a few steps of SimCLR+EquiMod with them"
cat >"$tmp/sdk.ini" <<'INI'
[run]
seed = 3
[data]
plugin = my_dataset
n = 256
size = 16
[loader]
batch_size = 32
workers = 2
t_standardize = none
[views]
original = norm
view1 = crop flip inv mine norm
view2 = crop flip inv mine norm
eval_train = flip norm
eval_test = norm
[augment.crop]
plugin = random_resized_crop
size = 16
scale_min = 0.2
[augment.flip]
plugin = horizontal_flip
[augment.inv]
plugin = example_invert
p = 0.3
[augment.mine]
plugin = my_augment
[augment.norm]
plugin = normalize
[backbone]
plugin = example_mlp
hidden = 32
out_dim = 16
[method]
plugin = example_simclr
out_dim = 16
[equimod]
plugin = example_equimod
[train]
epochs = 1
max_steps = 4
threads = 2
[optim]
name = sgd
lr = 0.1
[eval]
knn_k = 5
train_limit = 256
test_limit = 64
batch = 64
INI
# shellcheck disable=SC2086
"$eqm" $paths config "$tmp/sdk.ini" >/dev/null || fail "config of the SDK plugins"
# shellcheck disable=SC2086
"$eqm" $paths train "$tmp/sdk.ini" --out "$tmp/run" >"$tmp/train.log" 2>&1 ||
  { tail -n 30 "$tmp/train.log"; fail "training with the SDK plugins"; }
steps=$(grep -c '"kind":"step".*"loss":[0-9-]' "$tmp/run/metrics.jsonl" 2>/dev/null || true)
[ "$steps" = 4 ] || { tail -n 20 "$tmp/train.log"; fail "$steps finite-loss steps in metrics.jsonl, expected 4"; }
echo "ok: installed SDK, $n_ex examples, 5 skeletons, trained 4 steps"
