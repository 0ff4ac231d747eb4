"""
The Python package against a real dsd and the real deepstream server
(conftest.py): blocking and asyncio use, results and errors as in C, and
reconnection across dsd restarts.
"""
import asyncio
import errno
import os
import time

import pytest

import dsipc


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_library_version():
    assert dsipc.library_version() >= (1, 1, 0)


def test_connect_state_emit_subscribe(platform):
    platform.cmd("subscribe py/basic")
    states, got = [], []
    with dsipc.Client(platform.socket, reconnect=False) as c:
        c.connect()
        assert c.connected and c.link == dsipc.Link.UP
        c.watch_state(states.append)
        c.subscribe("py/basic", got.append)
        c.wait(0.2)
        assert states and states[-1].state == "OPEN"
        assert c.state.state == "OPEN"
        # the platform is up: dsd writes it at once and the platform confirms
        assert c.emit("py/basic", {"k": 1}) == dsipc.Emit.CONFIRMED
        # no data, and JSON null, stay apart
        assert c.emit("py/basic") in (dsipc.Emit.SENT, dsipc.Emit.CONFIRMED)
        assert c.emit("py/basic", None) in (dsipc.Emit.SENT, dsipc.Emit.CONFIRMED)
        c.wait(0.2)
        # local subscribers get local emits (the platform does not echo)
        assert [(e.name, e.json) for e in got] == [
            ("py/basic", '{"k":1}'), ("py/basic", None), ("py/basic", "null")]
        assert got[0].data == {"k": 1}
        wait_for(lambda: len(platform.cmd("received py/basic")) == 3, what="the JS client")
        assert platform.cmd("received py/basic")[0] == {"k": 1}
        assert c.status()["state"] == "OPEN"


def test_refusals_raise_with_the_reason(platform):
    with dsipc.Client(platform.socket) as c:
        c.connect()
        with pytest.raises(dsipc.Refused) as e:
            c.emit("", 1)
        assert e.value.errno == errno.EINVAL and "empty" in str(e.value)
        with pytest.raises(dsipc.Refused) as e:
            c.emit("py/x", json="{bad")
        assert e.value.errno == errno.EINVAL and "JSON" in str(e.value)
        with pytest.raises(dsipc.Refused) as e:
            c.emit("py/x", json='"' + "x" * (1024 * 1024) + '"')
        assert e.value.errno == errno.EMSGSIZE
        # dsd's own refusal: the event does not fit the platform's limit
        with pytest.raises(dsipc.Refused) as e:
            c.emit("py/x", json='"' + "x" * (1024 * 1024 - 10) + '"')
        assert e.value.errno == errno.EMSGSIZE
    with dsipc.Client("/nonexistent/dsd.sock", reconnect=False) as c:
        with pytest.raises(dsipc.Error) as e:
            c.connect()
        assert e.value.errno == errno.ENOENT
        with pytest.raises(dsipc.NotConnected):
            c.emit("py/x", 1)


def test_platform_events_and_unsubscribe(platform):
    got = []
    with dsipc.Client(platform.socket) as c:
        c.connect()
        sub = c.subscribe("py/in", got.append)
        c.emit("py/sync")  # after dsd answered, the subscription is in place
        wait_for(lambda: c.wait(0.05) or platform.cmd("emit py/in {\"from\":\"js\"}") or got,
                 what="a platform event")
        assert got[0].data == {"from": "js"}
        sub.close()
        c.wait(0.2)
        n = len(got)
        platform.cmd('emit py/in {"after":1}')
        c.wait(0.5)
        assert len(got) == n
        # the blocking iterator
        platform.cmd("subscribe py/iter")
        it = c.events("py/iter", timeout=5)
        c.emit_nowait("py/iter", {"i": 1})
        assert next(it).data == {"i": 1}
        it.close()


def test_emit_nowait_callbacks(platform):
    results = []
    with dsipc.Client(platform.socket) as c:
        c.connect()
        for i in range(5):
            c.emit_nowait("py/nowait", {"i": i}, callback=results.append)
        wait_for(lambda: c.wait(0.05) or len(results) == 5, what="5 answers")
        assert all(r in (dsipc.Emit.SENT, dsipc.Emit.QUEUED) for r in results)
        # an exception in a callback comes out of the call that ran it
        def boom(ev):
            raise ValueError("from the callback")
        c.subscribe("py/boom", boom)
        c.emit_nowait("py/boom", 1)
        with pytest.raises(ValueError):
            for _ in range(50):
                c.wait(0.05)


def test_reconnects_across_restarts(platform):
    platform.cmd("subscribe py/r")
    links, got, answers = [], [], []
    with dsipc.Client(platform.socket, reconnect_min=0.05, reconnect_max=0.5) as c:
        c.connect()
        c.watch_link(lambda link, err: links.append(link))
        c.subscribe("py/r", got.append)
        c.emit("py/r", {"n": 0})
        platform.cmd("stop")
        c.wait(0.3)  # the loss is noticed; nothing raises
        assert c.link in (dsipc.Link.WAITING, dsipc.Link.CONNECTING)
        # while dsd is away: buffered in this process
        assert c.emit("py/r", {"n": 1}) == dsipc.Emit.BUFFERED
        c.emit_nowait("py/r", {"n": 2}, callback=answers.append)
        assert c.buffered == 2
        platform.cmd("start")
        wait_for(lambda: c.wait(0.05) or (c.link == dsipc.Link.UP and c.buffered == 0 and answers),
                 what="back up, buffer sent")
        assert answers[0] in (dsipc.Emit.SENT, dsipc.Emit.QUEUED)
        assert dsipc.Link.WAITING in links and links[-1] == dsipc.Link.UP
        wait_for(lambda: sorted(d["n"] for d in platform.cmd("received py/r")) == [0, 1, 2],
                 what="all three at the JS client")
        # the subscription was made again by the library
        n = len(got)
        wait_for(lambda: c.wait(0.05) or platform.cmd('emit py/r {"n":"js"}') or len(got) > n + 0
                 and any(e.data == {"n": "js"} for e in got), what="the subscription delivering again")


