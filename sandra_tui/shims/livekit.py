"""livekit internals, used here only (tests/shims/test_livekit_contract.py checks them).

`AudioProcessingModule.process_stream` builds, serializes and parses a protobuf message on every
10 ms block (about 70 us of Python per block pair, a third of the echo canceller's cost). The
request for a fixed buffer never changes, so `DirectApm` builds it once per direction and only
copies samples in and out, calling LiveKit's FFI library (`FfiClient.instance._ffi_lib`) with
the serialized request, whose `data_ptr` is the address of our own ctypes buffer.

A pointer inside a serialized message is a memory-safety matter, not an AttributeError: a
livekit whose message layout or FFI changed could write anywhere. So `DirectApm` runs only on
the exact livekit version it was written against (pyproject pins it); on any other it refuses,
and the caller uses the public API.
"""

from __future__ import annotations

import ctypes

import numpy as np

WRITTEN_FOR = "1.2.1"
KINDS = ("apm_process_stream", "apm_process_reverse_stream")


class Unsupported(RuntimeError):
    pass


def version() -> str:
    from livekit.rtc.version import __version__

    return __version__


class DirectApm:
    """Fixed-buffer calls into LiveKit's FFI for process_stream / process_reverse_stream of one
    AudioProcessingModule, mono int16 at `rate`, `block` samples (10 ms) a call."""

    def __init__(self, apm, rate: int, block: int) -> None:
        if version() != WRITTEN_FOR:
            raise Unsupported(f"livekit {version()}: the direct path was written for {WRITTEN_FOR}")
        from livekit.rtc._ffi_client import FfiClient
        from livekit.rtc._proto import ffi_pb2

        self._pb2 = ffi_pb2
        self._lib = FfiClient.instance._ffi_lib
        self._calls = {}
        for kind in KINDS:
            buffer = (ctypes.c_int16 * block)()
            request = ffi_pb2.FfiRequest()
            fields = getattr(request, kind)
            fields.apm_handle = apm._ffi_handle.handle
            fields.data_ptr = ctypes.addressof(buffer)
            fields.size = ctypes.sizeof(buffer)
            fields.sample_rate = rate
            fields.num_channels = 1
            data = request.SerializeToString()
            ok = ffi_pb2.FfiResponse()
            getattr(ok, kind).SetInParent()
            self._calls[kind] = (buffer, np.frombuffer(buffer, dtype=np.int16),
                                 (ctypes.c_ubyte * len(data)).from_buffer_copy(data), len(data),
                                 ok.SerializeToString())
        self._response = ctypes.POINTER(ctypes.c_ubyte)()
        self._response_len = ctypes.c_size_t()

    def process(self, kind: str, block: np.ndarray) -> np.ndarray:
        """Runs the block through the module; returns the processed samples (a view of the
        fixed buffer: copy before the next call)."""
        _, view, request, length, ok = self._calls[kind]
        view[:] = block
        handle = self._lib.livekit_ffi_request(request, length, ctypes.byref(self._response),
                                               ctypes.byref(self._response_len))
        try:
            response = ctypes.string_at(self._response, self._response_len.value)
        finally:
            self._lib.livekit_ffi_drop_handle(handle)
        if response != ok:
            parsed = self._pb2.FfiResponse()
            parsed.ParseFromString(response)
            raise RuntimeError(getattr(parsed, kind).error or "unexpected reply from the audio module")
        return view
