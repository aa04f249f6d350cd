"""editmethods: knowledge editing of language models, with methods as plugins.

>>> from editmethods import EditRequest
>>> EditRequest(prompt="The capital of France is", subject="France", target_new="Rome").target_text
' Rome'
"""

from editmethods.architectures import Architecture
from editmethods.editor import Editor
from editmethods.errors import (
    ArchitectureError,
    ArgumentError,
    CollapseError,
    EditError,
    EditmethodsError,
    HyperParamsError,
    MethodError,
    MissingDependencyError,
    ModelLoadError,
    RequestError,
    RollbackError,
    SavedEditError,
)
from editmethods.eval_report import EvalReport
from editmethods.guard import Guard
from editmethods.hookspecs import hookimpl
from editmethods.hparams import HyperParams, load_hparams
from editmethods.method import Method
from editmethods.pipeline import Pipeline
from editmethods.plugins import Plugins, get_plugins
from editmethods.types import (
    Delta,
    EditHandle,
    EditRequest,
    EvalContext,
    Location,
    MethodSpec,
    MetricResult,
    ModelAlias,
    PromptAnswer,
    Update,
)

__all__ = [
    "Architecture", "ArchitectureError", "ArgumentError", "CollapseError", "Delta", "EditError",
    "EditHandle", "EditRequest", "Editor", "EditmethodsError", "EvalContext", "EvalReport", "Guard",
    "HyperParams", "HyperParamsError", "Location", "Method", "MethodError", "MethodSpec", "MetricResult",
    "MissingDependencyError", "ModelAlias", "ModelLoadError", "Pipeline", "Plugins", "PromptAnswer", "RequestError", "RollbackError",
    "SavedEditError", "Update", "get_plugins", "hookimpl", "load_hparams",
]
