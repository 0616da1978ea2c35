"""deepiso's engine: the frame contract, streaming DSP, audio I/O and the live host.

Importing this package never imports PyTorch.
"""

from .audio_io import AudioFileError, read_audio, write_audio
from .frame import FrameSpec, FrameSpecError
from .version import __version__

__all__ = ["AudioFileError", "FrameSpec", "FrameSpecError", "__version__", "read_audio", "write_audio"]
