"""Example studies with the Python API (run them: ``python -m flexplan.examples.<name> --help``).

* :mod:`flexplan.examples.flex_study`: a custom recipe, a price sweep with its tornado, the
  break-even flexibility price and a plot of the value of flexibility against EV uptake.
* :mod:`flexplan.examples.tree_study`: a scenario tree of EV uptake built in Python, the
  stochastic plan and what waiting and flexibility are worth.
"""
