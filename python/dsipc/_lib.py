"""
Loads libdsipc and declares the C functions this package calls (ctypes: the
IPC protocol keeps its one implementation, in the C library).

The library is the one named by $DSIPC_LIBRARY (a path, for tests against a
build tree), else the one the system finds (ctypes.util.find_library, then
the soname).  It must be 1.1 or newer.
"""
import ctypes
import ctypes.util
import os

from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_int, c_int64, c_size_t,
                    c_uint, c_void_p)

SONAME = "libdsipc.so.1"


def _load():
    path = os.environ.get("DSIPC_LIBRARY") or ctypes.util.find_library("dsipc") or SONAME
    try:
        lib = ctypes.CDLL(path, use_errno=True)
    except OSError as e:
        raise ImportError(
            f"dsipc: cannot load libdsipc ({path}): {e}; install libdsipc "
            "(meson install of dsd) or set DSIPC_LIBRARY to its path") from e
    if not hasattr(lib, "dsipc_version"):
        raise ImportError(f"dsipc: {path} is libdsipc 1.0; this package needs 1.1 or newer")
    return lib


lib = _load()
libc = ctypes.CDLL(None)
libc.free.argtypes = [c_void_p]
libc.free.restype = None

STATE_CB = CFUNCTYPE(None, c_void_p, c_char_p, c_char_p, c_int64, c_void_p)
EVENT_CB = CFUNCTYPE(None, c_void_p, c_char_p, c_char_p, c_void_p)
ERROR_CB = CFUNCTYPE(None, c_void_p, c_char_p, c_int, c_char_p, c_void_p)
EMIT_CB = CFUNCTYPE(None, c_void_p, c_int, c_char_p, c_void_p)
EVENTS_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p)
LINK_CB = CFUNCTYPE(None, c_void_p, c_int, c_int, c_void_p)

H = c_void_p  # dsipc *
S = c_void_p  # dsipc_slot *

_PROTOS = {
    "dsipc_new": (c_int, [POINTER(H)]),
    "dsipc_free": (H, [H]),
    "dsipc_connect": (c_int, [H, c_char_p]),
    "dsipc_connect_async": (c_int, [H, c_char_p]),
    "dsipc_is_connected": (c_int, [H]),
    "dsipc_set_reconnect": (c_int, [H, c_int, c_int, c_int]),
    "dsipc_set_buffer": (c_int, [H, c_uint, c_size_t]),
    "dsipc_get_buffered": (c_int, [H]),
    "dsipc_get_link": (c_int, [H]),
    "dsipc_watch_link": (c_int, [H, LINK_CB, c_void_p, POINTER(S)]),
    "dsipc_get_fd": (c_int, [H]),
    "dsipc_get_events": (c_int, [H]),
    "dsipc_process": (c_int, [H]),
    "dsipc_set_events_cb": (None, [H, EVENTS_CB, c_void_p]),
    "dsipc_get_timeout": (c_int, [H, POINTER(c_int)]),
    "dsipc_wait": (c_int, [H, c_int]),
    "dsipc_get_state": (c_int, [H, POINTER(c_char_p), POINTER(c_char_p)]),
    "dsipc_watch_state": (c_int, [H, STATE_CB, c_void_p, POINTER(S)]),
    "dsipc_subscribe": (c_int, [H, c_char_p, EVENT_CB, c_void_p, POINTER(S)]),
    "dsipc_slot_free": (S, [S]),
    "dsipc_set_error_cb": (None, [H, ERROR_CB, c_void_p]),
    "dsipc_emit": (c_int, [H, c_char_p, c_char_p]),
    "dsipc_emit_async": (c_int, [H, c_char_p, c_char_p, EMIT_CB, c_void_p]),
    "dsipc_emit_sync": (c_int, [H, c_char_p, c_char_p, c_int, POINTER(c_int)]),
    "dsipc_status_json": (c_int, [H, c_int, POINTER(c_void_p)]),
    "dsipc_pause": (c_int, [H, c_int]),
    "dsipc_resume": (c_int, [H, c_int]),
    "dsipc_reload": (c_int, [H, c_int]),
    "dsipc_last_error": (c_char_p, [H]),
    "dsipc_version": (c_int, []),
}

for _name, (_res, _args) in _PROTOS.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args
