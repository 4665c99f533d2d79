"""Bad configuration is refused before the server starts.

`apache2 -t` on a config with one bad mod_vthread directive must exit
non-zero, point at the right line, and say which directive is wrong. A
good config with every directive passes (so the failures above are about
the values, not about loading the module).
"""

import re

import pytest

from conftest import line_of, module_paths

# (config lines, regex the error message must match). The message is the
# line httpd prints after "Syntax error on line N of FILE:".
BAD = [
    ("VThreadCarriers 0", r"VThreadCarriers: '0' is not allowed"),
    ("VThreadCarriers -1", r"VThreadCarriers: '-1' is not allowed"),
    ("VThreadCarriers two", r"VThreadCarriers: 'two' is not allowed"),
    ("VThreadCarriers 100000", r"VThreadCarriers: '100000' is not allowed"),
    ("VThreadCarriers 1 2", r"VThreadCarriers takes one argument"),
    ("VThreadCarriers", r"VThreadCarriers takes one argument"),
    ("VThreadStackSize abc", r"VThreadStackSize: 'abc'"),
    ("VThreadStackSize -64K", r"VThreadStackSize: '-64K'"),
    ("VThreadStackSize 12Q", r"VThreadStackSize: .*'Q'"),
    ("VThreadStackSize 99999G", r"VThreadStackSize: .*'G'"),
    ("VThreadStackSize 1K", r"VThreadStackSize: '1K' is not allowed"),
    ("VThreadStackSize 4096M", r"VThreadStackSize: '4096M' is not allowed"),
    ("VThreadMaxFibers -1", r"VThreadMaxFibers: '-1' is not allowed"),
    ("VThreadMaxFibers lots", r"VThreadMaxFibers: 'lots' is not allowed"),
    ("VThreadMaxFibers 99999999999",
     r"VThreadMaxFibers: '99999999999' is not allowed"),
    ("VThreadPinnedWarn soon", r"VThreadPinnedWarn: 'soon' is not a duration"),
    ("VThreadPinnedWarn -5", r"VThreadPinnedWarn: '-5' is not a duration"),
    ("VThreadPinnedWarn 10parsecs", r"VThreadPinnedWarn: '10parsecs'"),
    ("VThreadOverflow maybe", r"VThreadOverflow: 'maybe' is not allowed"),
    ("VThreadOverflow 502", r"VThreadOverflow: '502' is not allowed"),
    ("VThreadHandler", r"VThreadHandler"),
    ("VThreadHandler On vthread-sleep", r"VThreadHandler: 'On' must stand"),
    ("VThreadHandler vthread-sleep Off", r"VThreadHandler: 'Off' must stand"),
    # Per-child settings do not belong in a directory context.
    ('<Location "/x">\nVThreadCarriers 2\n</Location>',
     r"VThreadCarriers .*not allowed"),
    ('<Location "/x">\nVThreadStackSize 256K\n</Location>',
     r"VThreadStackSize .*not allowed"),
    ('<Location "/x">\nVThreadMaxFibers 100\n</Location>',
     r"VThreadMaxFibers .*not allowed"),
    ('<VirtualHost 127.0.0.1:9>\nVThreadCarriers 2\n</VirtualHost>',
     r"VThreadCarriers cannot occur within <VirtualHost>"),
    # The demo module's own directive.
    ("VThreadDemoBackend nohostport", r"VThreadDemoBackend: 'nohostport'"),
    ("VThreadDemoBackend 127.0.0.1:0", r"VThreadDemoBackend.*host:port"),
    ("VThreadDemoBackend 127.0.0.1:99999", r"VThreadDemoBackend.*host:port"),
    ('<Location "/x">\nVThreadDemoBackend 127.0.0.1:80\n</Location>',
     r"VThreadDemoBackend .*not allowed"),
]

# Each accepted on its own.
GOOD_VALUES = [
    "VThreadCarriers auto", "VThreadCarriers 1", "VThreadStackSize 1M",
    "VThreadStackSize 262144", "VThreadStackSize 64K", "VThreadMaxFibers 0",
    "VThreadMaxFibers 1", "VThreadPinnedWarn Off", "VThreadPinnedWarn 0",
    "VThreadPinnedWarn 250ms", "VThreadPinnedWarn 2s",
    "VThreadPinnedWarn 100", "VThreadOverflow inline", "VThreadOverflow 503",
    "VThreadHandler Off", "VThreadHandler vthread-sleep",
    "VThreadDemoBackend localhost:80", "VThreadDemoBackend [::1]:8080",
]

GOOD = """
VThreadStackSize 256K
VThreadMaxFibers 10000
VThreadOverflow 503
<Location "/good">
    SetHandler vthread-sleep
    VThreadHandler vthread-sleep vthread-cpu
</Location>
<Location "/good2">
    VThreadHandler Off
</Location>
<Location "/good3">
    VThreadHandler On
</Location>
"""


def test_good_config_passes(tmp_httpd):
    h = tmp_httpd(extra=GOOD)
    rc, out = h.check_config()
    assert rc == 0 and "Syntax OK" in out, out


@pytest.mark.parametrize("line", GOOD_VALUES)
def test_good_value_is_accepted(tmp_httpd, line):
    rc, out = tmp_httpd(extra=line).check_config()
    assert rc == 0 and "Syntax OK" in out, out


@pytest.mark.parametrize("snippet,message", BAD,
                         ids=[b[0].replace("\n", " ") for b in BAD])
def test_bad_value_is_refused(tmp_httpd, snippet, message):
    h = tmp_httpd(extra=snippet)
    rc, out = h.check_config()
    assert rc != 0, "apache2 -t accepted %r:\n%s" % (snippet, out)
    line = line_of(h.config_text(), snippet)
    m = re.search(r"Syntax error on line (\d+) of [^\n]*:\n(.*)", out)
    assert m, out
    assert int(m.group(1)) == line, ("wrong line", line, out)
    assert re.search(message, m.group(2), re.I), (
        "message %r does not match %r" % (m.group(2), message))


def test_demo_module_needs_mod_vthread_loaded_first(tmp_httpd):
    _, demo = module_paths()
    h = tmp_httpd(vthread=False,
                  extra="LoadModule vthread_demo_module %s" % demo)
    rc, out = h.check_config()
    assert rc != 0, out
    assert re.search(r"undefined symbol: vthread_", out), out
