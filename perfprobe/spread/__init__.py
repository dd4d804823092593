"""Load spread over several processes (``--processes N``) or a Ray cluster (``--cluster``).

One load-process class (``member.LoadProcess``) runs the engine in each process; the run's own
process coordinates them (``group.LoadGroup``): it opens and closes every window for all, merges
their histograms exactly and reads the server's statistics once per window. Local processes are
spawned interpreters talking over a pipe (``channel``); on a cluster, a Ray actor per process
starts the same load process on its node (``ray_hosts``).
"""
