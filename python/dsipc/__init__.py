"""
dsipc: talk to dsd, the daemon that shares one deepstream connection, from
Python.  A ctypes binding over libdsipc (1.1 or newer), so the IPC protocol
has one implementation; see libdsipc(3) for what each call does underneath.

Blocking use::

    import dsipc

    with dsipc.Client() as c:            # $DSD_SOCKET or /run/dsd/dsd.sock
        c.connect()
        c.subscribe("news", lambda ev: print(ev.name, ev.data))
        print(c.emit("news", {"hello": "world"}))   # Emit.CONFIRMED
        c.run()                           # callbacks run in here

asyncio::

    async with dsipc.AsyncClient() as c:
        async for ev in c.subscribe("news"):
            print(ev.data)

Results and errors (the same as the C library's):

- emit() returns an Emit: SENT (written to the platform), QUEUED (dsd holds
  it until the platform is back), CONFIRMED (the platform has it), or
  BUFFERED (dsd is away: kept in this process until it is back).
- A refusal raises Refused (an OSError: errno and the reason as strerror),
  e.g. ENOBUFS when dsd's queue or this process's buffer is full, EINVAL
  for a bad name or JSON, EMSGSIZE when it is too large.
- Not connected: NotConnected.  The library gave up on dsd (give_up
  seconds without it): GaveUp, from run()/wait()/events() or the async
  iterators.  Other failures: Error.

Reconnection is on by default here (reconnect=False turns it off): the
library tries again at once, then after 0.1 s doubling to 5 s, subscribes
again by itself and buffers emits while dsd is away (libdsipc(3),
"Surviving dsd restarts").  The C library leaves it off by default only so
that programs written for 1.0 keep their behaviour; this package has none
to keep.
"""
import asyncio
import ctypes
import enum
import errno as _errno
import json as _json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import _lib
from ._lib import lib

__all__ = [
    "AsyncClient", "Client", "Emit", "Error", "Event", "GaveUp", "Link",
    "NotConnected", "Refused", "Registration", "library_version",
]

log = logging.getLogger("dsipc")

POLLIN, POLLOUT = 0x001, 0x004
_NO_DATA = object()


class Emit(enum.IntEnum):
    """What became of an accepted emit (dsipc_emit_result)."""
    SENT = 0
    QUEUED = 1
    CONFIRMED = 2
    BUFFERED = 3

    def __str__(self):
        return self.name


class Link(enum.IntEnum):
    """The link between this client and dsd (dsipc_link), apart from dsd's
    own link to the platform (Client.state)."""
    DOWN = 0
    CONNECTING = 1
    UP = 2
    WAITING = 3

    def __str__(self):
        return self.name


class Error(OSError):
    """A libdsipc failure: errno, and the library's or dsd's message."""


class Refused(Error):
    """An emit (or another request) that was not accepted."""


class NotConnected(Error):
    """There is no link to dsd and none is being made."""


class GaveUp(Error):
    """The library gave up on dsd (give_up seconds without it)."""


@dataclass(frozen=True)
class Event:
    """One event.  json is the data as JSON text, None when the event has
    no data (data is then None too; JSON null has json == "null")."""
    name: str
    json: Optional[str]

    @property
    def data(self) -> Any:
        return None if self.json is None else _json.loads(self.json)


@dataclass(frozen=True)
class State:
    """dsd's link to the platform: "OPEN", "RECONNECTING", ..."""
    state: str
    reason: str
    at_unix_ms: int = 0


