"""KFP components: each a thin typed wrapper over one flywheel function.

They are lightweight Python components declared with the project image (``Dockerfile`` at the
top level), so they run containerized on a cluster and as subprocesses under ``kfp.local``.
"""
