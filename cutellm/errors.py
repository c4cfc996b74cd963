"""The exceptions CuteGPT raises on purpose.

Every error a user can cause (bad text, bad settings, a bad file) is one of these, with a message written for
that user. The app catches `CuteLLMError` and shows the message; anything else is a bug.
All subclass `ValueError` so plain Python callers can catch them the usual way.
"""


class CuteLLMError(ValueError):
    """Base class: a problem with what the user gave us, explained in the message."""


class ConfigError(CuteLLMError):
    """An invalid model or training setting (names the setting or environment variable)."""


class CorpusError(CuteLLMError):
    """A corpus that cannot be used for training: empty, binary, not UTF-8, too short."""


class PromptError(CuteLLMError):
    """A prompt or phrase the model cannot work with (empty, no blank, too long...)."""


class GenerationError(CuteLLMError):
    """Invalid generation settings (temperature, top-k, top-p, number of tokens)."""


class CheckpointError(CuteLLMError):
    """A checkpoint file that is missing, truncated, corrupt, unsafe or not a CuteGPT model."""


class TrainingDivergedError(CuteLLMError):
    """Training produced a NaN/inf loss; the model holds the last good weights.

    `result` is the TrainResult up to the failure, so nothing trained so far is lost.
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class TrainingBusyError(CuteLLMError):
    """Another training job is already running in this process (one run per server)."""
