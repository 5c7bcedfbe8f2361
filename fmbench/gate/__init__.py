"""The CI gate: a reference of stored runs (reference; the mean of repeated runs with their noise: repeats), the
units of evidence a run gives against it (evidence), the decision whether it dropped (decision), each row's verdict
(verdicts), the `fmbench check` command around them (check, imported by the CLI only), measured noise and the noise
model of real harmless runs (noise), and the false-alarm rate and power: simulated gate runs (simulation) and the
`fmbench calibrate` command (calibrate)."""


class RegressError(ValueError):
    """Bad input to a check (reference or results missing, malformed or not comparable): one line, names the fix."""
