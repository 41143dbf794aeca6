"""`skelctl synth`: procedural NTU RGB+D / PKU-MMD raw files for tests, demos and benchmarks.

No real dataset can be downloaded where skelctl is developed, so this package writes genuine
raw files in the official formats and names from animated Kinect-v2 skeletons:
`rig` (the body), `motions` (the action classes), `kinect` (cameras and sensor artefacts),
`writers` (the file formats) and `generate` (whole datasets).
"""

from skelctl.synth.generate import KINDS, PRESETS, SynthSize, synth_size, synthesize
from skelctl.synth.motions import ACTIONS, DEFAULT_ORDER

__all__ = ["ACTIONS", "DEFAULT_ORDER", "KINDS", "PRESETS", "SynthSize", "synth_size", "synthesize"]
