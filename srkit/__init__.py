"""srkit: the helper package behind the super-resolution report.

Modules, by responsibility (see DESIGN.md): ``data`` (sources, resizing, splits,
cache), ``metrics`` and ``losses``, ``layers`` and ``models`` (the zoo),
``callbacks``, ``train``, ``evaluate``, ``plots``, and ``pipeline``/``cli``.
Submodules are imported on demand so that ``import srkit`` stays cheap.
"""

__version__ = "0.1.0"
