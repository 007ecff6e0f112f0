class SensitivityResult: pass
def channel_sensitivity(): pass
