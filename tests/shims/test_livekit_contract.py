"""The livekit internals sandra_tui/shims/livekit.py relies on. A failure here names the version:
the direct path hands LiveKit's native library a pointer inside a serialized protobuf, so the
shim must be re-read against a new livekit before the pin in pyproject.toml moves."""

import ctypes

import numpy as np
import pytest
from livekit import rtc

from sandra_tui.shims import livekit as shim

WHO = f"livekit {shim.version()} (the shim was written for {shim.WRITTEN_FOR})"
RATE, BLOCK = 48000, 480


def test_the_installed_livekit_is_the_one_the_shim_was_written_for():
    assert shim.version() == shim.WRITTEN_FOR, f"{WHO}: re-read shims/livekit.py against it, then move the pin"


def test_the_ffi_library_the_request_and_the_handle_are_where_the_shim_reads_them():
    from livekit.rtc._ffi_client import FfiClient
    from livekit.rtc._proto import ffi_pb2

    lib = FfiClient.instance._ffi_lib
    assert lib.livekit_ffi_request.argtypes == [ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t,
                                               ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
                                               ctypes.POINTER(ctypes.c_size_t)], f"{WHO}: livekit_ffi_request changed"
    assert lib.livekit_ffi_request.restype is ctypes.c_uint64, f"{WHO}: livekit_ffi_request returns something else"
    assert lib.livekit_ffi_drop_handle.argtypes == [ctypes.c_uint64], f"{WHO}: livekit_ffi_drop_handle changed"
    for kind in shim.KINDS:
        fields = {f.name: f.type for f in ffi_pb2.FfiRequest.DESCRIPTOR.fields_by_name[kind].message_type.fields}
        uint64 = ffi_pb2.FfiRequest.DESCRIPTOR.fields_by_name[kind].message_type.fields_by_name["data_ptr"].TYPE_UINT64
        assert set(fields) == {"apm_handle", "data_ptr", "size", "sample_rate", "num_channels"}, \
            f"{WHO}: FfiRequest.{kind} has fields {sorted(fields)}"
        assert fields["data_ptr"] == uint64 and fields["apm_handle"] == uint64, f"{WHO}: {kind} pointer fields changed"
        response = ffi_pb2.FfiResponse.DESCRIPTOR.fields_by_name[kind].message_type
        assert "error" in response.fields_by_name, f"{WHO}: FfiResponse.{kind} has no error"
    apm = rtc.AudioProcessingModule(echo_cancellation=True)
    assert isinstance(apm._ffi_handle.handle, int) and apm._ffi_handle.handle > 0, f"{WHO}: apm._ffi_handle moved"


def test_the_direct_path_gives_what_the_public_api_gives():
    rng = np.random.default_rng(7)
    far = (rng.standard_normal(BLOCK * 100) * 3000).astype(np.int16)
    near = (far * 0.5 + rng.standard_normal(len(far)) * 300).astype(np.int16)
    direct_apm, public_apm = (rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
                              for _ in range(2))
    direct = shim.DirectApm(direct_apm, RATE, BLOCK)
    for start in range(0, len(far), BLOCK):
        a, b = far[start:start + BLOCK], near[start:start + BLOCK]
        direct.process("apm_process_reverse_stream", a)
        got = direct.process("apm_process_stream", b).copy()
        public_apm.process_reverse_stream(rtc.AudioFrame(a.tobytes(), RATE, 1, BLOCK))
        frame = rtc.AudioFrame(b.tobytes(), RATE, 1, BLOCK)
        public_apm.process_stream(frame)
        assert np.array_equal(got, np.frombuffer(frame.data, dtype=np.int16)), f"{WHO}: block at {start} differs"


def test_another_version_is_refused(monkeypatch):
    monkeypatch.setattr(shim, "version", lambda: "9.9.9")
    with pytest.raises(shim.Unsupported, match="livekit 9.9.9"):
        shim.DirectApm(rtc.AudioProcessingModule(echo_cancellation=True), RATE, BLOCK)
