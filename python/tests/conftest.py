"""
Fixtures for the Python tests: the package from this source tree, libdsipc
from the build tree ($DSD_BUILD_DIR, default <repo>/build, unless
$DSIPC_LIBRARY names one), and the real platform (platform.js: the
deepstream server, dsd, a JS client), started the way the Node integration
tests start them.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(os.environ.get("DSD_BUILD_DIR") or os.path.join(REPO, "build"))

sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("DSIPC_LIBRARY", os.path.join(BUILD, "libdsipc", "libdsipc.so.1"))


class Platform:
    def __init__(self, proc, info):
        self.proc = proc
        self.socket = info["socket"]
        self.url = info["url"]

    def cmd(self, line):
        """Sends one command to platform.js and returns its answer."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline().strip()
        if out.startswith("error") or not out:
            raise RuntimeError(f"platform.js {line!r}: {out or 'no answer'}")
        return None if out == "ok" else json.loads(out)


@pytest.fixture(scope="module")
def platform():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: the platform cannot be started")
    if not os.path.exists(os.path.join(REPO, "tests", "peer", "node_modules")):
        pytest.fail("tests/peer/node_modules is missing: run tools/bootstrap")
    env = dict(os.environ, DSD_BUILD_DIR=BUILD)
    proc = subprocess.Popen([node, os.path.join(HERE, "platform.js")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        pytest.fail(f"platform.js did not start (exit {proc.returncode})")
    p = Platform(proc, json.loads(line))
    yield p
    try:
        proc.stdin.close()
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
