"""Errors carry their parts as fields; the text is those parts in one line."""

from __future__ import annotations

from edgeopt.errors import DeviceError, DeviceUnreachableError, RemoteCommandError


def test_device_error_keeps_message_and_hint_apart():
    exc = DeviceUnreachableError("Cannot reach it. Received: pi. (a dot).", device="rpi4", hint="Power it on.")
    assert str(exc) == "[rpi4] Cannot reach it. Received: pi. (a dot). Power it on."
    assert (exc.message, exc.hint, exc.device) == ("Cannot reach it. Received: pi. (a dot).", "Power it on.", "rpi4")
    bare = RemoteCommandError("It failed. Received: a. b.", command=["true"], exit_code=1)
    assert str(bare) == "It failed. Received: a. b." and bare.hint is None and bare.exit_code == 1
    assert isinstance(bare, DeviceError)
