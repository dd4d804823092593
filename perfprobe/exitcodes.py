"""Exit codes of the ``perfprobe`` command, one meaning each, so scripts and CI can branch on them."""

OK = 0
INTERNAL_ERROR = 1  # a bug in perfprobe: please report it with the traceback (--debug)
USAGE = 2  # bad arguments or input data (wrong flag, shape, datatype, unreadable file); an output directory filled up
SERVER_UNREACHABLE = 3  # nothing answered at the URL (refused, timed out)
SERVER_ERROR = (
    4  # the server answered with an error (unknown model, rejected request), or the load lost a process or node
)
SERVER_UNAVAILABLE = 5  # the embedded server or the cluster extra (Ray) is not installed or could not start
GATE_FAILED = 6  # perfprobe gate: a threshold or baseline limit was not met (the run itself was fine)
NO_RESULTS = 7  # a run directory given to report / diff / gate is missing or holds no readable results;
# a history database that is locked, corrupt or of another schema (nothing written to it)
GATE_INCONCLUSIVE = 8  # perfprobe gate: no gate failed, but some change's interval straddles its limit (run more)
INTERRUPTED = 130  # Ctrl-C / SIGTERM
