"""The pieces every solver shares: the Solver contract, input checks, the estimator protocol, fit warnings,
progress bars, row normalisation and softmax. Private: other packages import the names they need from
the public packages (``solvers``), and solvers import these modules by their full path."""