def library_version():
    """libdsipc's version at run time, as (major, minor, patch)."""
    v = lib.dsipc_version()
    return (v // 10000, v // 100 % 100, v % 100)


def _s(b):
    return b.decode("utf-8", "replace") if b is not None else None


# -- callbacks: one C trampoline per kind; userdata is a key into _targets --

_targets = {}
_next_key = [1]


def _register(client, fn):
    key = _next_key[0]
    _next_key[0] += 1
    _targets[key] = (client, fn)
    return key


def _call(key, *args):
    t = _targets.get(key)
    if t is None:
        return
    client, fn = t
    client._depth += 1
    try:
        fn(*args)
    except BaseException as e:  # raised again once the C call returns
        if client._exc is None:
            client._exc = e
    finally:
        client._depth -= 1


@_lib.EVENT_CB
def _on_event(c, name, json_text, ud):
    _call(ud, Event(_s(name), _s(json_text)))


@_lib.STATE_CB
def _on_state(c, state, reason, at, ud):
    _call(ud, State(_s(state), _s(reason), at))


@_lib.LINK_CB
def _on_link(c, link, error, ud):
    _call(ud, Link(link), -error)


@_lib.ERROR_CB
def _on_error(c, name, code, msg, ud):
    _call(ud, _s(name), -code, _s(msg))


def _emit_done(ud, result, msg):
    t = _targets.pop(ud, None)
    if t is None:
        return
    client, fn = t
    if result >= 0:
        value = Emit(result)
    else:
        value = Refused(-result, _s(msg) or os.strerror(-result))
    client._depth += 1
    try:
        fn(value)
    except BaseException as e:
        if client._exc is None:
            client._exc = e
    finally:
        client._depth -= 1


@_lib.EMIT_CB
def _on_emit(c, result, msg, ud):
    _emit_done(ud, result, msg)


@_lib.EVENTS_CB
def _on_events(c, events, ud):
    _call(ud)


class Registration:
    """A subscription or a watch; close() cancels it."""

    def __init__(self, client, key, slot):
        self._client = client
        self._key = key
        self._slot = slot

    def close(self):
        if self._slot is not None:
            self._client._slots.discard(self)
            lib.dsipc_slot_free(self._slot)
            self._slot = None
            _targets.pop(self._key, None)

    unsubscribe = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Client:
    """
    One handle on dsd.  Not thread-safe: use it from one thread (its
    callbacks run inside its own calls: wait(), run(), emit(), ...).

    path: the socket (None: $DSD_SOCKET, else /run/dsd/dsd.sock).
    reconnect: ride out dsd restarts (see the module's doc); reconnect_min
    and reconnect_max in seconds; give_up: seconds without dsd before
    giving up (None: never).  buffer_emits / buffer_bytes bound what is kept
    while dsd is away (0 emits: nothing is kept, emits fail).
    """

    def __init__(self, path: Optional[str] = None, *, reconnect: bool = True,
                 reconnect_min: float = 0.1, reconnect_max: float = 5.0,
                 give_up: Optional[float] = None, buffer_emits: int = 10000,
                 buffer_bytes: int = 8 * 1024 * 1024):
        self._h = None
        self._reconnect = reconnect
        self._slots = set()
        self._keys = []
        self._depth = 0
        self._exc = None
        h = _lib.H()
        self._check(lib.dsipc_new(ctypes.byref(h)), "dsipc_new")
        self._h = h
        self._path = path
        self.on_error: Callable[[str, int, str], None] = self._log_error
        if reconnect:
            r = lib.dsipc_set_reconnect(
                h, max(1, int(reconnect_min * 1000)), int(reconnect_max * 1000),
                -1 if give_up is None else int(give_up * 1000))
        else:
            r = lib.dsipc_set_reconnect(h, 0, 0, -1)
        self._check(r, "reconnect settings")
        self._check(lib.dsipc_set_buffer(h, buffer_emits, buffer_bytes), "buffer settings")
        key = self._key(lambda name, code, msg: self.on_error(name, code, msg))
        lib.dsipc_set_error_cb(h, _on_error, key)

    # -- lifetime --

    def close(self):
        """Frees the handle; emits still buffered (see buffered) are lost."""
        if self._h is None:
            return
        if self._depth:
            raise RuntimeError("dsipc: close() from inside a callback")
        for reg in list(self._slots):
            reg.close()
        lib.dsipc_free(self._h)
        self._h = None
        # keys of this client, emit callbacks still waiting included
        for k in [k for k, (cl, _) in _targets.items() if cl is self]:
            del _targets[k]
        self._keys = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- helpers --

    @staticmethod
    def _log_error(name, code, msg):
        log.warning("dsd: %s%s (%s)", f"{name}: " if name else "", msg, os.strerror(code))

    def _key(self, fn):
        k = _register(self, fn)
        self._keys.append(k)
        return k

    def _handle(self):
        if self._h is None:
            raise NotConnected(_errno.ENOTCONN, "the client is closed")
        return self._h

    def _error(self, r, what, cls=None):
        code = -r
        msg = _s(lib.dsipc_last_error(self._h)) if self._h is not None else ""
        if not msg:
            msg = os.strerror(code)
        if code == _errno.ENOTCONN:
            cls = NotConnected
        elif cls is None:
            gave_up = (self._reconnect and self._h is not None
                       and lib.dsipc_get_link(self._h) == Link.DOWN)
            cls = GaveUp if gave_up else Error
        return cls(code, f"{what}: {msg}" if what else msg)

    def _check(self, r, what, cls=None):
        if r < 0:
            # The library's failure first; a callback's exception from the
            # same call rides along as its cause.
            e, self._exc = self._exc, None
            raise self._error(r, what, cls) from e
        self._reraise()
        return r

    def _reraise(self):
        e, self._exc = self._exc, None
        if e is not None:
            raise e

    @staticmethod
    def _encode(name, data, json_text):
        if json_text is not None:
            text = json_text
        elif data is _NO_DATA:
            text = None
        else:
            text = _json.dumps(data, separators=(",", ":"))
        return name.encode(), None if text is None else text.encode()

    @staticmethod
    def _ms(timeout):
        return -1 if timeout is None else max(0, int(timeout * 1000))

    # -- connecting --

    def connect(self):
        """Connects and waits (a few seconds at most) for dsd's answer."""
        p = None if self._path is None else self._path.encode()
        self._check(lib.dsipc_connect(self._handle(), p), "cannot reach dsd")

    def connect_nowait(self):
        """Starts connecting and returns; process() completes it.  With
        reconnection on, a dsd that is not there yet is not an error."""
        p = None if self._path is None else self._path.encode()
        self._check(lib.dsipc_connect_async(self._handle(), p), "cannot reach dsd")

    @property
    def connected(self) -> bool:
        return self._h is not None and lib.dsipc_is_connected(self._h) == 1

    @property
    def link(self) -> Link:
        return Link(lib.dsipc_get_link(self._handle()))

    @property
    def buffered(self) -> int:
        """Emits kept in this process, not yet given to dsd."""
        return lib.dsipc_get_buffered(self._handle())

    # -- state --

    @property
    def state(self) -> Optional[State]:
        """dsd's last reported platform state (needs a watch_state() or
        any earlier report); None before the first."""
        st, rs = ctypes.c_char_p(), ctypes.c_char_p()
        if lib.dsipc_get_state(self._handle(), ctypes.byref(st), ctypes.byref(rs)) < 0:
            return None
        return State(_s(st.value), _s(rs.value))

    def watch_state(self, callback: Callable[[State], None]) -> Registration:
        """callback(State) now if known, then on every change of dsd's
        link to the platform."""
        return self._watch(lib.dsipc_watch_state, _on_state, callback)

    def watch_link(self, callback: Callable[[Link, int], None]) -> Registration:
        """callback(Link, errno) now, then on every change of the link to
        dsd itself (errno: why it went down, else 0)."""
        return self._watch(lib.dsipc_watch_link, _on_link, callback)

    def _watch(self, fn, tramp, callback):
        slot = _lib.S()
        key = self._key(callback)
        r = fn(self._handle(), tramp, key, ctypes.byref(slot))
        self._check(r, "watch")
        reg = Registration(self, key, slot)
        self._slots.add(reg)
        return reg

    # -- events --

    def subscribe(self, name: str, callback: Callable[[Event], None]) -> Registration:
        """callback(Event) for every event called name, across
        reconnections, until the registration is closed."""
        slot = _lib.S()
        key = self._key(callback)
        r = lib.dsipc_subscribe(self._handle(), name.encode(), _on_event, key, ctypes.byref(slot))
        self._check(r, f"subscribe {name}", Refused)
        reg = Registration(self, key, slot)
        self._slots.add(reg)
        return reg

    def emit(self, name: str, data: Any = _NO_DATA, *, timeout: Optional[float] = 5.0,
             json: Optional[str] = None) -> Emit:
        """Emits and waits up to timeout for dsd's answer (and the
        platform's confirmation when dsd wrote it at once).  data is any
        JSON value (omitted: an event without data); json= gives the text
        as is.  Returns an Emit; raises Refused."""
        n, d = self._encode(name, data, json)
        how = ctypes.c_int(0)
        r = lib.dsipc_emit_sync(self._handle(), n, d, self._ms(timeout), ctypes.byref(how))
        self._check(r, f"emit {name}", Refused)
        return Emit(how.value)

    def emit_nowait(self, name: str, data: Any = _NO_DATA, *,
                    callback: Optional[Callable[[Any], None]] = None,
                    json: Optional[str] = None) -> None:
        """Emits without waiting.  callback(Emit or Refused) gets dsd's
        answer later (inside wait()/process()); without one a refusal goes
        to on_error.  A refusal on the spot (bad name, full buffer) raises
        Refused."""
        n, d = self._encode(name, data, json)
        if callback is None:
            self._check(lib.dsipc_emit(self._handle(), n, d), f"emit {name}", Refused)
            return
        key = _register(self, callback)
        r = lib.dsipc_emit_async(self._handle(), n, d, _on_emit, key)
        if r < 0:
            _targets.pop(key, None)
        self._check(r, f"emit {name}", Refused)

    # -- running --

    def wait(self, timeout: Optional[float] = None) -> None:
        """Runs callbacks for up to timeout seconds (None: until the end).
        Raises GaveUp / Error when the link to dsd ends for good."""
        r = lib.dsipc_wait(self._handle(), self._ms(timeout))
        if r == -_errno.EINTR:
            self._reraise()
            return
        self._check(r, "")

    def run(self) -> None:
        """wait() for ever: returns only by an exception."""
        while True:
            self.wait(None)

    def events(self, name: str, timeout: Optional[float] = None) -> "_Events":
        """A blocking iterator over the events called name, subscribed at
        once (before this returns); it stops after timeout seconds without
        one (None: never).  close() it, or use it in a with block."""
        return _Events(self, name, timeout)

    # -- loop integration (libdsipc's fd / events / timeout / process) --

    def fileno(self) -> int:
        """The socket, or -1 while there is none (waiting to reconnect);
        it changes across reconnections."""
        fd = lib.dsipc_get_fd(self._handle())
        return fd if fd >= 0 else -1

    def wants_write(self) -> bool:
        return bool(lib.dsipc_get_events(self._handle()) & POLLOUT)

    def timeout(self) -> Optional[float]:
        """Seconds until process() must run even if the socket is quiet;
        None: no deadline."""
        ms = ctypes.c_int(-1)
        lib.dsipc_get_timeout(self._handle(), ctypes.byref(ms))
        return None if ms.value < 0 else ms.value / 1000

    def process(self) -> None:
        """Does what is ready without blocking; runs callbacks."""
        self._check(lib.dsipc_process(self._handle()), "")

    # -- control --

    def status(self, timeout: float = 5.0) -> dict:
        """dsd's status document (what dsctl status shows)."""
        p = ctypes.c_void_p()
        self._check(lib.dsipc_status_json(self._handle(), self._ms(timeout), ctypes.byref(p)), "status")
        try:
            return _json.loads(ctypes.string_at(p.value).decode())
        finally:
            _lib.libc.free(p)

    def pause(self, timeout: float = 5.0):
        self._check(lib.dsipc_pause(self._handle(), self._ms(timeout)), "pause")

    def resume(self, timeout: float = 5.0):
        self._check(lib.dsipc_resume(self._handle(), self._ms(timeout)), "resume")

    def reload(self, timeout: float = 5.0):
        self._check(lib.dsipc_reload(self._handle(), self._ms(timeout)), "reload")


class _Events:
    """Client.events(): subscribed from the start, so nothing emitted after
    the call is missed."""

    def __init__(self, client, name, timeout):
        self._client = client
        self._timeout = timeout
        self._got = deque()
        self._reg = client.subscribe(name, self._got.append)

    def __iter__(self):
        return self

    def __next__(self) -> Event:
        end = None if self._timeout is None else time.monotonic() + self._timeout
        while not self._got:
            if self._reg._slot is None:
                raise StopIteration
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise StopIteration
            self._client.wait(left)
        return self._got.popleft()

    def close(self):
        self._reg.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Subscription:
    """An async iterator over one name's events (AsyncClient.subscribe)."""

    def __init__(self, ac, name):
        self._ac = ac
        self._queue = asyncio.Queue()
        self._reg = ac.client.subscribe(name, self._queue.put_nowait)
        ac._subs.add(self)

    def _fail(self, exc):
        self._queue.put_nowait(exc)

    def __aiter__(self):
        return self

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self.close()
            if isinstance(item, StopAsyncIteration):
                raise item
            raise item
        return item

    def close(self):
        self._reg.close()
        self._ac._subs.discard(self)

    async def aclose(self):
        self.close()


class AsyncClient:
    """
    The Client on an asyncio loop: the library's socket is watched with
    loop.add_reader()/add_writer(), its timeout with loop.call_later(), and
    both follow it across reconnections.  Takes the Client's arguments.
    """

    def __init__(self, path: Optional[str] = None, **kw):
        self.client = Client(path, **kw)
        self._loop = None
        self._fd = -1
        self._writing = False
        self._timer = None
        self._subs = set()
        self._failed = None
        self._key = self.client._key(self._sync)

    async def connect(self, timeout: Optional[float] = 10.0):
        """Starts connecting without blocking the loop, and waits until the
        link to dsd is up (or raises)."""
        self._loop = asyncio.get_running_loop()
        up = self._loop.create_future()

        def on_link(link, err):
            if link == Link.UP and not up.done():
                up.set_result(None)
            elif link == Link.DOWN and err and not up.done():
                up.set_exception(self.client._error(-err, "cannot reach dsd"))

        reg = self.client.watch_link(on_link)
        lib.dsipc_set_events_cb(self.client._handle(), _on_events, self._key)
        try:
            self.client.connect_nowait()
            self._sync()
            await asyncio.wait_for(up, timeout)
        finally:
            reg.close()
            if up.done() and not up.cancelled():
                up.exception()  # raised already, one way or the other

    def _sync(self):
        """Follows the handle: its socket, write interest, timer."""
        c = self.client
        if self._loop is None or c._h is None:
            return
        fd = c.fileno()
        if fd != self._fd:
            if self._fd >= 0:
                self._loop.remove_reader(self._fd)
                if self._writing:
                    self._loop.remove_writer(self._fd)
            self._writing = False
            self._fd = fd
            if fd >= 0:
                self._loop.add_reader(fd, self._ready)
        want = fd >= 0 and c.wants_write()
        if want != self._writing:
            if want:
                self._loop.add_writer(fd, self._ready)
            else:
                self._loop.remove_writer(fd)
            self._writing = want
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        t = c.timeout()
        if t is not None:
            self._timer = self._loop.call_later(t, self._ready)

    def _ready(self):
        try:
            self.client.process()
        except Exception as e:
            c = self.client
            if isinstance(e, Error) and (c._h is None or c.link == Link.DOWN):
                self._stop(e)  # the link ended for good
                return
            # from a callback of the program's: not the end of the link
            self._loop.call_exception_handler({
                "message": "exception in a dsipc callback", "exception": e})
        self._sync()

    def _stop(self, exc):
        self._failed = exc
        self._detach()
        for s in list(self._subs):
            s._fail(exc)

    def _detach(self):
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            if self._writing:
                self._loop.remove_writer(self._fd)
        self._fd = -1
        self._writing = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def subscribe(self, name: str) -> _Subscription:
        """`async for event in client.subscribe(name)`; ends with the
        exception that ended the link for good (GaveUp, ...)."""
        if self._failed is not None:
            raise self._failed
        return _Subscription(self, name)

    async def emit(self, name: str, data: Any = _NO_DATA, *, json: Optional[str] = None) -> Emit:
        """Emits and waits for dsd's answer: Emit.SENT or Emit.QUEUED, or
        raises Refused.  While dsd is away this waits until it is back
        (the emit is buffered meanwhile); emit_nowait() does not."""
        fut = asyncio.get_running_loop().create_future()

        def done(v):
            if fut.done():
                return
            if isinstance(v, BaseException):
                fut.set_exception(v)
            else:
                fut.set_result(v)

        self.client.emit_nowait(name, data, callback=done, json=json)
        self._sync()
        return await fut

    def emit_nowait(self, name: str, data: Any = _NO_DATA, *, json: Optional[str] = None) -> None:
        self.client.emit_nowait(name, data, json=json)
        self._sync()

    def watch_state(self, callback):
        return self.client.watch_state(callback)

    def watch_link(self, callback):
        return self.client.watch_link(callback)

    @property
    def link(self) -> Link:
        return self.client.link

    @property
    def state(self) -> Optional[State]:
        return self.client.state

    async def close(self):
        for s in list(self._subs):
            s._fail(StopAsyncIteration())
        self._detach()
        self.client.close()

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc):
        await self.close()
