"""Offline conversion of external grid data into flexplan instance folders.

Not imported by ``import flexplan``: these modules are run once to (re)write instance folders
(``python -m flexplan.convert.simbench``) and may need optional packages (``simbench``).
The pandapower-to-radial network conversion they share with the runtime loader is
:func:`flexplan.instance.network_io.pandapower_radial`.
"""
