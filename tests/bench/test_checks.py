"""`check_device`: each failed check shows the error's own message and hint fields."""

from __future__ import annotations

from edgeopt.bench.checks import check_device
from edgeopt.bench.profiles import profile_from_dict


def test_missing_adb_client_fails_reachable_with_the_install_hint(tmp_path):
    profile = profile_from_dict({"transport": "adb", "adb": str(tmp_path / "no-adb")}, name="phone")
    [check] = check_device(profile)
    assert (check.name, check.ok) == ("reachable", False)
    assert check.detail == f"Program not found on this machine. Received: {str(tmp_path / 'no-adb')!r}."
    assert check.hint == "Install adb (apt-get install adb, or Android platform-tools) or set `adb:` in the profile."


def test_missing_python_fails_after_reachable_and_workdir(tmp_path):
    python = str(tmp_path / "no. python")  # ". " in the received part is not where the hint starts
    checks = check_device(profile_from_dict({"transport": "local", "python": python}, name="box"))
    assert [(c.name, c.ok) for c in checks] == [("reachable", True), ("workdir writable", True), ("device", False)]
    assert checks[-1].detail == f"Program not found on this machine. Received: {python!r}."
    assert checks[-1].hint == "Install it or fix the profile's path."
