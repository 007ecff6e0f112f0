"""The device harness: runner script, transports (local, ssh, adb), profiles, parsing."""

from edgeopt.bench.harness import benchmark, measure_latency
from edgeopt.bench.profiles import DeviceProfile, list_profiles, load_profile
from edgeopt.bench.result import LatencyResult

__all__ = ["DeviceProfile", "LatencyResult", "benchmark", "list_profiles", "load_profile", "measure_latency"]
