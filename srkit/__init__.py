"""srkit: the helper package behind the super-resolution report.

Modules, by floor (each imports only from floors below it; docs/architecture.md
draws the whole house): ``vocab``, ``layout`` and ``atomic`` (shared words, the
run-folder names, safe writes); ``metrics``, ``layers`` and ``data``; ``losses``,
``models`` (the zoo) and ``callbacks``; ``train`` and ``evaluate``; ``records``
and ``plots``; ``report`` (page helpers); the pipeline and the command line.
Submodules are imported on demand so that ``import srkit`` stays cheap.
"""

__version__ = "0.1.0"
