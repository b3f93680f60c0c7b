"""scikit-learn's own NotFittedError and DataConversionWarning, as subclasses of this package's.

Imported only once scikit-learn is loaded (``estimator_protocol.not_fitted_error`` checks
``sys.modules`` first), so ``import solvers`` never pays for scikit-learn, while code that did
import it can catch scikit-learn's class, and ``except NotFittedError`` with this package's
class catches both.
"""
from __future__ import annotations

from sklearn.exceptions import DataConversionWarning as _SklearnDataConversionWarning
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from solvers._base import estimator_protocol


class NotFittedError(estimator_protocol.NotFittedError, _SklearnNotFittedError):
    """A solver was used before ``fit``: this package's error and scikit-learn's."""


class DataConversionWarning(estimator_protocol.DataConversionWarning, _SklearnDataConversionWarning):
    """Input was converted to the expected shape: this package's warning and scikit-learn's."""