def test_buffer_bound_and_give_up(platform):
    with dsipc.Client(platform.socket, buffer_emits=3, give_up=0.4, reconnect_min=0.05) as c:
        c.connect()
        platform.cmd("stop")
        try:
            c.wait(0.2)
            for i in range(3):
                assert c.emit("py/b", i) == dsipc.Emit.BUFFERED
            with pytest.raises(dsipc.Refused) as e:
                c.emit("py/b", 3)
            assert e.value.errno == errno.ENOBUFS and "buffer is full" in str(e.value)
            errors = []
            c.on_error = lambda name, code, msg: errors.append((name, code))
            with pytest.raises(dsipc.GaveUp) as e:
                c.run()
            assert "gave up" in str(e.value)
            # what the buffer held was not dropped silently
            assert [n for n, _ in errors] == ["py/b"] * 3
            assert c.link == dsipc.Link.DOWN
        finally:
            platform.cmd("start")


def test_asyncio(platform):
    platform.cmd("subscribe py/aio")

    async def main():
        async with dsipc.AsyncClient(platform.socket, reconnect_min=0.05) as c:
            assert c.link == dsipc.Link.UP
            sub = c.subscribe("py/aio")
            assert await c.emit("py/aio", {"a": 1}) in (dsipc.Emit.SENT, dsipc.Emit.QUEUED)
            ev = await asyncio.wait_for(sub.__anext__(), 5)
            assert ev.data == {"a": 1}
            # a restart under the loop: the library moves to the new socket
            # and subscribes again; the iterator goes on
            await asyncio.to_thread(platform.cmd, "restart")
            got = []

            async def read():
                async for e in sub:
                    got.append(e.data)
                    if e.data == {"from": "js"}:
                        return

            reader = asyncio.ensure_future(read())
            for _ in range(100):
                if reader.done():
                    break
                await asyncio.to_thread(platform.cmd, 'emit py/aio {"from":"js"}')
                await asyncio.sleep(0.1)
            await asyncio.wait_for(reader, 5)
            assert await c.emit("py/aio", {"a": 2}) in (dsipc.Emit.SENT, dsipc.Emit.QUEUED)
        return True

    assert asyncio.run(main())
    wait_for(lambda: {"a": 2} in platform.cmd("received py/aio"), what="the JS client")


def test_asyncio_connect_fails_without_dsd():
    async def main():
        c = dsipc.AsyncClient("/nonexistent/dsd.sock", reconnect=False)
        with pytest.raises(dsipc.Error) as e:
            await c.connect()
        assert e.value.errno == errno.ENOENT
        await c.close()

    asyncio.run(main())


def test_pip_install_next_to_the_library(tmp_path):
    """`pip install ./python` builds (nothing to compile), and the
    installed package finds libdsipc the way an installed system would
    (find_library; here through LD_LIBRARY_PATH) without $DSIPC_LIBRARY."""
    import shutil
    import subprocess
    import sys

    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip(f"no pip for {sys.executable}")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    copy = tmp_path / "python"
    # a copy: pip builds in the tree it is given
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                        "--no-deps", "--no-index", "--target", str(target), str(copy)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("DSIPC_LIBRARY", "PYTHONPATH")}
    env["LD_LIBRARY_PATH"] = os.path.dirname(os.environ["DSIPC_LIBRARY"])
    env["PYTHONPATH"] = str(target)
    r = subprocess.run([sys.executable, "-c", "import dsipc; print(dsipc.__file__, dsipc.library_version())"],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target)) and "(1, " in r.stdout


def test_asyncio_gives_up(platform):
    """Without dsd for give_up seconds, an async iterator ends with
    GaveUp, and an emit waiting for dsd's answer fails; a callback's own
    exception does not end the client."""

    async def main():
        async with dsipc.AsyncClient(platform.socket, give_up=0.5, reconnect_min=0.05) as c:
            seen = []

            def bad(link, err):
                seen.append(link)
                if link != dsipc.Link.UP:
                    raise RuntimeError("a callback's own error")

            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda loop, ctx: seen.append(ctx["exception"]))
            c.watch_link(bad)
            sub = c.subscribe("py/gone")
            await asyncio.to_thread(platform.cmd, "stop")
            try:
                pending = asyncio.ensure_future(c.emit("py/gone", 1))
                with pytest.raises(dsipc.GaveUp):
                    async for _ in sub:
                        pass
                with pytest.raises(dsipc.Error):
                    await pending
                assert any(isinstance(x, RuntimeError) for x in seen)
                assert dsipc.Link.WAITING in seen
            finally:
                await asyncio.to_thread(platform.cmd, "start")

    asyncio.run(main())
    # give_up without dsd at all: connect() fails with GaveUp
    async def fails():
        c = dsipc.AsyncClient("/nonexistent/dsd.sock", give_up=0.2)
        with pytest.raises(dsipc.GaveUp):
            await c.connect()
        await c.close()

    asyncio.run(fails())
