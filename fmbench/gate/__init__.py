"""The CI gate: a reference of stored runs (reference), the decision whether a run dropped below it (decision),
each row's verdict (verdicts), the `fmbench check` command around them (check, imported by the CLI only), the noise
model of real harmless runs (noise), and the false-alarm rate and power: simulated gate runs (simulation) and the
`fmbench calibrate` command (calibrate)."""


class RegressError(ValueError):
    """Bad input to a check (reference or results missing, malformed or not comparable): one line, names the fix."""
