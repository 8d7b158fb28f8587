"""Applications on top of the library, each taking what :func:`aelab.runs.open_runs` opens: the
workshop (``aelab run``, :mod:`.workshop`) and its report (:mod:`.report`,
:mod:`.report_figures`), ``aelab evaluate`` (:mod:`.evaluation`), ``aelab score``
(:mod:`.scoring`), ``aelab export`` (:mod:`.export`), the explorer (:mod:`.explorer`) and the
Jupyter display (:mod:`.display`)."""
