"""The one error type a caller of the solvers can cause.

``InputError`` subclasses ``ValueError`` so that scikit-learn's conventions (and its estimator
checks) see the ValueError they expect, while the CLI can catch exactly this type (and the
store's ``FeatureStoreError``) as a user error and let any other ValueError, a bug, keep its
traceback.
"""


class InputError(ValueError):
    """Bad input to a solver: wrong shapes, non-finite values, unknown labels, bad parameters."""


class InputTypeError(InputError, TypeError):
    """Input of a type that cannot be converted (e.g. a dict among the features): an InputError
    that is also the TypeError scikit-learn's conventions expect for it."""


class UnavailableMethodError(InputError, AttributeError):
    """A method the solver's parameters rule out (e.g. ``GDA.partial_fit`` with a Ledoit-Wolf
    covariance): absent to ``hasattr`` (as scikit-learn's ``available_if`` makes it), and a user
    error, naming why, to a caller that calls it anyway."""
