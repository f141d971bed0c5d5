__version__ = "0.1.0"

import warnings as _warnings
# fastai still calls torch.jit.script, which warns on every import of it: silence that one warning, by message and module
_warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning, module=r'torch\.jit\._script')
