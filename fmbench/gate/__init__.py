"""The CI gate: a reference of stored runs (reference), the decision whether a run dropped below it (decision),
the `fmbench check` command around it (check), and its false-alarm rate and power (calibrate)."""


class RegressError(ValueError):
    """Bad input to a check (reference or results missing, malformed or not comparable): one line, names the fix."""
