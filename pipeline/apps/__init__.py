"""The device-side applications: the camera app (``anytime camera``) and the latency profiler
(``anytime profile``). Each module is a command line over the runtime; ``apps/*.py`` at the top of
the tree run them as scripts from a checkout."""
