__version__ = "0.1.0"

import warnings as _warnings
# fastai still calls torch.jit.script, which warns on every import of it: silence that one warning, by message and module
_warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning, module=r'torch\.jit\._script')

import os as _os
from .config import SETUP_VAR as _SETUP_VAR      # light: no torch
if _os.environ.get(_SETUP_VAR):      # a user's setup scripts, run once in every process (nbs/00i_user_setup.ipynb, run_setup)
    from .user_setup import setup_at_import as _setup_at_import
    _setup_at_import()
