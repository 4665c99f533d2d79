#!/usr/bin/env bash
# THE test command: installs what is missing, builds out of tree in _build/
# with -Werror, runs the Check unit tests (make check), then the pytest
# integration tests in t/integration/ against a real httpd. Exits non-zero
# on any failure. The integration tests run twice: as configured (transparent
# mode on by default), then with VThreadTransparent Off at server level
# (VT_TRANSPARENT=Off; test_transparent_*.py left out).
#
# Environment: VT_JOBS (make -j, default: CPUs), VT_PYTEST_TIMEOUT
# (seconds for the whole integration run, default 900).
set -euo pipefail
# shellcheck source=build/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$VT_TOP"

build=_build
pytest_timeout=${VT_PYTEST_TIMEOUT:-900}

vt_step "dependencies"
bash build/deps.sh
vt_step "autoreconf"
bash build/bootstrap.sh
vt_step "configure ($build/)"
vt_configure "$build" --enable-werror
vt_step "make"
make -C "$build" -j"$VT_JOBS"

failed=0
vt_step "unit tests (make check)"
vt_check "$build" || failed=1
unit=$(vt_check_counts "$build")

# "N passed, M failed" from a pytest JUnit file ($1) and pytest's exit ($2).
vt_junit_summary() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, xml.etree.ElementTree as ET
path, rc = sys.argv[1], sys.argv[2]
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError):
    print("no result (pytest exit %s)" % rc)
    sys.exit(0)
t = f = s = 0
for suite in root.iter("testsuite"):
    t += int(suite.get("tests", 0))
    f += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    s += int(suite.get("skipped", 0))
line = "%d passed, %d failed" % (t - f - s, f)
print(line + (", %d skipped" % s if s else "") + ("" if rc == "0" else " (pytest exit %s)" % rc))
PY
}

integration="no tests in t/integration"
if [ -n "$(find t/integration -name 'test_*.py' -print -quit 2>/dev/null)" ]; then
    vt_step "integration tests (pytest)"
    junit=$VT_TOP/$build/integration-junit.xml
    rm -f "$junit"
    rc=0
    VT_BUILD_DIR=$VT_TOP/$build timeout -k 30 "$pytest_timeout" \
        /usr/bin/python3 -m pytest -q t/integration --junitxml="$junit" || rc=$?
    # Exit 5 (nothing collected) is a failure too: test files exist.
    if [ "$rc" -ne 0 ]; then
        failed=1
    fi
    integration=$(vt_junit_summary "$junit" "$rc")
    # Again with VThreadTransparent Off at server level: everything but
    # transparent mode's own tests must pass as it did before that mode.
    vt_step "integration tests, VThreadTransparent Off (pytest)"
    junit_off=$VT_TOP/$build/integration-off-junit.xml
    rm -f "$junit_off"
    rc=0
    VT_TRANSPARENT=Off VT_BUILD_DIR=$VT_TOP/$build \
        timeout -k 30 "$pytest_timeout" /usr/bin/python3 -m pytest -q \
        t/integration --ignore-glob='*/test_transparent_*' \
        --junitxml="$junit_off" || rc=$?
    if [ "$rc" -ne 0 ]; then
        failed=1
    fi
    integration="$integration; with VThreadTransparent Off: $(vt_junit_summary "$junit_off" "$rc")"
fi

printf '\nunit (test programs): %s\nintegration: %s\n' "$unit" "$integration"
if [ "$failed" -ne 0 ]; then
    echo "test.sh: FAILED"
    exit 1
fi
echo "test.sh: all passed"
