"""The ``dispatchsim`` command line's subcommands (private; the entry point is
:func:`dispatch.__main__.main`).

* :mod:`.common` — output styling, JSON, the thread-local backstop, the ``--mode`` guards,
  rendering a trace as text;
* :mod:`.mermaid` — a trace as a Mermaid ``sequenceDiagram``;
* :mod:`.tour` / :mod:`.tour_steps` — the tour over the Gradient Modes document;
* :mod:`.workload` / :mod:`.roi_align` — the small model and the ROIAlign kernels the
  tour's steps import;
* :mod:`.explain_cmd`, :mod:`.trace_cmd`, :mod:`.keys_cmd` — ``explain``, ``trace``,
  ``keys`` and ``table``.
"""
