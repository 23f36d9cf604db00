"""srkit: the helper package behind the super-resolution report.

Modules, by floor (each imports only from floors below it; docs/architecture.md
draws the whole house): ``vocab``, ``layout``, ``atomic`` and ``environment``
(shared words, the run-folder names, safe writes, machine facts); ``metrics``,
``layers``, ``images`` and ``downloads``; ``windows``, ``losses``, ``models`` (the
zoo), ``callbacks``, ``tiles`` and ``checkpoints``; ``data``, ``train`` and
``evaluate``; ``records`` and ``plots``; ``report`` (step-page helpers) and
``steps``; ``execute``, ``benchmark_page`` and ``summary_page``; the pipeline and
the command line.
Submodules are imported on demand so that ``import srkit`` stays cheap.
"""

__version__ = "0.1.0"
